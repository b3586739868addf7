-- A queue name with a control character (a newline, a tab, DEL, the C1 range) cannot be
-- named on a worker's command line or in its --queues list: a job in such a queue would
-- stay available for ever. Rust refuses it (check_queue_name); this refuses it on every SQL
-- path too: oncommit.enqueue and enqueue_many (which insert), a raw INSERT, and the queue
-- settings (oncommit.pause_queue and the like write oncommit.queues). NUL cannot be in a
-- PostgreSQL text value at all.
--
-- Jobs: the insert trigger of 005, with one more condition (a trigger, not a constraint:
-- rows written before it still claim, fail and delete). The queues and tasks tables: CHECK
-- constraints NOT VALID, which hold for every new or changed row without reading the old.
-- include: current/refuse_unservable_job.sql

DROP TRIGGER jobs_refuse_unservable ON oncommit.jobs;
CREATE TRIGGER jobs_refuse_unservable BEFORE INSERT ON oncommit.jobs
    FOR EACH ROW
    WHEN (NOT (isfinite(NEW.run_at) AND NEW.run_at >= '0001-01-01 00:00:00+00' AND NEW.run_at < '10000-01-01 00:00:00+00'
               AND NEW.queue <> '' AND octet_length(NEW.queue) <= 255
               AND strpos(NEW.queue, ',') = 0 AND strpos(NEW.queue, ':') = 0
               AND NEW.queue !~ '[\x01-\x1f\x7f-\x9f]'))
    EXECUTE FUNCTION oncommit.refuse_unservable_job();

ALTER TABLE oncommit.queues
    ADD CONSTRAINT queues_name_without_control_characters CHECK (name !~ '[\x01-\x1f\x7f-\x9f]') NOT VALID;
ALTER TABLE oncommit.tasks
    ADD CONSTRAINT tasks_queue_without_control_characters CHECK (queue !~ '[\x01-\x1f\x7f-\x9f]') NOT VALID;
