-- A queue's rate limit may apply per concurrency key instead of to the whole queue (at most
-- N starts per period for each customer, say): the starts of each key's current window are
-- kept here, written under the queue row's lock by the claim that counts them. Rows of
-- windows long past are pruned by the leader.
ALTER TABLE oncommit.queues ADD COLUMN IF NOT EXISTS rate_limit_per_key boolean NOT NULL DEFAULT false;

CREATE TABLE IF NOT EXISTS oncommit.rate_windows (
    queue     text    NOT NULL,
    -- The jobs' concurrency key; '' for jobs without one (they share one window).
    key       text    NOT NULL,
    window_ms bigint  NOT NULL,
    starts    integer NOT NULL,
    PRIMARY KEY (queue, key)
);

-- oncommit.rate_limit_queue again, with `per_key` (default false: calls by position or name
-- keep their meaning). The old signature goes, so every call resolves to exactly one.
DROP FUNCTION IF EXISTS oncommit.rate_limit_queue(text, integer, interval);

-- include: current/rate_limit_queue.sql
