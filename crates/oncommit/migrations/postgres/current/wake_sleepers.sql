CREATE OR REPLACE FUNCTION oncommit.wake_sleepers(queue text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1330531, hashtext(wake_sleepers.queue));
    IF EXISTS (SELECT 1 FROM oncommit.sleepers s WHERE s.queue = wake_sleepers.queue) THEN
        PERFORM pg_notify('oncommit_jobs', wake_sleepers.queue);
    END IF;
END
$$;
