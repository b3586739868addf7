-- Each worker says its wall clock with every heartbeat; the heartbeat records how far it is
-- from the database's, for `oncommit doctor`. Nullable: a worker of an earlier release
-- leaves it empty.
ALTER TABLE oncommit_workers ADD COLUMN clock_offset_ms INTEGER;
