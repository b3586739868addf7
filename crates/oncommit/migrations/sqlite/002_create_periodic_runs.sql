-- The last period for which each periodic job was enqueued (see the PostgreSQL migration).
CREATE TABLE oncommit_periodic_runs (
    name        TEXT    PRIMARY KEY,
    last_period INTEGER NOT NULL
);
