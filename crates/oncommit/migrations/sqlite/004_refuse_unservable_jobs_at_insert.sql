-- Refuse at the door what no worker could serve, whoever inserts (oncommit, the documented
-- raw INSERT, another language): a run_at that is not whole epoch milliseconds in the years
-- 1..9999, and a queue name a worker cannot be told to serve (empty, over 255 bytes, or
-- containing the separators `,` and `:` of `--queues a,b:4`). Triggers on INSERT only: rows
-- written before them still claim, fail and delete normally.
CREATE TRIGGER oncommit_jobs_refuse_bad_run_at BEFORE INSERT ON oncommit_jobs
    WHEN typeof(NEW.run_at) <> 'integer' OR NEW.run_at < -62135596800000 OR NEW.run_at >= 253402300800000
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid run_at: it must be whole milliseconds since the Unix epoch, between the years 1 and 9999');
END;

CREATE TRIGGER oncommit_jobs_refuse_bad_queue BEFORE INSERT ON oncommit_jobs
    WHEN typeof(NEW.queue) <> 'text' OR NEW.queue = '' OR length(CAST(NEW.queue AS BLOB)) > 255
         OR instr(NEW.queue, ',') > 0 OR instr(NEW.queue, ':') > 0
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":"');
END;
