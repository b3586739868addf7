-- Fair queuing per key (see the PostgreSQL migration of the same name): a job's fairness
-- key and weight, a queue's fairness and the key its last claim ended with, and the index
-- the claim walks.
ALTER TABLE oncommit_jobs ADD COLUMN fair_key TEXT
    CHECK (fair_key IS NULL OR (typeof(fair_key) = 'text' AND length(CAST(fair_key AS BLOB)) BETWEEN 1 AND 255));
ALTER TABLE oncommit_jobs ADD COLUMN fair_weight INTEGER
    CHECK (fair_weight IS NULL OR (typeof(fair_weight) = 'integer' AND fair_weight BETWEEN 1 AND 1000));
ALTER TABLE oncommit_queues ADD COLUMN fair INTEGER NOT NULL DEFAULT 0;
ALTER TABLE oncommit_queues ADD COLUMN fair_cursor TEXT;

CREATE INDEX IF NOT EXISTS oncommit_jobs_fair ON oncommit_jobs (queue, priority, fair_key, id)
    WHERE state = 'available' AND fair_key IS NOT NULL;

-- include: current/jobs_mark_fair_queue.sql
