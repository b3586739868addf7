CREATE OR REPLACE FUNCTION oncommit.rate_limit_queue(name text, max_starts integer, per interval, per_key boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    period_ms bigint := (extract(epoch FROM per) * 1000)::bigint;
BEGIN
    IF (max_starts IS NULL) <> (per IS NULL) THEN
        RAISE EXCEPTION 'oncommit.rate_limit_queue: give both max_starts and per, or neither to remove the limit'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF per IS NOT NULL AND period_ms < 1 THEN
        RAISE EXCEPTION 'oncommit.rate_limit_queue: invalid period %: it must be at least a millisecond', per
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF per_key AND max_starts IS NOT NULL
       AND EXISTS (SELECT 1 FROM oncommit.queues q WHERE q.name = rate_limit_queue.name AND q.fair) THEN
        RAISE EXCEPTION 'oncommit.rate_limit_queue: queue % is fair (its jobs have fair keys), which does not combine with a rate limit per key',
            quote_literal(rate_limit_queue.name)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO oncommit.queues AS q (name, rate_limit, rate_period_ms, rate_limit_per_key)
    VALUES (rate_limit_queue.name, max_starts, period_ms, coalesce(per_key, false) AND max_starts IS NOT NULL)
    ON CONFLICT (name) DO UPDATE SET rate_limit = excluded.rate_limit, rate_period_ms = excluded.rate_period_ms,
        rate_limit_per_key = excluded.rate_limit_per_key, rate_window_ms = NULL, rate_window_starts = 0, updated_at = now();
    DELETE FROM oncommit.rate_windows w WHERE w.queue = rate_limit_queue.name;
    PERFORM pg_notify('oncommit_jobs', rate_limit_queue.name);
END
$$;
