-- Concurrency keys (see the PostgreSQL migration of the same name). One writer at a time:
-- no lock is needed between enqueuers and finishers of a key.
ALTER TABLE oncommit_jobs ADD COLUMN concurrency_key TEXT;
ALTER TABLE oncommit_jobs ADD COLUMN key_limit INTEGER CHECK (key_limit > 0);

CREATE INDEX IF NOT EXISTS oncommit_jobs_concurrency_key ON oncommit_jobs (concurrency_key, id)
    WHERE concurrency_key IS NOT NULL AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable');

-- include: current/jobs_release_key_slot.sql

-- include: current/jobs_release_key_slot_of_deleted.sql
