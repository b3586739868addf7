CREATE TRIGGER oncommit_tasks_refuse_control_characters_changed BEFORE UPDATE OF queue ON oncommit_tasks
    WHEN NEW.queue GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-' || char(159) || ']*')
         OR instr(CAST(NEW.queue AS BLOB), x'00') > 0
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":" or control characters');
END;
