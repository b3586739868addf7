//! Command-line arguments, parsed by clap.

use clap::{Parser, Subcommand};

use crate::parse::{Limit, Rate, parse_limit, parse_period, parse_rate, parse_unique, parse_when};

/// oncommit: database concurrency done right, over PostgreSQL or SQLite.
#[derive(Debug, Parser)]
#[command(name = "oncommit", version, about)]
pub(crate) struct Args {
    /// Database URL: sqlite://path (created if missing) or postgres://user@host/db.
    #[arg(long, env = "DATABASE_URL", default_value = oncommit::DEFAULT_URL, global = true)]
    pub(crate) database_url: String,

    /// Print one JSON object on one line instead of text, for scripts: every command that
    /// prints a result (`jobs`: `{"jobs": [...], "next_cursor": …}`; `enqueue`: the id;
    /// `demo` with every scenario: one member each). Before or after the command.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or upgrade oncommit's tables (idempotent). Every command does this first; only
    /// `serve`, `demo` and `worker`, which run the demo application, also create its tables.
    Migrate {
        /// Also create or upgrade the demo application's tables (`data`, `socks`, `demo_runs`).
        #[arg(long)]
        demo: bool,
    },
    /// Serve the seed application, the dashboard (/dashboard) and an embedded worker.
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8000")]
        addr: String,
        /// Do not run a worker in this process.
        #[arg(long)]
        no_worker: bool,
        /// Other names the server may be reached by (the `Host` header is checked against
        /// the bound address, and these, to defeat DNS rebinding); comma-separated.
        #[arg(long, value_delimiter = ',')]
        allowed_host: Vec<String>,
        /// A direct PostgreSQL URL for LISTEN, when --database-url goes through a
        /// transaction pooler (`?pooler=transaction`); without it the worker polls.
        #[arg(long, env = "ONCOMMIT_LISTEN_URL")]
        listen_url: Option<String>,
    },
    /// Run jobs until Ctrl-C or SIGTERM (then finish running jobs, release the rest).
    Worker(WorkerArgs),
    /// Enqueue a job by task name (autocommit); prints its id.
    Enqueue(EnqueueArgs),
    /// List jobs a page at a time, newest first: the dashboard's filters and cursor.
    Jobs(JobsArgs),
    /// Show one job: args, attempts, errors, timings.
    Job {
        /// The job id.
        id: i64,
    },
    /// Count jobs per state and queue.
    Stats,
    /// Run a failed, cancelled or waiting job again now; or, with --state, every job
    /// selected (`oncommit retry --state failed --queue mail --error refused --since 12h`).
    #[command(group(clap::ArgGroup::new("target").required(true).args(["id", "state"])))]
    Retry {
        /// The job id.
        #[arg(conflicts_with = "state")]
        id: Option<i64>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Cancel a job: a waiting one at once, a running one by asking its worker; or, with
    /// --state, every job selected.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["id", "state"])))]
    Cancel {
        /// The job id.
        #[arg(conflicts_with = "state")]
        id: Option<i64>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Delete a job that is not running; or, with --state, every such job selected.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["id", "state"])))]
    Delete {
        /// The job id.
        #[arg(conflicts_with = "state")]
        id: Option<i64>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// List what each task declares for its jobs (queue, priority, attempts), as recorded by
    /// the workers that register it: what a job enqueued without those options gets.
    Tasks,
    /// Show a workflow's jobs as an indented list, with states, parents and results.
    Workflow {
        /// The workflow id (as `oncommit job` shows it).
        id: String,
    },
    /// List the queues: paused or not, their limits, waiting and running jobs, workers.
    Queues,
    /// Steer a queue for every worker at once: pause, resume, limit (no restart needed).
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// List the workers that reported recently.
    Workers,
    /// Measure the queue's throughput and latency against a raw-SQL baseline (queue `bench`).
    Bench {
        /// Jobs per throughput run.
        #[arg(long, default_value_t = 20_000)]
        jobs: usize,
        /// Instead: drain a backlog of this many jobs, with raw SQL and with `oncommit
        /// worker` as a separate process, reporting each tenth of it.
        #[arg(long)]
        backlog: Option<usize>,
        /// Instead: keep a worker process busy for this many seconds with jobs completed
        /// as fast as it drains them, pruned after 10 s, and report the jobs table's size
        /// over time (does pruning keep up?).
        #[arg(long)]
        sustain: Option<u64>,
        /// The worker's concurrency for --backlog and --sustain.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
    },
    /// Run the seeds' concurrency scenarios for real and show what happened (all of them
    /// when no scenario is named).
    Demo {
        #[command(subcommand)]
        scenario: Option<Demo>,
    },
}

