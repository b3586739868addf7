CREATE OR REPLACE FUNCTION oncommit.settle_dependants() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    settled_id    bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    settled_state text := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE NEW.state END;
    children      bigint[];
    woken         text[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- Deleted, or moved to the history by the statement that finished it (AFTER
        -- triggers run once the whole statement has, so the moved row is there).
        SELECT coalesce((SELECT h.state FROM oncommit.job_history h WHERE h.id = OLD.id), 'deleted') INTO settled_state;
    END IF;
    SELECT array_agg(c.id ORDER BY c.id) INTO children FROM (
        SELECT j.id FROM oncommit.job_dependencies d JOIN oncommit.jobs j ON j.id = d.job_id
        WHERE d.parent_id = settled_id AND j.state = 'pending'
        ORDER BY j.id FOR UPDATE OF j) AS c;
    IF children IS NULL THEN
        RETURN NULL;
    END IF;
    IF settled_state <> 'completed' THEN
        UPDATE oncommit.jobs SET state = 'cancelled', finished_at = now(),
            errors = CASE WHEN jsonb_typeof(errors) = 'array' THEN errors ELSE '[]'::jsonb END
                || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', (extract(epoch FROM now()) * 1000)::int8,
                       'error', format('parent job %s %s', settled_id, settled_state)))
        WHERE id = ANY(children) AND state = 'pending' AND coalesce(on_parent_failure, 'cancel') = 'cancel';
    END IF;
    WITH ready AS (
        UPDATE oncommit.jobs c SET state = CASE WHEN c.run_at > now() THEN 'scheduled' ELSE 'available' END
        WHERE c.id = ANY(children) AND c.state = 'pending'
          AND NOT EXISTS (
              SELECT 1 FROM oncommit.job_dependencies d JOIN oncommit.all_jobs p ON p.id = d.parent_id
              WHERE d.job_id = c.id AND p.state <> 'completed'
                AND NOT (c.on_parent_failure = 'run' AND p.state IN ('failed', 'cancelled')))
        RETURNING c.queue, c.state)
    SELECT array_agg(DISTINCT queue) INTO woken FROM ready WHERE state = 'available';
    PERFORM pg_notify('oncommit_jobs', q) FROM unnest(woken) AS q;
    RETURN NULL;
END
$$;
