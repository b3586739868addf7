//! Command-line arguments, parsed by clap.

use clap::{Parser, Subcommand};

/// oncommit: database concurrency done right, over PostgreSQL or SQLite.
#[derive(Debug, Parser)]
#[command(name = "oncommit", version, about)]
pub(crate) struct Args {
    /// Database URL: sqlite://path (created if missing) or postgres://user@host/db.
    #[arg(long, env = "DATABASE_URL", default_value = oncommit::DEFAULT_URL, global = true)]
    pub(crate) database_url: String,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or upgrade oncommit's tables and the demo application's (idempotent).
    Migrate,
    /// Run the seeds' concurrency scenarios for real and show what happened (all of them
    /// when no scenario is named).
    Demo {
        #[command(subcommand)]
        scenario: Option<Demo>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum Demo {
    /// Seed 004: session A locks a sock FOR UPDATE and holds it; B's FOR UPDATE waits.
    SelectForUpdate {
        /// How long A holds its lock at least, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        hold_ms: u64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Seed 004: two transactions lock two rows in opposite order; then with retry, and
    /// with ordered locking.
    Deadlock {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Seed 004: lost update and write skew under each isolation level.
    Isolation {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}