/// `oncommit worker`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// A direct PostgreSQL URL for LISTEN, when --database-url goes through a transaction
    /// pooler (`?pooler=transaction`): wake-ups within milliseconds instead of polling.
    #[arg(long, env = "ONCOMMIT_LISTEN_URL")]
    pub(crate) listen_url: Option<String>,
    /// Queues to serve, comma-separated; `name:N` gives one its own concurrency.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    pub(crate) queues: Vec<String>,
    /// Jobs run at once on each queue without its own `:N`. Size it by what the jobs wait
    /// on: jobs that wait on the network or other services can run by the hundred (256 for
    /// short I/O-bound jobs); jobs that use the CPU, about the cores. Each slot may take a
    /// connection of the application pool (sized concurrency + 2). Short jobs do not need
    /// many slots to go fast: the worker claims up to 1,000 ahead of them (--prefetch), so
    /// on jobs much shorter than a database round trip 10 slots go about as fast as 256.
    #[arg(long, default_value_t = 10)]
    pub(crate) concurrency: usize,
    /// Jobs each queue claims beyond its concurrency, to wait in this worker for a slot
    /// [default: as many as the slots get through in about 50 ms, at most 1000 or the
    /// concurrency, whichever is larger]. 0 for long
    /// jobs, so none waits here while another worker is idle.
    #[arg(long)]
    pub(crate) prefetch: Option<usize>,
    /// How long a claimed job stays this worker's without a heartbeat, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub(crate) lease_ms: u64,
    /// How often to look for work when nothing wakes the worker, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub(crate) poll_ms: u64,
    /// Poll only, no LISTEN (behind a transaction-mode connection pooler).
    #[arg(long)]
    pub(crate) poll_only: bool,
    /// Longest wait for running jobs at shutdown, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub(crate) shutdown_timeout_ms: u64,
    /// How long completed jobs are kept, in seconds, before the leader prunes them.
    #[arg(long, default_value_t = 86_400)]
    pub(crate) retention_completed: u64,
    /// How long failed and cancelled jobs are kept, in seconds.
    #[arg(long, default_value_t = 604_800)]
    pub(crate) retention_discarded: u64,
    /// How often the leader prunes, in milliseconds (each pass deletes in batches until no
    /// job past its retention is left).
    #[arg(long, default_value_t = 60_000)]
    pub(crate) prune_interval_ms: u64,
    /// Give up (exit 1) if the database does not answer within this many seconds of
    /// starting; without it the worker waits for its database as long as it takes.
    #[arg(long)]
    pub(crate) connect_timeout: Option<u64>,
}

/// `oncommit enqueue`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct EnqueueArgs {
    /// The task name (do_stuff, record, sleep, fail, noop, or any other worker's task).
    pub(crate) task: String,
    /// The task's arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    pub(crate) args: String,
    /// The queue [default: the task's declared queue (see `oncommit tasks`), else `default`].
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// The priority, lower runs first [default: the task's declared one, else 0].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) priority: Option<i16>,
    /// Run no earlier than this many milliseconds from now.
    #[arg(long)]
    pub(crate) delay_ms: Option<u64>,
    /// Attempts before the job fails, at least 1 [default: the task's declared number, else 25].
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) max_attempts: Option<i32>,
    /// Return the unfinished job with this key instead of adding another.
    #[arg(long, conflicts_with = "unique")]
    pub(crate) unique_key: Option<String>,
    /// Unique by content: `args` (the same arguments), `args:KEY,KEY` (the same values for
    /// these keys), `task` (one of the task at a time) or `key:KEY`; the existing job's id
    /// is printed instead of a new one's.
    #[arg(long, value_parser = parse_unique)]
    pub(crate) unique: Option<oncommit::Unique>,
    /// … and the same queue.
    #[arg(long, requires = "unique")]
    pub(crate) unique_queue: bool,
    /// … enqueued within the same period (`10m`, `1h`, `500ms`; windows aligned to the epoch).
    #[arg(long, requires = "unique", value_parser = parse_period)]
    pub(crate) unique_period: Option<std::time::Duration>,
    /// … while the existing job is in one of these states [default: pending,scheduled,available,running,retryable].
    #[arg(long, requires = "unique", value_delimiter = ',')]
    pub(crate) unique_states: Vec<oncommit::JobState>,
    /// Update the existing job instead if it has not started (args, run time, priority).
    #[arg(long, requires = "unique")]
    pub(crate) replace: bool,
    /// Wait for these jobs (comma-separated ids): `pending` until they complete.
    #[arg(long, value_delimiter = ',')]
    pub(crate) depends_on: Vec<i64>,
    /// Run once the parents finish even if one failed or was cancelled.
    #[arg(long, requires = "depends_on")]
    pub(crate) run_after_failed_parents: bool,
    /// Jobs sharing this key run one at a time (or --key-limit at a time), in enqueue order.
    #[arg(long)]
    pub(crate) concurrency_key: Option<String>,
    /// How many jobs of the --concurrency-key may run at once [default: 1].
    #[arg(long, requires = "concurrency_key")]
    pub(crate) key_limit: Option<u32>,
}

