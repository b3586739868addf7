//! The `oncommit` command. This crate is the binary only; the library is `oncommit`.

mod args;
mod demo;

use clap::Parser;
use oncommit::Db;

use crate::args::{Args, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // sqlx warns of slow statements; in demos of lock waits they are the point.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,oncommit=info,sqlx::query=error".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain of causes on one line.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let db = Db::connect(&args.database_url).await?;
    match args.command {
        Command::Migrate => {
            oncommit_demo::schema::migrate(&db).await?;
            tracing::info!(url = db.url(), "migrations applied");
        }
        Command::Demo { scenario } => demo::run(&db, scenario).await?,
    }
    Ok(())
}
