//! What `oncommit doctor` checks, read only and safe against production: the schema's
//! version and drift, INVALID indexes, the jobs table and its vacuum, the history's
//! partitions, what holds vacuum back, leases nobody will renew, workers' clocks, LISTEN, and a transaction pooler the
//! URL does not announce. Each finding says what to do.
//!
//! ```
//! # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
//! let diagnosis = oncommit::doctor::diagnose(&db, &oncommit::doctor::DoctorOptions::default()).await;
//! for finding in diagnosis.findings.iter().filter(|f| f.verdict == oncommit::doctor::Verdict::Problem) {
//!     eprintln!("{}: {}", finding.check, finding.summary);
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::db::Db;
use crate::error::Error;
use crate::queries;

/// The thresholds of [`diagnose`].
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// A transaction (or prepared transaction) open longer than this, holding back vacuum,
    /// is a problem (default 60 s).
    pub transaction_age: Duration,
    /// A running job whose lease ran out this long ago, and whose worker has not beaten as
    /// long, is stale (default 60 s: the rescue of a live worker takes it well before).
    pub lease_grace: Duration,
    /// A worker's clock further than this from the database's is a problem (default 1 s).
    pub clock_tolerance: Duration,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            transaction_age: Duration::from_secs(60),
            lease_grace: Duration::from_secs(60),
            clock_tolerance: Duration::from_secs(1),
        }
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// Worth knowing, not wrong (a poll-only setup, a check that does not apply).
    Note,
    /// Something to fix: `oncommit doctor` exits 1.
    Problem,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The check, a stable name (`schema`, `schema_drift`, `invalid_indexes`, `jobs_table`,
    /// `vacuum_horizon`, `stale_leases`, `worker_clocks`, `listen`, `pooler`).
    pub check: &'static str,
    /// How it came out.
    pub verdict: Verdict,
    /// What was found, in a sentence.
    pub summary: String,
    /// What to do about it, when there is something to do.
    pub advice: Option<String>,
    /// The figures behind it, for scripts.
    pub details: serde_json::Value,
}

/// Every check's finding, in a fixed order.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// Whether no finding is a problem.
    pub healthy: bool,
    /// The findings.
    pub findings: Vec<Finding>,
}

fn finding(
    check: &'static str,
    verdict: Verdict,
    summary: String,
    advice: Option<&str>,
    details: serde_json::Value,
) -> Finding {
    Finding { check, verdict, summary, advice: advice.map(str::to_owned), details }
}

/// A check that could not run: a problem in itself, with the reason.
fn unchecked(check: &'static str, err: &Error) -> Finding {
    let advice = match err {
        Error::TransactionPooler { .. } => Some("add pooler=transaction to the URL (docs/deployment.md)"),
        _ => None,
    };
    finding(check, Verdict::Problem, format!("could not check: {err}"), advice, json!({ "error": err.to_string() }))
}

/// Runs every check on `db`, read only. A check that cannot run is a finding too, so the
/// diagnosis always comes back.
pub async fn diagnose(db: &Db, options: &DoctorOptions) -> Diagnosis {
    let mut findings = Vec::new();
    let current = match db.schema_status().await {
        Ok(status) => {
            let ok = status.check().is_ok();
            findings.push(finding(
                "schema",
                if ok { Verdict::Ok } else { Verdict::Problem },
                status.to_string(),
                None,
                json!({ "applied": status.applied, "expected": status.expected, "compatible_from": status.compatible_from }),
            ));
            status.is_current()
        }
        Err(err) => {
            findings.push(unchecked("schema", &err));
            false
        }
    };
    findings.push(if current {
        drift(db).await
    } else {
        skipped("schema_drift", "the schema is not at this binary's version")
    });
    if !current && findings[0].verdict == Verdict::Problem {
        // Without oncommit's tables as this binary knows them, the other checks read nothing.
        findings.extend(connection_checks(db).await);
        return conclude(findings);
    }
    findings.push(match queries::diagnostics::invalid_indexes(db).await {
        Ok(names) if names.is_empty() => {
            finding("invalid_indexes", Verdict::Ok, "no INVALID index".into(), None, json!([]))
        }
        Ok(names) => finding(
            "invalid_indexes",
            Verdict::Problem,
            format!("INVALID indexes (an interrupted build; every write still maintains them): {}", names.join(", ")),
            Some("run `oncommit migrate`, which builds them again; or REINDEX INDEX CONCURRENTLY each"),
            json!(names),
        ),
        Err(err) => unchecked("invalid_indexes", &err),
    });
    findings.push(jobs_table(db).await);
    findings.push(history(db).await);
    findings.push(vacuum_horizon(db, options).await);
    findings.push(match queries::diagnostics::stale_leases(db, options.lease_grace).await {
        Ok((0, _)) => finding(
            "stale_leases",
            Verdict::Ok,
            "no running job has outlived its lease".into(),
            None,
            json!({ "count": 0 }),
        ),
        Ok((count, first)) => finding(
            "stale_leases",
            Verdict::Problem,
            format!(
                "{count} running jobs have outlived their leases and their workers (the first: job {})",
                first.unwrap_or(0)
            ),
            Some("start a worker on their queues: its rescue makes them retryable"),
            json!({ "count": count, "first_id": first }),
        ),
        Err(err) => unchecked("stale_leases", &err),
    });
    findings.push(worker_clocks(db, options).await);
    findings.extend(connection_checks(db).await);
    conclude(findings)
}

