CREATE OR REPLACE FUNCTION oncommit.admit_by_key(key text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    woken text[];
BEGIN
    WITH slots AS (
        SELECT coalesce((SELECT j.key_limit FROM oncommit.jobs j
                         WHERE j.concurrency_key = admit_by_key.key AND j.state = 'pending' ORDER BY j.id LIMIT 1), 1)
             - (SELECT count(*) FROM oncommit.jobs j WHERE j.concurrency_key = admit_by_key.key
                  AND j.state IN ('scheduled', 'available', 'running', 'retryable')) AS free),
    next AS (
        SELECT j.id FROM oncommit.jobs j
        WHERE j.concurrency_key = admit_by_key.key AND j.state = 'pending'
        ORDER BY j.id LIMIT (SELECT greatest(free, 0) FROM slots)),
    admitted AS (
        UPDATE oncommit.jobs c SET state = CASE WHEN c.run_at > now() THEN 'scheduled' ELSE 'available' END
        FROM next WHERE c.id = next.id AND c.state = 'pending'
        RETURNING c.queue, c.state)
    SELECT array_agg(DISTINCT queue) INTO woken FROM admitted WHERE state = 'available';
    RETURN coalesce(woken, '{}');
END
$$;
