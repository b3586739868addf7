-- What the workers did, per queue and minute (see the PostgreSQL migration 015).
CREATE TABLE IF NOT EXISTS oncommit_queue_activity (
    minute  INTEGER NOT NULL,
    queue   TEXT    NOT NULL,
    metric  TEXT    NOT NULL,
    bucket  INTEGER NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (minute, queue, metric, bucket)
) WITHOUT ROWID;
