-- Each worker says its wall clock with every heartbeat; the heartbeat records how far it is
-- from the database's, for `oncommit doctor`. oncommit computes leases and delays on the
-- database's clock, but a task that reads its own (a deadline, a log line) is misled by a
-- skewed one. Nullable: a worker of an earlier release leaves it empty.
ALTER TABLE oncommit.workers ADD COLUMN IF NOT EXISTS clock_offset_ms bigint;
