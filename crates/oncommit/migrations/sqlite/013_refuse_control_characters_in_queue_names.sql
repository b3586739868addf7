-- A queue name with a control character (NUL, a newline, a tab, DEL, the C1 range) cannot be
-- named on a worker's command line or in its --queues list: a job in such a queue would
-- stay available for ever. Rust refuses it (check_queue_name); this refuses it on the SQL
-- paths too: a raw INSERT of a job, and the queues' and tasks' tables. Triggers on INSERT
-- (and on a change of the name): rows written before them still claim, fail and delete.
-- GLOB compares code points, so the range covers the C1 controls too.
DROP TRIGGER IF EXISTS oncommit_jobs_refuse_bad_queue;
CREATE TRIGGER oncommit_jobs_refuse_bad_queue BEFORE INSERT ON oncommit_jobs
    WHEN NEW.queue IS NOT NULL AND (typeof(NEW.queue) <> 'text' OR NEW.queue = '' OR length(CAST(NEW.queue AS BLOB)) > 255
         OR instr(NEW.queue, ',') > 0 OR instr(NEW.queue, ':') > 0
         OR NEW.queue GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-' || char(159) || ']*')
         OR instr(CAST(NEW.queue AS BLOB), x'00') > 0)
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":" or control characters');
END;

CREATE TRIGGER oncommit_queues_refuse_control_characters BEFORE INSERT ON oncommit_queues
    WHEN NEW.name GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-' || char(159) || ']*')
         OR instr(CAST(NEW.name AS BLOB), x'00') > 0
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":" or control characters');
END;

CREATE TRIGGER oncommit_queues_refuse_control_characters_renamed BEFORE UPDATE OF name ON oncommit_queues
    WHEN NEW.name GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-' || char(159) || ']*')
         OR instr(CAST(NEW.name AS BLOB), x'00') > 0
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":" or control characters');
END;

CREATE TRIGGER oncommit_tasks_refuse_control_characters BEFORE INSERT ON oncommit_tasks
    WHEN NEW.queue GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-' || char(159) || ']*')
         OR instr(CAST(NEW.queue AS BLOB), x'00') > 0
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":" or control characters');
END;

CREATE TRIGGER oncommit_tasks_refuse_control_characters_changed BEFORE UPDATE OF queue ON oncommit_tasks
    WHEN NEW.queue GLOB ('*[' || char(1) || '-' || char(31) || char(127) || '-' || char(159) || ']*')
         OR instr(CAST(NEW.queue AS BLOB), x'00') > 0
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":" or control characters');
END;
