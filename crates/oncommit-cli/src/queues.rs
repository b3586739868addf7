//! `oncommit queues` and `oncommit queue pause | resume | limit | rate-limit`.

use oncommit::Db;
use oncommit::admin::QueueInfo;
use serde_json::json;

use crate::admin::shown;
use crate::args::QueueAction;
use crate::demo::print;
use crate::parse::{Limit, Rate};

pub(crate) async fn list(db: &Db, json: bool) -> anyhow::Result<()> {
    let queues = db.queues().list().await?;
    print(json, &json!({ "queues": queues }), || {
        let mut text = format!(
            "{:<20} {:<7} {:>11} {:>16} {:>10} {:>8} {:>8} {:>8} {:>9}\n",
            "queue", "state", "concurrency", "rate", "available", "running", "waiting", "workers", "lag"
        );
        for q in &queues {
            text.push_str(&line(q));
            text.push('\n');
        }
        text.trim_end().to_owned()
    })
}

pub(crate) async fn act(db: &Db, action: QueueAction, json: bool) -> anyhow::Result<()> {
    let name = action.name().to_owned();
    let done = match action {
        QueueAction::Pause { .. } => {
            db.queues().pause(&name).await?;
            "paused: no worker claims its jobs; running ones finish"
        }
        QueueAction::Resume { .. } => {
            db.queues().resume(&name).await?;
            "resumed"
        }
        QueueAction::Limit { limit: Limit(limit), .. } => {
            db.queues().set_concurrency_limit(&name, limit).await?;
            "concurrency limit set"
        }
        QueueAction::RateLimit { rate: Rate(rate), per_key, .. } => {
            let rate = rate.map(|r| if per_key { r.per_key() } else { r });
            db.queues().set_rate_limit(&name, rate).await?;
            "rate limit set"
        }
    };
    let queue = db.queues().get(&name).await?;
    print(json, &json!({ "queue": queue }), || format!("queue {}: {done}\n{}", shown(&name), line(&queue)))
}

/// One queue as a line of the listing.
fn line(q: &QueueInfo) -> String {
    let limit = q.concurrency_limit.map_or("-".to_owned(), |n| n.to_string());
    let rate = q.rate_limit.map_or("-".to_owned(), |r| {
        format!("{}/{}ms{}", r.max_starts, r.period.as_millis(), if r.per_key { " per key" } else { "" })
    });
    format!(
        "{:<20} {:<7} {:>11} {:>16} {:>10} {:>8} {:>8} {:>8} {:>8.1}s",
        shown(&q.name),
        if q.paused { "paused" } else { "active" },
        limit,
        rate,
        q.available,
        q.running,
        q.waiting,
        q.workers,
        q.lag.as_secs_f64()
    ) + &fair(q)
}

/// A fair queue's keys with the most jobs waiting, after its line.
fn fair(q: &QueueInfo) -> String {
    if !q.fair {
        return String::new();
    }
    let keys: Vec<String> = q.top_keys.iter().map(|k| format!("{} {}", shown(&k.key), k.available)).collect();
    match keys.is_empty() {
        true => "  fair".to_owned(),
        false => format!("  fair, most waiting: {}", keys.join(", ")),
    }
}
