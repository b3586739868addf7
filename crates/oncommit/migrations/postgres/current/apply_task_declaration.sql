CREATE OR REPLACE FUNCTION oncommit.apply_task_declaration() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    declared_queue    text;
    declared_priority smallint;
    declared_attempts integer;
BEGIN
    SELECT t.queue, t.priority, t.max_attempts INTO declared_queue, declared_priority, declared_attempts
    FROM oncommit.tasks t WHERE t.name = NEW.task;
    NEW.queue := coalesce(NEW.queue, declared_queue, '{{QUEUE}}');
    NEW.priority := coalesce(NEW.priority, declared_priority, {{PRIORITY}});
    NEW.max_attempts := coalesce(NEW.max_attempts, declared_attempts, {{MAX_ATTEMPTS}});
    RETURN NEW;
END
$$;
