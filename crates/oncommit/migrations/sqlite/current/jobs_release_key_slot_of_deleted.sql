CREATE TRIGGER oncommit_jobs_release_key_slot_of_deleted AFTER DELETE ON oncommit_jobs
    WHEN OLD.concurrency_key IS NOT NULL AND OLD.state IN ('scheduled', 'available', 'running', 'retryable')
BEGIN
    UPDATE oncommit_jobs SET state = CASE WHEN run_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
                                          THEN 'scheduled' ELSE 'available' END
    WHERE id IN (
        SELECT id FROM oncommit_jobs WHERE concurrency_key = OLD.concurrency_key AND state = 'pending' ORDER BY id
        LIMIT max(0, coalesce((SELECT key_limit FROM oncommit_jobs WHERE concurrency_key = OLD.concurrency_key
                                   AND state = 'pending' ORDER BY id LIMIT 1), 1)
                     - (SELECT count(*) FROM oncommit_jobs WHERE concurrency_key = OLD.concurrency_key
                          AND state IN ('scheduled', 'available', 'running', 'retryable'))));
END;
