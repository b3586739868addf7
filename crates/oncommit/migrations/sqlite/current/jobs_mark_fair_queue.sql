CREATE TRIGGER oncommit_jobs_mark_fair_queue AFTER INSERT ON oncommit_jobs
    WHEN NEW.fair_key IS NOT NULL
         AND NOT EXISTS (SELECT 1 FROM oncommit_queues q WHERE q.name = NEW.queue AND q.fair)
BEGIN
    SELECT RAISE(ABORT, 'oncommit: the queue is rate limited per concurrency key, which does not combine with fair keys: remove one')
    WHERE EXISTS (SELECT 1 FROM oncommit_queues q WHERE q.name = NEW.queue AND q.rate_limit_per_key);
    INSERT INTO oncommit_queues (name, fair) VALUES (NEW.queue, 1)
    ON CONFLICT (name) DO UPDATE SET fair = 1,
        updated_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
END;
