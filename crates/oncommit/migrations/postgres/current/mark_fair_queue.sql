CREATE OR REPLACE FUNCTION oncommit.mark_fair_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Once a queue is fair, a keyed job only reads its row: enqueuers do not queue on it.
    IF EXISTS (SELECT 1 FROM oncommit.queues q WHERE q.name = NEW.queue AND q.fair) THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM oncommit.queues q WHERE q.name = NEW.queue AND q.rate_limit_per_key) THEN
        RAISE EXCEPTION 'oncommit: queue % is rate limited per concurrency key, which does not combine with fair keys: remove one',
            quote_literal(NEW.queue)
            USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO oncommit.queues AS q (name, fair) VALUES (NEW.queue, true)
    ON CONFLICT (name) DO UPDATE SET fair = true, updated_at = now();
    RETURN NULL;
END
$$;
