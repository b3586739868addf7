-- Uniqueness by content (see the PostgreSQL migration of the same name).
ALTER TABLE oncommit_jobs ADD COLUMN unique_hash TEXT;
ALTER TABLE oncommit_jobs ADD COLUMN unique_states INTEGER;

CREATE UNIQUE INDEX IF NOT EXISTS oncommit_jobs_unique_hash ON oncommit_jobs (unique_hash)
    WHERE unique_hash IS NOT NULL AND ((unique_states >> (CASE state WHEN 'scheduled' THEN 0 WHEN 'available' THEN 1
        WHEN 'running' THEN 2 WHEN 'retryable' THEN 3 WHEN 'completed' THEN 4 WHEN 'failed' THEN 5
        WHEN 'cancelled' THEN 6 WHEN 'pending' THEN 7 ELSE 31 END)) & 1) = 1;
