-- The last period for which each periodic job was enqueued: claiming a period here, in
-- the transaction that enqueues its job, makes the enqueue exactly once per period even if
-- two leaders overlap.
CREATE TABLE oncommit.periodic_runs (
    name        text   PRIMARY KEY,
    last_period bigint NOT NULL
);
