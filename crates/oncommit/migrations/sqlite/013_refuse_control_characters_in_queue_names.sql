-- A queue name with a control character (NUL, a newline, a tab, DEL, the C1 range) cannot be
-- named on a worker's command line or in its --queues list: a job in such a queue would
-- stay available for ever. Rust refuses it (check_queue_name); this refuses it on the SQL
-- paths too: a raw INSERT of a job, and the queues' and tasks' tables. Triggers on INSERT
-- (and on a change of the name): rows written before them still claim, fail and delete.
-- GLOB compares code points, so the range covers the C1 controls too.
DROP TRIGGER IF EXISTS oncommit_jobs_refuse_bad_queue;
-- include: current/jobs_refuse_bad_queue.sql

-- include: current/queues_refuse_control_characters.sql

-- include: current/queues_refuse_control_characters_renamed.sql

-- include: current/tasks_refuse_control_characters.sql

-- include: current/tasks_refuse_control_characters_changed.sql
