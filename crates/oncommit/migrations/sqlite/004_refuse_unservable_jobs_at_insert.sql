-- Refuse at the door what no worker could serve, whoever inserts (oncommit, the documented
-- raw INSERT, another language): a run_at that is not whole epoch milliseconds in the years
-- 1..9999, and a queue name a worker cannot be told to serve (empty, over 255 bytes, or
-- containing the separators `,` and `:` of `--queues a,b:4`). Triggers on INSERT only: rows
-- written before them still claim, fail and delete normally.
-- include: current/jobs_refuse_bad_run_at.sql

-- include: current/jobs_refuse_bad_queue.sql
