-- Fair queuing per key (docs/fairness.md): a job may carry a fairness key (a tenant, a
-- customer) and a weight. A queue that holds a job with a key becomes fair: its claims take
-- turns on the queue's row, as a paused or limited queue's do, and serve the keys that have
-- available jobs round robin (each key `weight` jobs a round, by id within a key), starting
-- after the key the last claim ended with (`fair_cursor`). Jobs without a key in a fair
-- queue run when no keyed job is available.
ALTER TABLE oncommit.jobs
    ADD COLUMN IF NOT EXISTS fair_key text,
    ADD COLUMN IF NOT EXISTS fair_weight smallint;
-- NOT VALID: no scan under the exclusive lock; validated by migration 022.
ALTER TABLE oncommit.jobs DROP CONSTRAINT IF EXISTS jobs_fair_check;
ALTER TABLE oncommit.jobs ADD CONSTRAINT jobs_fair_check
    CHECK (octet_length(fair_key) BETWEEN 1 AND 255 AND fair_weight BETWEEN 1 AND 1000) NOT VALID;

ALTER TABLE oncommit.queues
    ADD COLUMN IF NOT EXISTS fair boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS fair_cursor text;

-- The first job with a key makes its queue fair; a queue rate limited per concurrency key
-- refuses one (the two orders of claims do not combine).
-- include: current/mark_fair_queue.sql

DROP TRIGGER IF EXISTS jobs_mark_fair_queue ON oncommit.jobs;
CREATE TRIGGER jobs_mark_fair_queue AFTER INSERT ON oncommit.jobs
    FOR EACH ROW WHEN (NEW.fair_key IS NOT NULL) EXECUTE FUNCTION oncommit.mark_fair_queue();

-- oncommit.enqueue and oncommit.enqueue_many take `fair_key` and `fair_weight`.
DROP FUNCTION IF EXISTS oncommit.enqueue(text, jsonb, text, integer, timestamptz, integer, text, boolean);
-- include: current/enqueue.sql

DROP FUNCTION IF EXISTS oncommit.enqueue_many(text, jsonb[], text, integer, timestamptz, integer, text[], boolean);
-- include: current/enqueue_many.sql

-- A rate limit per key is refused on a fair queue.
-- include: current/rate_limit_queue.sql
