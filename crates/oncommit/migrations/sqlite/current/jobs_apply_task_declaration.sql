CREATE TRIGGER oncommit_jobs_apply_task_declaration AFTER INSERT ON oncommit_jobs
    WHEN NEW.queue IS NULL OR NEW.priority IS NULL OR NEW.max_attempts IS NULL
BEGIN
    UPDATE oncommit_jobs SET
        queue = coalesce(NEW.queue, (SELECT queue FROM oncommit_tasks WHERE name = NEW.task), '{{QUEUE}}'),
        priority = coalesce(NEW.priority, (SELECT priority FROM oncommit_tasks WHERE name = NEW.task), {{PRIORITY}}),
        max_attempts = coalesce(NEW.max_attempts, (SELECT max_attempts FROM oncommit_tasks WHERE name = NEW.task), {{MAX_ATTEMPTS}})
    WHERE id = NEW.id;
END;
