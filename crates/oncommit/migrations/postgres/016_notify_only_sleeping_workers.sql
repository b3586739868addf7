-- Enqueues from SQL NOTIFY only while a worker sleeps on the queue.
--
-- A transaction that NOTIFYs holds PostgreSQL's notify lock from its commit until its WAL is
-- flushed, so concurrent enqueuing commits wait for each other's flushes: `BEGIN; SELECT
-- oncommit.enqueue(…); COMMIT` from 8 clients ran at about 0.6 of a plain INSERT. A
-- NOTIFY is needed only by a worker that waits for one: a busy worker claims again as
-- soon as it has free slots. So a worker that finds its queue empty records that it
-- sleeps (`sleepers`) before it waits, and takes itself off when its claims come back
-- full; oncommit.enqueue and enqueue_many NOTIFY only when a sleeper is recorded.
--
-- No wake-up is lost between the two: an enqueuer holds a shared advisory lock on the
-- queue from its check until its commit, and a worker records itself under the exclusive
-- lock, so it waits for the enqueuers that checked before it, whose jobs are then
-- committed, and claims once more after recording; an enqueuer that checks after sees the
-- record (each statement of these functions reads a fresh snapshot). A caller in
-- REPEATABLE READ or SERIALIZABLE reads the snapshot of its first statement and may miss a
-- record made since: its job then waits for the worker's poll.
--
-- Unlogged: a crash empties it, and the workers record themselves again when they sleep.
-- A dead worker's rows are removed with its row in `workers`; until then they only cost
-- enqueuers a NOTIFY.
CREATE UNLOGGED TABLE IF NOT EXISTS oncommit.sleepers (
    queue  text        NOT NULL,
    worker text        NOT NULL,
    since  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, worker)
);

-- The advisory lock of a queue's sleepers: class 1 of oncommit's two-key advisory locks
-- (concurrency keys use the one-key form), the queue's hash.
-- include: current/wake_sleepers.sql

-- oncommit.enqueue and oncommit.enqueue_many as before (migrations 006 and 008), waking
-- through oncommit.wake_sleepers.
-- include: current/enqueue.sql

-- include: current/enqueue_many.sql