/// The diagnosis when connecting to the database failed with `err`: one finding,
/// `pooler` for a transaction pooler the URL does not announce, else `connection`.
pub fn unconnected(err: &Error) -> Diagnosis {
    let check = if matches!(err, Error::TransactionPooler { .. }) { "pooler" } else { "connection" };
    let mut found = unchecked(check, err);
    found.summary = format!("could not connect: {err}");
    conclude(vec![found])
}

fn conclude(findings: Vec<Finding>) -> Diagnosis {
    Diagnosis { healthy: findings.iter().all(|f| f.verdict != Verdict::Problem), findings }
}

fn skipped(check: &'static str, why: &str) -> Finding {
    finding(check, Verdict::Note, format!("not checked: {why}"), None, json!(null))
}

/// The live schema against the one this binary's migrations produce (the snapshot the
/// suite keeps true), line by line: missing or extra columns, constraints, indexes,
/// triggers, functions.
async fn drift(db: &Db) -> Finding {
    let live = match queries::diagnostics::schema_describe(db).await {
        Ok(live) => live,
        Err(err) => return unchecked("schema_drift", &err),
    };
    let expected = on_backend!(db.backend(), const SCHEMA_SNAPSHOT);
    let lines = |text: &str| -> BTreeSet<String> {
        let mut section = "";
        let mut out = BTreeSet::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("-- ") {
                section = if name == "migrations" { "skip" } else { "keep" };
            } else if section == "keep" && !line.trim().is_empty() {
                out.insert(line.trim().to_owned());
            }
        }
        out
    };
    let (live, expected) = (lines(&live), lines(expected));
    let missing: Vec<&String> = expected.difference(&live).collect();
    let extra: Vec<&String> = live.difference(&expected).collect();
    if missing.is_empty() && extra.is_empty() {
        return finding("schema_drift", Verdict::Ok, "the schema is what the migrations make".into(), None, json!({}));
    }
    let show = |v: &[&String]| v.iter().take(5).map(|s| s.as_str()).collect::<Vec<_>>().join(" | ");
    finding(
        "schema_drift",
        Verdict::Problem,
        format!(
            "the schema differs from what the migrations make: {} lines missing ({}), {} extra ({})",
            missing.len(),
            show(&missing),
            extra.len(),
            show(&extra)
        ),
        Some(
            "restore what is missing (an index dropped by hand: build it again, CONCURRENTLY); drop or explain what is extra",
        ),
        json!({ "missing": missing, "extra": extra }),
    )
}

async fn jobs_table(db: &Db) -> Finding {
    let stats = match db.jobs().table_stats().await {
        Ok(stats) => stats,
        Err(err) => return unchecked("jobs_table", &err),
    };
    let settings = queries::diagnostics::vacuum_settings(db).await.unwrap_or_default();
    let (live, dead) = (stats.live_rows.unwrap_or(0), stats.dead_rows.unwrap_or(0));
    let details = json!({
        "bytes": stats.bytes, "live_rows": stats.live_rows, "dead_rows": stats.dead_rows,
        "last_vacuum_at": stats.last_vacuum_at, "vacuum_settings": settings,
    });
    let summary = format!(
        "{} MB, {live} live rows, {dead} dead, last vacuumed {}; settings: {}",
        stats.bytes / 1_000_000,
        stats.last_vacuum_at.map_or("never".to_owned(), |at| format!("{} s ago", (now_ms() - at).max(0) / 1000)),
        if settings.is_empty() { "the server's defaults".to_owned() } else { settings.join(", ") }
    );
    // Vacuum on oncommit's settings runs after 1 % of the rows died: far more dead rows
    // than that means it cannot keep up, or something holds it back.
    if dead > 10_000 && dead > live / 5 {
        return finding(
            "jobs_table",
            Verdict::Problem,
            format!("vacuum is not keeping up: {summary}"),
            Some(
                "see vacuum_horizon for what holds it back; check the retention (Worker::retention) and autovacuum's workers",
            ),
            details,
        );
    }
    finding("jobs_table", Verdict::Ok, summary, None, details)
}

