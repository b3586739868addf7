//! `oncommit enqueue | jobs | job | stats | retry | cancel | delete | tasks | workers` (one job each;
//! `bulk` acts on a selection).

use std::time::Duration;

use oncommit::admin::Cancelled;
use oncommit::{Db, EnqueueOptions, Job, JobId, JobState};
use serde_json::{Value, json};

use crate::args::EnqueueArgs;
use crate::demo::print;
use crate::exit::Exit;

pub(crate) async fn enqueue(db: &Db, a: EnqueueArgs, as_json: bool) -> anyhow::Result<()> {
    let args: Value =
        serde_json::from_str(&a.args).map_err(|e| Exit::Usage(format!("--args is not JSON ({e}): {}", a.args)))?;
    let mut opts = EnqueueOptions::new();
    if let Some(q) = a.queue {
        opts = opts.queue(q);
    }
    if let Some(p) = a.priority {
        opts = opts.priority(p);
    }
    if let Some(ms) = a.delay_ms {
        opts = opts.delay(Duration::from_millis(ms));
    }
    if let Some(n) = a.max_attempts {
        opts = opts.max_attempts(n);
    }
    if let Some(k) = a.unique_key {
        opts = opts.unique_key(k);
    }
    if !a.depends_on.is_empty() {
        opts = opts.depends_on(a.depends_on.iter().map(|id| JobId(*id)));
    }
    if a.run_after_failed_parents {
        opts = opts.run_after_failed_parents();
    }
    if let Some(key) = a.concurrency_key {
        opts = opts.concurrency_key(key);
    }
    if let Some(limit) = a.key_limit {
        opts = opts.concurrency_key_limit(limit);
    }
    if let Some(key) = a.fair_key {
        opts = opts.fair_key(key);
    }
    if let Some(weight) = a.fair_weight {
        opts = opts.fair_weight(weight);
    }
    if let Some(mut unique) = a.unique {
        if a.unique_queue {
            unique = unique.by_queue();
        }
        if let Some(period) = a.unique_period {
            unique = unique.period(period);
        }
        if !a.unique_states.is_empty() {
            unique = unique.states(a.unique_states);
        }
        if a.replace {
            unique = unique.replace();
        }
        opts = opts.unique(unique);
    }
    let id = db.enqueue_raw(&a.task, &args, opts).await?;
    print(as_json, &json!({ "id": id, "task": a.task }), || id.to_string())
}

/// A page of jobs; in text, the command for the next page follows the table.
pub(crate) async fn jobs(db: &Db, args: &crate::args::JobsArgs, as_json: bool) -> anyhow::Result<()> {
    let (selection, page) = args.query();
    let listed = db.jobs().list(&selection, &page).await?;
    let jobs = &listed.jobs;
    print(as_json, &json!(listed), || {
        let mut text =
            format!("{:>8}  {:<10} {:<12} {:<14} {:>7}  last error\n", "id", "state", "queue", "task", "attempt");
        for j in jobs {
            let error = j.errors.last().map(|e| e.error.as_str()).unwrap_or("");
            text.push_str(&format!(
                "{:>8}  {:<10} {:<12} {:<14} {:>3}/{:<3}  {}\n",
                j.id,
                j.state,
                shown(&j.queue),
                shown(&j.task),
                j.attempt,
                j.max_attempts,
                shown(error)
            ));
        }
        if let Some(cursor) = listed.next_cursor {
            text.push_str(&format!("more: the same command with --cursor {cursor}\n"));
        }
        text
    })
}

pub(crate) async fn job(db: &Db, id: i64, json: bool) -> anyhow::Result<()> {
    let Some(job) = db.jobs().get(JobId(id)).await? else { return Err(Exit::NotFound(format!("no job {id}")).into()) };
    print(json, &job, || describe(&job))
}

