-- What the workers did, per queue and minute: attempts finished by outcome, and how long
-- jobs waited from their run_at to their start, as counts per latency bucket. Each worker
-- adds its counts every heartbeat (one upsert per batch of rows), so the dashboard's
-- throughput and latency come from at most a few thousand rows per hour, however many jobs
-- ran; the leader deletes minutes older than a day.
--   metric: an outcome (completed, retryable, failed, cancelled, snoozed, released) with
--           bucket -1, or 'wait' with the latency bucket (docs/web.md lists the bounds).
CREATE TABLE IF NOT EXISTS oncommit.queue_activity (
    minute  bigint   NOT NULL,
    queue   text     NOT NULL,
    metric  text     NOT NULL,
    bucket  smallint NOT NULL,
    count   bigint   NOT NULL,
    PRIMARY KEY (minute, queue, metric, bucket)
);