/// The history's partitions (PostgreSQL, docs/history.md): the leader makes them ahead of
/// time; when it does not (its role may not, or no worker runs), jobs finishing now land in
/// a default partition, pruned row by row, and the dead rows come back.
async fn history(db: &Db) -> Finding {
    use queries::history::HistoryClass;
    let mut details = serde_json::Map::new();
    let mut stranded = Vec::new();
    for class in HistoryClass::ALL {
        let leaves = match queries::history::history_leaves(db, class).await {
            Ok(Some(leaves)) => leaves,
            Ok(None) => {
                return finding(
                    "history",
                    Verdict::Note,
                    "finished jobs stay in the jobs table (SQLite keeps no history)".into(),
                    None,
                    json!(null),
                );
            }
            Err(err) => return unchecked("history", &err),
        };
        let ahead_until = leaves.leaves.iter().map(|l| l.to).max();
        // Jobs finished in the last hour where no partition was, while none is made ahead.
        let recent = leaves.unplaced_until.is_some_and(|t| t > leaves.now - chrono::TimeDelta::hours(1));
        let ahead = ahead_until.is_some_and(|t| t > leaves.now + chrono::TimeDelta::minutes(5));
        if recent && !ahead {
            stranded.push(class.as_str());
        }
        details.insert(
            class.as_str().to_owned(),
            json!({
                "partitions": leaves.leaves.len(),
                "counted": leaves.leaves.iter().filter(|l| l.counted).count(),
                "ahead_until": ahead_until,
                "unplaced_until": leaves.unplaced_until,
            }),
        );
    }
    let summary = HistoryClass::ALL
        .iter()
        .map(|class| format!("{}: {} partitions", class.as_str(), details[class.as_str()]["partitions"]))
        .collect::<Vec<_>>()
        .join(", ");
    if stranded.is_empty() {
        return finding("history", Verdict::Ok, summary, None, serde_json::Value::Object(details));
    }
    finding(
        "history",
        Verdict::Problem,
        format!(
            "no partition is made ahead for the {} history and jobs finishing now land in its default partition \
             ({summary})",
            stranded.join(" and ")
        ),
        Some(
            "run a worker (its leader makes them); the workers' role needs CREATE on schema oncommit and to own \
             oncommit.job_history_completed and oncommit.job_history_discarded: the worker logs why it could not",
        ),
        serde_json::Value::Object(details),
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn vacuum_horizon(db: &Db, options: &DoctorOptions) -> Finding {
    let holders = match queries::diagnostics::vacuum_holders(db).await {
        Ok(holders) => holders,
        Err(err) => return unchecked("vacuum_horizon", &err),
    };
    let limit = i64::try_from(options.transaction_age.as_secs()).unwrap_or(i64::MAX);
    let details: Vec<serde_json::Value> = holders
        .iter()
        .map(|h| {
            json!({ "kind": h.kind, "name": h.name, "age_secs": h.age_secs, "application": h.application,
                    "state": h.state, "query_start_ms": h.query_start_ms })
        })
        .collect();
    let bad: Vec<String> = holders
        .iter()
        .filter(|h| match h.kind {
            "replication slot" => h.state.as_deref() == Some("inactive"),
            _ => h.age_secs.is_some_and(|age| age >= limit),
        })
        .map(|h| match h.kind {
            "transaction" => format!(
                "session {} ({}, {}) in a transaction for {} s",
                h.name,
                h.application.as_deref().filter(|a| !a.is_empty()).unwrap_or("no application name"),
                h.state.as_deref().unwrap_or("?"),
                h.age_secs.unwrap_or(0)
            ),
            "prepared transaction" => format!("prepared transaction {} for {} s", h.name, h.age_secs.unwrap_or(0)),
            _ => format!("inactive replication slot {}", h.name),
        })
        .collect();
    if bad.is_empty() {
        return finding(
            "vacuum_horizon",
            Verdict::Ok,
            "nothing holds back vacuum for long".into(),
            None,
            json!(details),
        );
    }
    finding(
        "vacuum_horizon",
        Verdict::Problem,
        format!("vacuum is held back (dead jobs pile up and the queue slows): {}", bad.join("; ")),
        Some(
            "end it: COMMIT or pg_terminate_backend(pid) for a session, COMMIT PREPARED / ROLLBACK PREPARED, \
             pg_drop_replication_slot for a slot no one reads; set idle_in_transaction_session_timeout",
        ),
        json!(details),
    )
}

async fn worker_clocks(db: &Db, options: &DoctorOptions) -> Finding {
    let clocks = match queries::diagnostics::worker_clocks(db, Duration::from_secs(60)).await {
        Ok(clocks) => clocks,
        Err(err) => return unchecked("worker_clocks", &err),
    };
    let tolerance = i64::try_from(options.clock_tolerance.as_millis()).unwrap_or(i64::MAX);
    let details: Vec<serde_json::Value> =
        clocks.iter().map(|(id, offset)| json!({ "worker": id, "offset_ms": offset })).collect();
    let skewed: Vec<String> = clocks
        .iter()
        .filter_map(|(id, offset)| offset.filter(|o| o.abs() > tolerance).map(|o| format!("{id} ({o:+} ms)")))
        .collect();
    if skewed.is_empty() {
        let summary = format!("{} live workers, clocks within {} ms of the database's", clocks.len(), tolerance);
        return finding("worker_clocks", Verdict::Ok, summary, None, json!(details));
    }
    finding(
        "worker_clocks",
        Verdict::Problem,
        format!("workers whose clock is off the database's: {}", skewed.join(", ")),
        Some(
            "run NTP (chrony, systemd-timesyncd) on their hosts; oncommit's leases use the database's clock, a task's own times do not",
        ),
        json!(details),
    )
}

/// LISTEN, and a transaction pooler the URL does not announce.
async fn connection_checks(db: &Db) -> Vec<Finding> {
    if !on_backend!(db.backend(), const NOTIFIES) {
        let why = "SQLite: workers of one process wake each other, others poll";
        return vec![skipped("listen", why), skipped("pooler", "SQLite has no pooler")];
    }
    #[cfg(feature = "postgres")]
    {
        let listen = match crate::driver::postgres::diagnostics::listen_works(db).await {
            Ok(Some(true)) => finding(
                "listen",
                Verdict::Ok,
                "LISTEN works: workers wake within milliseconds".into(),
                None,
                json!(true),
            ),
            Ok(Some(false)) => finding(
                "listen",
                Verdict::Problem,
                "a NOTIFY did not arrive within 2 s: workers wake only at their poll".into(),
                Some(
                    "give LISTEN a direct URL (--listen-url, ONCOMMIT_LISTEN_URL): a transaction pooler does not forward notifications",
                ),
                json!(false),
            ),
            Ok(None) => finding(
                "listen",
                Verdict::Note,
                "no LISTEN connection (a transaction pooler without a listen URL): workers poll".into(),
                Some("give LISTEN a direct URL (--listen-url, ONCOMMIT_LISTEN_URL) for wake-ups within milliseconds"),
                json!(null),
            ),
            Err(err) => unchecked("listen", &err),
        };
        let pooler = match crate::driver::postgres::diagnostics::transaction_pooled(db).await {
            Ok(None) => finding(
                "pooler",
                Verdict::Ok,
                "the URL announces its transaction pooler".into(),
                None,
                json!("transaction"),
            ),
            Ok(Some(false)) => {
                finding("pooler", Verdict::Ok, "each connection keeps its server session".into(), None, json!(null))
            }
            Ok(Some(true)) => finding(
                "pooler",
                Verdict::Problem,
                "a transaction pooler sits in the path (one connection's statements ran on different server sessions) \
                 and the URL does not say so"
                    .into(),
                Some("add pooler=transaction to the URL (docs/deployment.md)"),
                json!("unannounced"),
            ),
            Err(err) => unchecked("pooler", &err),
        };
        vec![listen, pooler]
    }
    #[cfg(not(feature = "postgres"))]
    unreachable!("only PostgreSQL notifies")
}
