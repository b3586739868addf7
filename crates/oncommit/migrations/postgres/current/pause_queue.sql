CREATE OR REPLACE FUNCTION oncommit.pause_queue(name text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO oncommit.queues AS q (name, paused) VALUES (pause_queue.name, true)
    ON CONFLICT (name) DO UPDATE SET paused = true, updated_at = now();
$$;