/// The filters of the dashboard's jobs view, shared by `oncommit jobs` and the bulk
/// commands, so a listing and an action on it select the same jobs.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct FilterArgs {
    /// Only jobs on this queue.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Only jobs of this task.
    #[arg(long)]
    pub(crate) task: Option<String>,
    /// Only jobs of this priority.
    #[arg(long)]
    pub(crate) priority: Option<i16>,
    /// Only jobs finished (unfinished: created) since: an age (`30m`, `12h`, `7d`) or an
    /// RFC 3339 time (`2026-11-24T03:00:00Z`).
    #[arg(long, value_parser = parse_when)]
    pub(crate) since: Option<chrono::DateTime<chrono::Utc>>,
    /// … before: an age or an RFC 3339 time.
    #[arg(long, value_parser = parse_when)]
    pub(crate) until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only jobs whose id is this, or whose args or an error contain it (ignoring case).
    #[arg(long)]
    pub(crate) search: Option<String>,
    /// Only jobs with an attempt whose error contains this text (ignoring case).
    #[arg(long)]
    pub(crate) error: Option<String>,
}

impl FilterArgs {
    /// The selection of these filters over `states`.
    fn selection(&self, states: &[oncommit::JobState]) -> oncommit::JobSelection {
        oncommit::JobSelection {
            states: states.to_vec(),
            queue: self.queue.clone(),
            task: self.task.clone(),
            since: self.since,
            until: self.until,
            error_contains: self.error.clone(),
            priority: self.priority,
            search: self.search.clone(),
            ids: None,
        }
    }
}

/// `oncommit jobs`: the filters of the dashboard's jobs view, and a page.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct JobsArgs {
    /// Only jobs in these states (comma-separated: failed,cancelled); all when omitted.
    #[arg(long, value_delimiter = ',')]
    pub(crate) state: Vec<oncommit::JobState>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// `newest` first (the default) or `oldest`.
    #[arg(long, default_value = "newest")]
    pub(crate) order: oncommit::JobOrder,
    /// Go on from where a previous page ended (its `next_cursor`).
    #[arg(long)]
    pub(crate) cursor: Option<i64>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub(crate) limit: i64,
}

impl JobsArgs {
    /// The selection and page the flags describe.
    pub(crate) fn query(&self) -> (oncommit::JobSelection, oncommit::JobPage) {
        let page = oncommit::JobPage { order: self.order, cursor: self.cursor, limit: self.limit };
        (self.filter.selection(&self.state), page)
    }
}

/// Which jobs `retry`, `cancel` and `delete` act on, instead of one id. A filter narrows a
/// choice of states: it is refused without `--state`, so no filter acts on every job.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("narrowing")
        .args(["queue", "task", "priority", "since", "until", "search", "error", "dry_run"])
        .multiple(true)
        .requires("state")
))]
pub(crate) struct SelectArgs {
    /// Select the jobs in these states (comma-separated: failed,cancelled).
    #[arg(long, value_delimiter = ',')]
    pub(crate) state: Vec<oncommit::JobState>,
    #[command(flatten)]
    pub(crate) filter: FilterArgs,
    /// Only count the jobs selected; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

impl SelectArgs {
    /// The selection the flags describe.
    pub(crate) fn selection(&self) -> oncommit::JobSelection {
        self.filter.selection(&self.state)
    }
}

/// `oncommit queue`'s actions; each prints the queue as `oncommit queues` does.
#[derive(Debug, Subcommand)]
pub(crate) enum QueueAction {
    /// No worker claims the queue's jobs until it is resumed; running jobs finish.
    Pause {
        /// The queue.
        name: String,
    },
    /// Workers claim the queue's jobs again, at once.
    Resume {
        /// The queue.
        name: String,
    },
    /// At most N of the queue's jobs run at once across all workers (`none`: no limit).
    Limit {
        /// The queue.
        name: String,
        /// The most jobs running at once, or `none`.
        #[arg(value_parser = parse_limit)]
        limit: Limit,
    },
    /// At most N of the queue's jobs start per period across all workers: `10/1s`,
    /// `100/1m`, `5/500ms`, `1000/1h` (`none`: no limit).
    RateLimit {
        /// The queue.
        name: String,
        /// Starts per period (`N/PERIOD`), or `none`.
        #[arg(value_parser = parse_rate)]
        rate: Rate,
        /// Count each concurrency key's starts on its own (jobs without a key share one).
        #[arg(long)]
        per_key: bool,
    },
}

impl QueueAction {
    /// The queue acted on.
    pub(crate) fn name(&self) -> &str {
        match self {
            QueueAction::Pause { name, .. }
            | QueueAction::Resume { name, .. }
            | QueueAction::Limit { name, .. }
            | QueueAction::RateLimit { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub(crate) enum Demo {
    /// Seed 000: a view dispatches a task before its transaction commits (naive), in a
    /// commit hook, or transactionally, while a worker runs.
    Race {
        /// Views per way.
        #[arg(long, default_value_t = 20)]
        iterations: usize,
        /// How long each view keeps working after dispatching, in milliseconds.
        #[arg(long, default_value_t = 20)]
        work_ms: u64,
    },
    /// Seed 004: session A locks a sock FOR UPDATE and holds it; B's FOR UPDATE waits.
    SelectForUpdate {
        /// How long A holds its lock at least, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        hold_ms: u64,
    },
    /// Seed 004: two transactions lock two rows in opposite order; then with retry, and
    /// with ordered locking.
    Deadlock,
    /// Seed 004: lost update and write skew under each isolation level.
    Isolation,
}
