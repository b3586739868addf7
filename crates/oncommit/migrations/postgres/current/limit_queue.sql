CREATE OR REPLACE FUNCTION oncommit.limit_queue(name text, concurrency_limit integer) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO oncommit.queues AS q (name, concurrency_limit) VALUES (limit_queue.name, limit_queue.concurrency_limit)
    ON CONFLICT (name) DO UPDATE SET concurrency_limit = excluded.concurrency_limit, updated_at = now();
    SELECT pg_notify('oncommit_jobs', limit_queue.name);
$$;
