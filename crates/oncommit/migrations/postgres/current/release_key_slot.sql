CREATE OR REPLACE FUNCTION oncommit.release_key_slot() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    freed_key text := CASE WHEN TG_OP = 'DELETE' THEN OLD.concurrency_key ELSE NEW.concurrency_key END;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('oncommit.concurrency_key:' || freed_key, 0));
    PERFORM pg_notify('oncommit_jobs', q) FROM unnest(oncommit.admit_by_key(freed_key)) AS q;
    RETURN NULL;
END
$$;
