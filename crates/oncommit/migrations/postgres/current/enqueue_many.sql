CREATE OR REPLACE FUNCTION oncommit.enqueue_many(
    task         text,
    args         jsonb[],
    queue        text        DEFAULT NULL,
    priority     integer     DEFAULT NULL,
    run_at       timestamptz DEFAULT NULL,
    max_attempts integer     DEFAULT NULL,
    unique_keys  text[]      DEFAULT NULL,
    notify       boolean     DEFAULT true,
    fair_key     text        DEFAULT NULL,
    fair_weight  integer     DEFAULT NULL
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    due       timestamptz := coalesce(enqueue_many.run_at, now());
    new_state text := CASE WHEN coalesce(enqueue_many.run_at, now()) > now() THEN 'scheduled' ELSE 'available' END;
    d_queue    text;
    d_priority smallint;
    d_attempts integer;
    plain_ids  bigint[];
    ids        bigint[];
BEGIN
    IF enqueue_many.max_attempts IS NOT NULL AND enqueue_many.max_attempts < 1 THEN
        RAISE EXCEPTION 'oncommit: invalid max_attempts %: a job needs at least one attempt', enqueue_many.max_attempts
            USING ERRCODE = 'check_violation';
    END IF;
    IF enqueue_many.unique_keys IS NOT NULL
       AND cardinality(enqueue_many.unique_keys) <> cardinality(enqueue_many.args) THEN
        RAISE EXCEPTION 'oncommit.enqueue_many: % unique keys for % jobs: give one per job (NULL for none)',
            cardinality(enqueue_many.unique_keys), cardinality(enqueue_many.args)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(enqueue_many.args), 0) = 0 THEN
        RETURN '{}';
    END IF;
    -- The task's declaration, looked up once (the insert trigger would look it up per row).
    SELECT t.queue, t.priority, t.max_attempts INTO d_queue, d_priority, d_attempts
    FROM oncommit.tasks t WHERE t.name = enqueue_many.task;
    d_queue := coalesce(enqueue_many.queue, d_queue, '{{QUEUE}}');
    d_priority := coalesce(enqueue_many.priority, d_priority, {{PRIORITY}});
    d_attempts := coalesce(enqueue_many.max_attempts, d_attempts, {{MAX_ATTEMPTS}});

    -- Jobs without a key: one INSERT; sequence values are drawn in insertion order.
    WITH inserted AS (
        INSERT INTO oncommit.jobs AS j (task, args, queue, priority, run_at, max_attempts, state, fair_key, fair_weight)
        SELECT enqueue_many.task, coalesce(u.a, '{}'::jsonb), d_queue, d_priority, due, d_attempts, new_state,
               enqueue_many.fair_key, enqueue_many.fair_weight
        FROM unnest(enqueue_many.args, coalesce(enqueue_many.unique_keys, '{}'::text[]))
             WITH ORDINALITY AS u(a, k, ord)
        WHERE u.k IS NULL
        ORDER BY u.ord
        RETURNING j.id)
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO plain_ids FROM inserted;

    -- Keyed jobs, one by one, with oncommit.enqueue's conflict handling; then every id in the
    -- order of `args`.
    SELECT array_agg(CASE WHEN u.k IS NULL THEN plain_ids[u.plain_ord]
                          ELSE oncommit.enqueue(enqueue_many.task, coalesce(u.a, '{}'::jsonb), d_queue, d_priority,
                                                enqueue_many.run_at, d_attempts, u.k, false,
                                                enqueue_many.fair_key, enqueue_many.fair_weight) END
                     ORDER BY u.ord)
    INTO ids
    FROM (SELECT a, k, ord, count(*) FILTER (WHERE k IS NULL) OVER (ORDER BY ord) AS plain_ord
          FROM unnest(enqueue_many.args, coalesce(enqueue_many.unique_keys, '{}'::text[]))
               WITH ORDINALITY AS v(a, k, ord)) AS u;

    IF new_state = 'available' AND enqueue_many.notify THEN
        PERFORM oncommit.wake_sleepers(d_queue);
    END IF;
    RETURN ids;
END
$$;
