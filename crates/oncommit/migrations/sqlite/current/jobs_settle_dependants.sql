CREATE TRIGGER oncommit_jobs_settle_dependants AFTER UPDATE OF state ON oncommit_jobs
    WHEN NEW.has_dependants AND NEW.state IN ('completed', 'failed', 'cancelled') AND OLD.state IS NOT NEW.state
BEGIN
    UPDATE oncommit_jobs SET state = 'cancelled',
        finished_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
        errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]',
            json_object('attempt', attempt, 'at', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
                        'error', 'parent job ' || NEW.id || ' ' || NEW.state))
    WHERE NEW.state <> 'completed' AND state = 'pending' AND coalesce(on_parent_failure, 'cancel') = 'cancel'
      AND id IN (SELECT job_id FROM oncommit_job_dependencies WHERE parent_id = NEW.id);
    UPDATE oncommit_jobs SET state = CASE WHEN run_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
                                          THEN 'scheduled' ELSE 'available' END
    WHERE state = 'pending' AND id IN (SELECT job_id FROM oncommit_job_dependencies WHERE parent_id = NEW.id)
      AND NOT EXISTS (
          SELECT 1 FROM oncommit_job_dependencies d JOIN oncommit_jobs p ON p.id = d.parent_id
          WHERE d.job_id = oncommit_jobs.id AND p.state <> 'completed'
            AND NOT (oncommit_jobs.on_parent_failure = 'run' AND p.state IN ('failed', 'cancelled')));
END;
