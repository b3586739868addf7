//! `oncommit worker`: runs the demo application's tasks until Ctrl-C or SIGTERM.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use oncommit::{Db, DbOptions, Error, Shutdown};

use crate::args::WorkerArgs;

pub(crate) async fn run(url: &str, args: WorkerArgs) -> anyhow::Result<()> {
    let mut queues = Vec::new();
    for queue in &args.queues {
        let (name, concurrency) = match queue.split_once(':') {
            Some((name, n)) => (name, n.parse().with_context(|| format!("bad concurrency in `{queue}`"))?),
            None => (queue.as_str(), args.concurrency),
        };
        queues.push((name.to_owned(), concurrency));
    }
    // One connection per job that may run at once, and two to spare for the tasks' own
    // side work: the worker's own statements have a pool of their own.
    let slots: usize = queues.iter().map(|(_, n)| *n).sum();
    let options = DbOptions {
        max_connections: u32::try_from(slots + 2).unwrap_or(u32::MAX),
        listen_url: args.listen_url.clone(),
        // An idle worker gives its tasks' connections back to the server's budget.
        idle_timeout: Duration::from_secs(10),
        ..DbOptions::default()
    };
    let mut shutdown = Shutdown::on_signal();
    let deadline = args.connect_timeout.map(|secs| Instant::now() + Duration::from_secs(secs));
    let Some(db) = connect(url, options, deadline, args.migrate, &mut shutdown).await? else { return Ok(()) };

    let mut worker = oncommit_demo::tasks::worker(&db)
        .lease(Duration::from_millis(args.lease_ms))
        .poll_interval(Duration::from_millis(args.poll_ms))
        .shutdown_timeout(Duration::from_millis(args.shutdown_timeout_ms))
        .retention(oncommit::Retention {
            completed: Duration::from_secs(args.retention_completed),
            discarded: Duration::from_secs(args.retention_discarded),
        })
        .prune_interval(Duration::from_millis(args.prune_interval_ms));
    for (name, concurrency) in queues {
        worker = worker.queue(name, concurrency);
    }
    if args.poll_only {
        worker = worker.poll_only();
    }
    if let Some(prefetch) = args.prefetch {
        worker = worker.prefetch(prefetch);
    }
    worker.run(shutdown).await?;
    Ok(())
}

/// Connects (and migrates, if asked), retrying with backoff (logged) while the database
/// does not answer, until `deadline` or a shutdown signal (then `None`). A wrong URL or refused
/// credentials end it at once: waiting would not mend them.
async fn connect(
    url: &str,
    options: DbOptions,
    deadline: Option<Instant>,
    migrate: bool,
    shutdown: &mut Shutdown,
) -> anyhow::Result<Option<Db>> {
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = async {
            let db = Db::connect_with(url, options.clone()).await?;
            if migrate {
                oncommit_demo::schema::migrate(&db).await?;
            }
            Ok::<_, Error>(db)
        };
        let err = match attempt.await {
            Ok(db) => return Ok(Some(db)),
            Err(
                err @ (Error::InvalidUrl { .. } | Error::AuthenticationFailed { .. } | Error::TransactionPooler { .. }),
            ) => return Err(err.into()),
            Err(err) => err,
        };
        if deadline.is_some_and(|d| Instant::now() + delay > d) {
            return Err(crate::exit::Exit::Unreachable(format!(
                "the database did not answer within --connect-timeout: {err}"
            ))
            .into());
        }
        tracing::warn!(error = %err, retry_in_ms = delay.as_millis() as u64, "waiting for the database");
        tokio::select! {
            _ = shutdown.wait() => return Ok(None),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
