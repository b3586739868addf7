-- A queue's table churns: every job is inserted, updated at least twice (claimed, finished)
-- and deleted by pruning, so dead row versions pile up at the throughput's pace. PostgreSQL's
-- defaults wait for a fifth of the table to be dead before vacuuming it, and then vacuum
-- slowly; meanwhile claims and completions wade through the dead index entries, and space
-- freed by pruning is not reused, so the table grows. Vacuum it after 1 % (and at least
-- 1,000 rows), and without the throttling pause, so it keeps up.
ALTER TABLE oncommit.jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
