-- A queue's rate limit per concurrency key (see the PostgreSQL migration of the same name).
ALTER TABLE oncommit_queues ADD COLUMN rate_limit_per_key INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS oncommit_rate_windows (
    queue     TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    window_ms INTEGER NOT NULL,
    starts    INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
