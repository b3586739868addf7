-- Uniqueness by content (see docs/jobs.md, "Unique jobs"): a job enqueued with
-- `EnqueueOptions::unique(…)` carries a hash of what makes it the same job (its task, all or
-- some of its args, its queue, the period it falls in, or an explicit key) and the set of
-- states in which that hash is held (a bitmask over scheduled = 1, available = 2,
-- running = 4, retryable = 8, completed = 16, failed = 32, cancelled = 64, pending = 128). At most one row
-- holds a given hash: the index jobs_unique_hash, built by migration 019 without blocking writes. Rows without a hash, and the older `unique_key`
-- rows, are not in it and cost it nothing.
ALTER TABLE oncommit.jobs ADD COLUMN IF NOT EXISTS unique_hash text;
ALTER TABLE oncommit.jobs ADD COLUMN IF NOT EXISTS unique_states integer;