/// Stored text (args, errors, names) as the terminal may show it: control characters
/// escaped, so a job cannot send escape sequences to an operator's terminal.
pub(crate) fn shown(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn describe(j: &Job) -> String {
    let mut text = format!(
        "job {}: {} on {} — {} (attempt {}/{})\nargs: {}\ncreated {} · run at {}",
        j.id,
        shown(&j.task),
        shown(&j.queue),
        j.state,
        j.attempt,
        j.max_attempts,
        shown(&j.args.to_string()),
        j.created_at,
        j.run_at
    );
    if let Some(t) = j.attempted_at {
        text.push_str(&format!(" · attempted {t}"));
    }
    if let Some(t) = j.finished_at {
        text.push_str(&format!(" · finished {t}"));
    }
    if let Some(key) = &j.unique_key {
        text.push_str(&format!("\nunique key: {}", shown(key)));
    }
    if let Some(workflow) = &j.workflow_id {
        text.push_str(&format!("\nworkflow: {} (oncommit workflow {0})", shown(workflow)));
    }
    if let Some(result) = &j.result {
        text.push_str(&format!("\nresult: {}", shown(&result.to_string())));
    }
    if let Some(key) = &j.concurrency_key {
        text.push_str(&format!("\nconcurrency key: {}", shown(key)));
    }
    if let Some(key) = &j.fair_key {
        text.push_str(&format!("\nfair key: {}", shown(key)));
    }
    for e in &j.errors {
        let by = e.worker.as_deref().map(|w| format!(" on {}", shown(w))).unwrap_or_default();
        text.push_str(&format!("\n  attempt {}{by}: {}", e.attempt, shown(&e.error)));
    }
    text
}

/// `oncommit stats --json`: every state at the top level (`"completed": 12`), and the same
/// per queue under `queues`.
pub(crate) async fn stats(db: &Db, json: bool) -> anyhow::Result<()> {
    let stats = db.jobs().stats().await?;
    let table = db.jobs().table_stats().await?;
    let mut object = serde_json::Map::new();
    for (state, n) in &stats.total {
        object.insert(state.as_str().to_owned(), json!(n));
    }
    object.insert("queues".into(), json!(stats.queues));
    object.insert("table".into(), json!(table));
    print(json, &Value::Object(object), || {
        let mut text = format!("{:<14}", "queue");
        for s in JobState::ALL {
            text.push_str(&format!("{:>11}", s.as_str()));
        }
        for (queue, counts) in stats.queues.iter().chain(std::iter::once((&"(all)".to_owned(), &stats.total))) {
            text.push_str(&format!("\n{queue:<14}"));
            for s in JobState::ALL {
                text.push_str(&format!("{:>11}", counts[&s]));
            }
        }
        text.push_str(&format!("\n\njobs table: {:.1} MiB", table.bytes as f64 / 1_048_576.0));
        if let Some(free) = table.free_bytes {
            text.push_str(&format!(" ({:.1} MiB free for reuse)", free as f64 / 1_048_576.0));
        }
        if let (Some(live), Some(dead)) = (table.live_rows, table.dead_rows) {
            text.push_str(&format!(", about {live} live and {dead} dead rows"));
        }
        if let Some(at) = table.last_vacuum_at.and_then(chrono::DateTime::from_timestamp_millis) {
            text.push_str(&format!(", last vacuumed {}", at.format("%Y-%m-%d %H:%M:%S UTC")));
        }
        text
    })
}

pub(crate) async fn retry(db: &Db, id: i64, json: bool) -> anyhow::Result<()> {
    if !db.jobs().retry(JobId(id)).await? {
        return Err(match db.jobs().get(JobId(id)).await? {
            None => Exit::NotFound(format!("no job {id}")),
            Some(_) => Exit::Refused(format!("job {id} cannot be retried: it is running")),
        }
        .into());
    }
    print(json, &json!({ "id": id, "state": "available" }), || format!("job {id} is available again"))
}

pub(crate) async fn cancel(db: &Db, id: i64, json: bool) -> anyhow::Result<()> {
    let (outcome, said) = match db.jobs().cancel(JobId(id)).await? {
        Cancelled::Cancelled => ("cancelled", format!("job {id} cancelled")),
        Cancelled::Requested => ("requested", format!("job {id} is running: its worker was asked to stop it")),
        Cancelled::NotCancellable => {
            return Err(match db.jobs().get(JobId(id)).await? {
                None => Exit::NotFound(format!("no job {id}")),
                Some(_) => Exit::Refused(format!("job {id} cannot be cancelled: it has finished")),
            }
            .into());
        }
    };
    print(json, &json!({ "id": id, "outcome": outcome }), || said)
}

pub(crate) async fn delete(db: &Db, id: i64, json: bool) -> anyhow::Result<()> {
    if !db.jobs().delete(JobId(id)).await? {
        return Err(match db.jobs().get(JobId(id)).await? {
            None => Exit::NotFound(format!("no job {id}")),
            Some(_) => Exit::Refused(format!("job {id} cannot be deleted: it is running")),
        }
        .into());
    }
    print(json, &json!({ "id": id, "deleted": true }), || format!("job {id} deleted"))
}

/// `oncommit workflow ID`: each job indented one level deeper than its deepest parent.
pub(crate) async fn workflow(db: &Db, id: &str, json: bool) -> anyhow::Result<()> {
    let jobs = db.jobs().workflow(id).await?;
    if jobs.is_empty() {
        return Err(Exit::NotFound(format!("no workflow {} (or all its jobs were pruned)", shown(id))).into());
    }
    let mut depth: std::collections::HashMap<JobId, usize> = std::collections::HashMap::new();
    for step in &jobs {
        // Parents come first (lower ids), so their depths are known.
        let d = step.parents.iter().filter_map(|p| depth.get(p)).max().map_or(0, |d| d + 1);
        depth.insert(step.job.id, d);
    }
    print(json, &json!({ "id": id, "jobs": jobs }), || {
        let count = |state: JobState| jobs.iter().filter(|s| s.job.state == state).count();
        let mut text = format!("workflow {}: {} jobs", shown(id), jobs.len());
        for state in JobState::ALL {
            if count(state) > 0 {
                text.push_str(&format!(", {} {state}", count(state)));
            }
        }
        for step in &jobs {
            let indent = "  ".repeat(depth[&step.job.id] + 1);
            let parents: Vec<String> = step.parents.iter().map(ToString::to_string).collect();
            text.push_str(&format!(
                "\n{indent}{:<6} {:<16} {:<10}",
                step.job.id,
                shown(&step.job.task),
                step.job.state
            ));
            if !parents.is_empty() {
                text.push_str(&format!(" ← {}", parents.join(", ")));
            }
            if let Some(result) = &step.job.result {
                text.push_str(&format!("  {}", shown(&result.to_string())));
            }
            if let Some(error) = step.job.errors.last() {
                text.push_str(&format!("  ({})", shown(&error.error)));
            }
        }
        text
    })
}

pub(crate) async fn tasks(db: &Db, json: bool) -> anyhow::Result<()> {
    let tasks = db.workers().tasks().await?;
    print(json, &json!({ "tasks": tasks }), || {
        let mut text =
            format!("{:<24} {:<16} {:>8} {:>12}  declared by\n", "task", "queue", "priority", "max_attempts");
        for t in &tasks {
            text.push_str(&format!(
                "{:<24} {:<16} {:>8} {:>12}  {}\n",
                shown(&t.task),
                shown(&t.queue),
                t.priority,
                t.max_attempts,
                shown(&t.declared_by)
            ));
        }
        text.trim_end().to_owned()
    })
}

pub(crate) async fn workers(db: &Db, json: bool) -> anyhow::Result<()> {
    let workers = db.workers().list().await?;
    print(json, &json!({ "workers": workers }), || {
        workers
            .iter()
            .map(|w| format!("{}  pid {}  queues {}  heartbeat {}", w.id, w.pid, w.queues, w.heartbeat_at))
            .collect::<Vec<_>>()
            .join("\n")
    })
}
