//! `oncommit demo …`: runs a scenario of `oncommit_demo` and prints its report.

use std::time::Duration;

use oncommit::Db;
use oncommit_demo::{deadlock, isolation, race, select_for_update};
use serde::Serialize;

use crate::args::Demo;

pub(crate) async fn run(db: &Db, scenario: Option<Demo>, json: bool) -> anyhow::Result<()> {
    if let Some(scenario) = scenario {
        let (report, text) = report(db, scenario).await?;
        return print(json, &report, || text);
    }
    // All of them: one JSON object with a member per scenario, or the texts one after another.
    let mut all = serde_json::Map::new();
    let mut texts = Vec::new();
    for (name, scenario) in [
        ("select_for_update", Demo::SelectForUpdate { hold_ms: 1000 }),
        ("deadlock", Demo::Deadlock),
        ("isolation", Demo::Isolation),
        ("race", Demo::Race { iterations: 20, work_ms: 20 }),
    ] {
        let (report, text) = report(db, scenario).await?;
        all.insert(name.to_owned(), report);
        texts.push(text);
    }
    print(json, &all, || texts.join("\n"))
}

/// Runs one scenario; returns its report as JSON and as text.
async fn report(db: &Db, scenario: Demo) -> anyhow::Result<(serde_json::Value, String)> {
    match scenario {
        Demo::Race { iterations, work_ms, .. } => {
            let r = race::run(db, iterations, Duration::from_millis(work_ms)).await?;
            let text = {
                let mut text = format!(
                    "race on {}: {} views per way, each working {} ms after dispatching\n",
                    r.backend, r.iterations, r.work_ms
                );
                for (name, way) in
                    [("naive", &r.naive), ("on_commit", &r.on_commit), ("transactional", &r.transactional)]
                {
                    text.push_str(&format!(
                        "  {name:<14} runs={:<4} task_saw_missing_row={:<4} completed={}\n",
                        way.runs, way.task_saw_missing_row, way.completed
                    ));
                }
                text
            };
            Ok((serde_json::to_value(&r)?, text))
        }
        Demo::SelectForUpdate { hold_ms, .. } => {
            let r = select_for_update::run(db, Duration::from_millis(hold_ms)).await?;
            let text = {
                format!(
                    "select_for_update on {}: A held sock 1 for at least {} ms; B {} and got the lock after {} ms.\n{}",
                    r.backend,
                    r.hold_ms,
                    if r.blocked { "was blocked" } else { "was not blocked" },
                    r.waited_ms,
                    r.explanation
                )
            };
            Ok((serde_json::to_value(&r)?, text))
        }
        Demo::Deadlock => {
            let r = deadlock::run(db).await?;
            let text = {
                let victim = r.victim_error.as_deref().unwrap_or("none");
                format!(
                    "deadlock on {}:\n  opposite lock order: {} deadlock error(s) (victim: {victim})\n  \
                     same with retry: both committed = {} (attempts {:?})\n  \
                     ordered locking: {} deadlock(s) in {} concurrent pairs\n{}",
                    r.backend,
                    r.deadlock_errors,
                    r.with_retry_committed,
                    r.with_retry_attempts,
                    r.ordered_locking_deadlocks,
                    r.ordered_locking_pairs,
                    r.explanation
                )
            };
            Ok((serde_json::to_value(&r)?, text))
        }
        Demo::Isolation => {
            let r = isolation::run(db).await?;
            let text = {
                let mut text = format!("isolation on {}:\n", r.backend);
                for (name, outcomes) in [("lost update", &r.lost_update), ("write skew", &r.write_skew)] {
                    for o in outcomes {
                        text.push_str(&format!(
                            "  {name:<12} {:<16} {:<22} blocked={:<5} value={} (expected {})\n",
                            format!("{:?}", o.isolation),
                            o.outcome,
                            o.blocked,
                            o.final_value,
                            o.expected
                        ));
                    }
                }
                text
            };
            Ok((serde_json::to_value(&r)?, text))
        }
    }
}

/// Prints the report as one JSON object, or as text.
pub(crate) fn print<R: Serialize>(json: bool, report: &R, text: impl FnOnce() -> String) -> anyhow::Result<()> {
    let out = if json { serde_json::to_string(report)? } else { text() };
    #[allow(clippy::print_stdout)] // printing the report is this command's job
    {
        println!("{out}");
    }
    Ok(())
}
