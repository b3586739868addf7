-- Refuse at the door what no worker could serve, whoever inserts (oncommit.enqueue, a raw
-- INSERT, another language): a run_at that is infinite or out of the years 1..9999 (no
-- client library can represent it), and a queue name a worker cannot be told to serve
-- (empty, over 255 bytes, or containing the separators `,` and `:` of `--queues a,b:4`).
--
-- A trigger, not a CHECK constraint: a constraint would also refuse the UPDATEs that claim,
-- fail or delete rows written before it existed, and so stop the queue at such a row.
-- Its WHEN clause is evaluated without calling the function, so sound rows cost nothing.
-- include: current/refuse_unservable_job.sql

CREATE TRIGGER jobs_refuse_unservable BEFORE INSERT ON oncommit.jobs
    FOR EACH ROW
    WHEN (NOT (isfinite(NEW.run_at) AND NEW.run_at >= '0001-01-01 00:00:00+00' AND NEW.run_at < '10000-01-01 00:00:00+00'
               AND NEW.queue <> '' AND octet_length(NEW.queue) <= 255
               AND strpos(NEW.queue, ',') = 0 AND strpos(NEW.queue, ':') = 0))
    EXECUTE FUNCTION oncommit.refuse_unservable_job();
