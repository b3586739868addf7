-- demo_runs: what the `record` task did, written in the transaction that completes its job,
-- so each completed job leaves exactly one row. No unique constraint on purpose: a
-- duplicate would be a bug to see, not an error to hide.
CREATE TABLE IF NOT EXISTS demo_runs (
    id          BIGSERIAL   PRIMARY KEY,
    key         TEXT        NOT NULL,
    job_id      BIGINT      NOT NULL,
    attempt     INTEGER     NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
