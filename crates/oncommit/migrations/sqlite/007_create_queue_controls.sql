-- Flow control of a whole queue (see the PostgreSQL migration of the same name). SQLite has
-- one writer at a time, so a controlled queue's claim counts and claims in one write
-- transaction; there are no SQL functions: `Db` and the CLI write this table.
CREATE TABLE IF NOT EXISTS oncommit_queues (
    name               TEXT    PRIMARY KEY CHECK (typeof(name) = 'text' AND name <> '' AND length(CAST(name AS BLOB)) <= 255
                                                  AND instr(name, ',') = 0 AND instr(name, ':') = 0),
    paused             INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    concurrency_limit  INTEGER CHECK (typeof(concurrency_limit) IN ('null', 'integer') AND concurrency_limit > 0),
    rate_limit         INTEGER CHECK (typeof(rate_limit) IN ('null', 'integer') AND rate_limit > 0),
    rate_period_ms     INTEGER CHECK (typeof(rate_period_ms) IN ('null', 'integer') AND rate_period_ms > 0),
    rate_window_ms     INTEGER,
    rate_window_starts INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    CHECK ((rate_limit IS NULL) = (rate_period_ms IS NULL))
);
