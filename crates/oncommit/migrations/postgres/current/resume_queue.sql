CREATE OR REPLACE FUNCTION oncommit.resume_queue(name text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO oncommit.queues AS q (name, paused) VALUES (resume_queue.name, false)
    ON CONFLICT (name) DO UPDATE SET paused = false, updated_at = now();
    SELECT pg_notify('oncommit_jobs', resume_queue.name);
$$;
