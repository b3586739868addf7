//! Seed 004: `atomic` is not magic. Two classic anomalies under each isolation level:
//!
//! - **lost update** (P4): A and B both read sock 1's `pairs`, both write back what they
//!   read plus one. Correct: 2. Under read committed B waits for A's row lock, then
//!   overwrites A's update (1); under repeatable read and serializable B's write fails with
//!   a serialization failure instead.
//! - **write skew** (G2-item): "at least one sock must stay black". Two black socks; A and B
//!   each count the black socks, see 2, and paint *their own* sock white. No row conflicts,
//!   so read committed and repeatable read (snapshot isolation) both let it through (0
//!   black); only serializable aborts one.
//!
//! On SQLite every writing transaction holds the database write lock from its `BEGIN
//! IMMEDIATE`: B waits for A to finish before reading anything, and both come out correct.

use std::time::Duration;

use oncommit::{Backend, Db, Error, Isolation, Tx};
use serde::Serialize;

use crate::schema;
use crate::session::{SCENARIO_WAIT, blocked_or_done, pid};

/// How one anomaly fared under one isolation level.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The isolation level both transactions ran at.
    pub isolation: Isolation,
    /// `anomaly` (both committed, wrong result), `serialization_failure` (one was aborted,
    /// nothing wrong committed) or `correct` (both committed, right result).
    pub outcome: &'static str,
    /// Whether B had to wait for A.
    pub blocked: bool,
    /// The value checked afterwards: `pairs` for lost update, black socks for write skew.
    pub final_value: i64,
    /// What the value must be (lost update), or must at least be (write skew).
    pub expected: i64,
    /// The errors A and B ended with, if any.
    pub errors: Vec<String>,
}

/// What happened, as `oncommit demo isolation --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `postgres` or `sqlite`.
    pub backend: Backend,
    /// Lost update (P4) under each level.
    pub lost_update: Vec<Outcome>,
    /// Write skew (G2-item) under each level.
    pub write_skew: Vec<Outcome>,
}

/// Runs both anomalies under every level on `db` (migrating the demo tables if needed).
pub async fn run(db: &Db) -> oncommit::Result<Report> {
    schema::migrate(db).await?;
    let mut report = Report { backend: db.backend(), lost_update: Vec::new(), write_skew: Vec::new() };
    for level in Isolation::ALL {
        report.lost_update.push(race(db, level, Anomaly::LostUpdate).await?);
        report.write_skew.push(race(db, level, Anomaly::WriteSkew).await?);
    }
    Ok(report)
}

#[derive(Debug, Clone, Copy)]
enum Anomaly {
    LostUpdate,
    WriteSkew,
}

impl Anomaly {
    fn socks(self) -> &'static [(i64, &'static str)] {
        match self {
            Anomaly::LostUpdate => &[(1, "black")],
            Anomaly::WriteSkew => &[(1, "black"), (2, "black")],
        }
    }

    /// A session's read: the value it will act on.
    async fn read(self, tx: &mut Tx<'_>) -> oncommit::Result<i64> {
        let sql = match self {
            Anomaly::LostUpdate => "SELECT CAST(pairs AS BIGINT) FROM socks WHERE id = 1",
            Anomaly::WriteSkew => "SELECT count(*) FROM socks WHERE colour = 'black'",
        };
        Ok(oncommit::with_conn!(tx.conn(), c => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await?))
    }

    /// Session `sock`'s write, decided on what it read.
    async fn write(self, tx: &mut Tx<'_>, sock: i64, seen: i64) -> oncommit::Result<()> {
        match self {
            Anomaly::LostUpdate => oncommit::with_conn!(tx.conn(), c => {
                sqlx::query("UPDATE socks SET pairs = $1 WHERE id = 1").bind(seen + 1).execute(c).await?;
            }),
            Anomaly::WriteSkew if seen >= 2 => oncommit::with_conn!(tx.conn(), c => {
                sqlx::query("UPDATE socks SET colour = 'white' WHERE id = $1").bind(sock).execute(c).await?;
            }),
            Anomaly::WriteSkew => {}
        }
        Ok(())
    }

    /// The checked value, and what it must be.
    async fn check(self, db: &Db) -> oncommit::Result<(i64, i64, bool)> {
        let mut conn = db.acquire().await?;
        let (sql, expected) = match self {
            Anomaly::LostUpdate => ("SELECT CAST(pairs AS BIGINT) FROM socks WHERE id = 1", 2),
            Anomaly::WriteSkew => ("SELECT count(*) FROM socks WHERE colour = 'black'", 1),
        };
        let value: i64 = oncommit::with_conn!(conn.conn(), c => sqlx::query_scalar(sql).fetch_one(c).await?);
        let correct = match self {
            Anomaly::LostUpdate => value == expected,
            Anomaly::WriteSkew => value >= expected,
        };
        Ok((value, expected, correct))
    }
}

/// A reads, B reads, A writes, B writes and commits while A commits; reports the outcome.
async fn race(db: &Db, level: Isolation, anomaly: Anomaly) -> oncommit::Result<Outcome> {
    schema::reset_socks(db, anomaly.socks()).await?;
    let begin = || db.transaction().isolation(level).lock_timeout(SCENARIO_WAIT);
    let mut a = begin().begin().await?;
    let seen_a = anomaly.read(&mut a).await?;
    let (blocked, a_result, b_result) = match db.backend() {
        Backend::Postgres => {
            let mut b = begin().begin().await?;
            let seen_b = anomaly.read(&mut b).await?;
            let b_pid = pid(&mut b).await?;
            anomaly.write(&mut a, 1, seen_a).await?;
            let b_task = tokio::spawn(async move {
                anomaly.write(&mut b, 2, seen_b).await?;
                b.commit().await
            });
            let blocked = blocked_or_done(db, b_pid, || b_task.is_finished()).await?;
            let a_result = a.commit().await;
            (blocked, a_result, b_task.await.expect("session B ran"))
        }
        Backend::Sqlite => {
            let blocked = matches!(
                db.transaction().lock_timeout(Duration::ZERO).begin().await.map(drop),
                Err(Error::Busy { .. })
            );
            anomaly.write(&mut a, 1, seen_a).await?;
            let a_result = a.commit().await;
            let b_result = async {
                let mut b = begin().begin().await?;
                let seen_b = anomaly.read(&mut b).await?;
                anomaly.write(&mut b, 2, seen_b).await?;
                b.commit().await
            }
            .await;
            (blocked, a_result, b_result)
        }
    };
    let errors: Vec<&Error> = [&a_result, &b_result].into_iter().filter_map(|r| r.as_ref().err()).collect();
    if let Some(unexpected) = errors.iter().find(|e| !e.is_serialization_failure()) {
        return Err(Error::app(format!("unexpected error in the isolation scenario: {unexpected}")));
    }
    let (final_value, expected, correct) = anomaly.check(db).await?;
    let outcome = match (errors.is_empty(), correct) {
        (false, _) => "serialization_failure",
        (true, true) => "correct",
        (true, false) => "anomaly",
    };
    Ok(Outcome {
        isolation: level,
        outcome,
        blocked,
        final_value,
        expected,
        errors: errors.iter().map(ToString::to_string).collect(),
    })
}
