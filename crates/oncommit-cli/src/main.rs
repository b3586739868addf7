//! The `oncommit` command. This crate is the binary only; the library is `oncommit`.

mod admin;
mod args;
mod bench;
mod bulk;
mod demo;
mod doctor;
mod exit;
mod http;
mod parse;
mod progress;
mod queues;
mod schema;
mod serve;
mod worker;

use clap::Parser;
use oncommit::{Db, DbOptions};

use crate::args::{Args, Command};
use crate::exit::Exit;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // sqlx warns of slow statements; in demos of lock waits they are the point. The per-job
    // spans and events (`oncommit::trace`) are for exporters, and cost a formatted line's
    // worth per job here: only failures for good by default (RUST_LOG=…,oncommit::trace=debug
    // shows every attempt).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,oncommit=info,oncommit::trace=warn,sqlx::query=error".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();
    if args.json && matches!(args.command, Command::Serve { .. } | Command::Worker(_)) {
        // A service logs; it prints no result for --json to shape.
        let err = clap::Error::raw(
            clap::error::ErrorKind::ArgumentConflict,
            "--json is for commands that print a result; `serve` and `worker` log to stderr\n",
        );
        err.exit();
    }
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain of causes on one line.
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(exit::code(&err))
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // A worker is a service: it waits for its database instead of exiting.
    if let Command::Worker(a) = args.command {
        return worker::run(&args.database_url, a).await;
    }
    // A server answers 503 after a short wait for a connection rather than queueing
    // requests for the pool's default 30 s.
    let options = match args.command {
        Command::Serve { ref listen_url, .. } => DbOptions {
            acquire_timeout: std::time::Duration::from_secs(5),
            listen_url: listen_url.clone(),
            ..DbOptions::default()
        },
        _ => DbOptions::default(),
    };
    let db = match (Db::connect_with(&args.database_url, options).await, &args.command) {
        (Ok(db), _) => db,
        // Not reaching the database is the doctor's first finding.
        (Err(err), Command::Doctor { .. }) => return doctor::unconnected(&err, args.json),
        (Err(err), _) => return Err(err.into()),
    };
    schema::prepare(&db, &args.command).await?;
    let json = args.json;
    match args.command {
        Command::Migrate { demo } => {
            tracing::info!(url = db.url(), "migrations applied");
            demo::print(json, &serde_json::json!({ "migrated": true, "url": db.url(), "demo": demo }), || {
                format!("migrations applied to {}", db.url())
            })?
        }
        Command::Serve { addr, no_worker, allowed_host, .. } => {
            serve::run(&db, &addr, no_worker, &allowed_host).await?
        }
        Command::Worker(_) => unreachable!("handled above"),
        Command::Enqueue(a) => admin::enqueue(&db, a, json).await?,
        Command::Jobs(a) => admin::jobs(&db, &a, json).await?,
        Command::Job { id } => admin::job(&db, id, json).await?,
        Command::Stats => admin::stats(&db, json).await?,
        Command::Doctor { transaction_age } => doctor::run(&db, transaction_age, json).await?,
        Command::Retry { id: Some(id), .. } => admin::retry(&db, id, json).await?,
        Command::Cancel { id: Some(id), .. } => admin::cancel(&db, id, json).await?,
        Command::Delete { id: Some(id), .. } => admin::delete(&db, id, json).await?,
        Command::Retry { id: None, select } => bulk::act(&db, bulk::Action::Retry, &select, json).await?,
        Command::Cancel { id: None, select } => bulk::act(&db, bulk::Action::Cancel, &select, json).await?,
        Command::Delete { id: None, select } => bulk::act(&db, bulk::Action::Delete, &select, json).await?,
        Command::Tasks => admin::tasks(&db, json).await?,
        Command::Workers => admin::workers(&db, json).await?,
        Command::Queues => queues::list(&db, json).await?,
        Command::Workflow { id } => admin::workflow(&db, &id, json).await?,
        Command::Queue { action } => queues::act(&db, action, json).await?,
        // Its raw twins are plain sqlx on the pool's sessions, prepared statements and
        // all, which a transaction pooler hands from client to client ("prepared statement
        // sqlx_s_1 already exists"); measure the server, and a worker behind the pooler as
        // docs/benchmarks.md does.
        Command::Bench { .. } if db.pooler() == oncommit::Pooler::Transaction => {
            return Err(Exit::Usage(
                "oncommit bench measures the database server: give it a direct URL, not one behind a transaction \
                 pooler (pooler=transaction)"
                    .to_owned(),
            )
            .into());
        }
        Command::Bench { breakdown: true, jobs, .. } => bench::breakdown(&db, jobs, json).await?,
        Command::Bench { vacuum_pressure: true, rate, reader_secs, concurrency, .. } => {
            bench::vacuum_pressure(&db, &args.database_url, rate, reader_secs, concurrency, json).await?
        }
        Command::Bench { history: Some(history), jobs, concurrency, .. } => {
            bench::history(&db, &args.database_url, history, jobs, concurrency, json).await?
        }
        Command::Bench { fair: true, backlog, concurrency, .. } => {
            bench::fair(&db, &args.database_url, backlog.unwrap_or(100_000), concurrency, json).await?
        }
        Command::Bench { sustain: Some(secs), concurrency, .. } => {
            bench::sustain(&db, &args.database_url, secs, concurrency, json).await?
        }
        Command::Bench { backlog: Some(backlog), concurrency, .. } => {
            bench::backlog(&db, &args.database_url, backlog, concurrency, json).await?
        }
        Command::Bench { jobs, .. } => bench::run(&db, &args.database_url, jobs, json).await?,
        Command::Demo { scenario } => demo::run(&db, scenario, json).await?,
    }
    Ok(())
}
