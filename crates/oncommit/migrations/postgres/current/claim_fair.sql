-- The claim of a queue that is only fair (not paused, no limit) for `worker`: up to
-- `max_jobs` jobs, round robin across the keys at the best priority after the key the last
-- claim ended with, each key its weight per round, by id within a key; returned in that
-- order, the key it ended with recorded. The algorithm is `queries::fair`'s (which claims
-- in steps where this does not apply, and on SQLite), in one call (docs/fairness.md).
CREATE OR REPLACE FUNCTION oncommit.claim_fair(queue_name text, max_jobs bigint, worker text, lease_secs double precision)
RETURNS SETOF oncommit.jobs
LANGUAGE plpgsql VOLATILE
-- Planned once per session: a custom plan of the claim took 2 ms to make, at every call.
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    started timestamptz;
BEGIN
    -- The queue's turn. The claim below is a statement of its own, so its snapshot is taken
    -- after the wait and sees the claim that held the turn before.
    PERFORM FROM oncommit.queues q
    WHERE q.name = queue_name AND q.fair AND NOT q.paused AND q.concurrency_limit IS NULL AND q.rate_limit IS NULL
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- The jobs start now, not when the calling statement began, before the wait.
    started := clock_timestamp();
    RETURN QUERY
    WITH RECURSIVE
    turn AS MATERIALIZED (SELECT q.fair_cursor FROM oncommit.queues q WHERE q.name = queue_name),
    top AS MATERIALIZED (
        SELECT j.priority FROM oncommit.jobs j
        WHERE j.state = 'available' AND j.fair_key IS NOT NULL AND j.queue = queue_name
        ORDER BY j.priority LIMIT 1),
    -- The keys after the cursor, each with the weight of its oldest available job (the
    -- probe that finds a key finds that job: the fair index ends with the id).
    after(key, weight, n) AS (
        (SELECT j.fair_key, j.fair_weight, 1::int8 FROM oncommit.jobs j
         WHERE j.state = 'available' AND j.fair_key IS NOT NULL AND j.queue = queue_name
           AND j.priority = (SELECT priority FROM top) AND j.fair_key > coalesce((SELECT fair_cursor FROM turn), '')
         ORDER BY j.fair_key, j.id LIMIT 1)
        UNION ALL
        SELECT nx.fair_key, nx.fair_weight, a.n + 1 FROM after a, LATERAL (
            SELECT j.fair_key, j.fair_weight FROM oncommit.jobs j
            WHERE j.state = 'available' AND j.fair_key IS NOT NULL AND j.queue = queue_name
              AND j.priority = (SELECT priority FROM top) AND j.fair_key > a.key
            ORDER BY j.fair_key, j.id LIMIT 1) nx
        WHERE a.n < max_jobs),
    found AS MATERIALIZED (SELECT count(*) AS n FROM after),
    -- Round to the first key, up to the cursor's own, which is served last.
    wrap(key, weight, n) AS (
        (SELECT j.fair_key, j.fair_weight, 1::int8 FROM oncommit.jobs j
         WHERE j.state = 'available' AND j.fair_key IS NOT NULL AND j.queue = queue_name
           AND j.priority = (SELECT priority FROM top) AND j.fair_key <= (SELECT fair_cursor FROM turn)
           AND (SELECT n FROM found) < max_jobs
         ORDER BY j.fair_key, j.id LIMIT 1)
        UNION ALL
        SELECT nx.fair_key, nx.fair_weight, w.n + 1 FROM wrap w, LATERAL (
            SELECT j.fair_key, j.fair_weight FROM oncommit.jobs j
            WHERE j.state = 'available' AND j.fair_key IS NOT NULL AND j.queue = queue_name
              AND j.priority = (SELECT priority FROM top) AND j.fair_key > w.key
              AND j.fair_key <= (SELECT fair_cursor FROM turn)
            ORDER BY j.fair_key, j.id LIMIT 1) nx
        WHERE w.n < max_jobs - (SELECT n FROM found)),
    keys AS MATERIALIZED (
        SELECT key, greatest(coalesce(weight, 1), 1)::int8 AS w, n AS pos FROM after
        UNION ALL SELECT key, greatest(coalesce(weight, 1), 1)::int8, (SELECT n FROM found) + n FROM wrap),
    -- Each key's weight per round, for as many rounds as fill the claim.
    plan AS MATERIALIZED (
        SELECT key, w, pos, least(w * ((max_jobs + (sum(w) OVER ())::int8 - 1) / (sum(w) OVER ())::int8), max_jobs) AS quota
        FROM keys),
    -- A key's jobs, asked for as the range from the key to itself: with `fair_key = key`
    -- the order by (fair_key, id) is an order by id, which the primary key serves too, and
    -- the planner walked it past every claimed and finished job. Every claimer of a fair
    -- queue holds its turn and the snapshot was taken after the last one's commit, so these
    -- are the key's next jobs; a job another writer (a cancel) holds is passed over rather
    -- than waited for under the turn. (Not locking them ran no faster.)
    picked AS MATERIALIZED (
        SELECT j.id, p.key, p.pos, (row_number() OVER (PARTITION BY p.pos ORDER BY j.id) - 1) / p.w AS round
        FROM plan p, LATERAL (
            SELECT jj.id FROM oncommit.jobs jj
            WHERE jj.state = 'available' AND jj.fair_key IS NOT NULL AND jj.queue = queue_name
              AND jj.priority = (SELECT priority FROM top) AND jj.fair_key >= p.key AND jj.fair_key <= p.key
            ORDER BY jj.fair_key, jj.id LIMIT p.quota FOR UPDATE SKIP LOCKED) j),
    -- Round by round, keys in the order served, by id within a key.
    ordered AS MATERIALIZED (
        SELECT pk.id AS pick, pk.key AS pick_key, row_number() OVER (ORDER BY pk.round, pk.pos, pk.id) AS pick_rank
        FROM picked pk ORDER BY pk.round, pk.pos, pk.id LIMIT max_jobs),
    moved AS (
        UPDATE oncommit.queues q SET fair_cursor = (SELECT o.pick_key FROM ordered o ORDER BY o.pick_rank DESC LIMIT 1)
        WHERE q.name = queue_name AND EXISTS (SELECT FROM ordered)),
    claimed AS (
        UPDATE oncommit.jobs j SET state = 'running', attempt = j.attempt + 1, attempted_at = started,
            lease_owner = worker, lease_expires_at = started + make_interval(secs => lease_secs)
        FROM ordered o WHERE j.id = o.pick AND j.state = 'available'
        RETURNING o.pick_rank, j AS job)
    SELECT (c.job).* FROM claimed c ORDER BY c.pick_rank;
END
$$;
