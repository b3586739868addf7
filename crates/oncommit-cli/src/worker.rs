//! `oncommit worker`: runs the demo application's tasks until Ctrl-C or SIGTERM.

use std::time::Duration;

use anyhow::Context as _;
use oncommit::{Db, Shutdown};

use crate::args::WorkerArgs;

pub(crate) async fn run(db: &Db, args: WorkerArgs) -> anyhow::Result<()> {
    oncommit_demo::schema::migrate(db).await?;
    let mut worker = oncommit_demo::tasks::worker(db)
        .lease(Duration::from_millis(args.lease_ms))
        .poll_interval(Duration::from_millis(args.poll_ms))
        .shutdown_timeout(Duration::from_millis(args.shutdown_timeout_ms));
    for queue in &args.queues {
        let (name, concurrency) = match queue.split_once(':') {
            Some((name, n)) => (name, n.parse().with_context(|| format!("bad concurrency in `{queue}`"))?),
            None => (queue.as_str(), args.concurrency),
        };
        worker = worker.queue(name, concurrency);
    }
    if args.poll_only {
        worker = worker.poll_only();
    }
    worker.run(Shutdown::on_signal()).await?;
    Ok(())
}
