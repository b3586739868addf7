CREATE TRIGGER oncommit_jobs_refuse_bad_queue BEFORE INSERT ON oncommit_jobs
    WHEN NEW.queue IS NOT NULL AND (typeof(NEW.queue) <> 'text' OR NEW.queue = '' OR length(CAST(NEW.queue AS BLOB)) > 255
         OR instr(NEW.queue, ',') > 0 OR instr(NEW.queue, ':') > 0
         OR NEW.queue GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-' || char(159) || ']*')
         OR instr(CAST(NEW.queue AS BLOB), x'00') > 0)
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":" or control characters');
END;
