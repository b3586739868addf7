CREATE TRIGGER oncommit_queues_refuse_control_characters BEFORE INSERT ON oncommit_queues
    WHEN NEW.name GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-' || char(159) || ']*')
         OR instr(CAST(NEW.name AS BLOB), x'00') > 0
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":" or control characters');
END;
