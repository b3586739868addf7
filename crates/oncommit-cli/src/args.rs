//! Command-line arguments, parsed by clap.

use clap::{Parser, Subcommand};

use crate::parse::{Limit, Rate, parse_limit, parse_period, parse_rate, parse_unique, parse_when};

/// `oncommit --help`'s commands, grouped by who runs them. Kept complete by
/// `the_help_groups_every_command_and_each_ends_with_an_example`.
const COMMANDS: &str = "\
Run:
  migrate   Create or upgrade oncommit's tables
  serve     Serve the demo application, the dashboard and a worker
  worker    Run jobs until Ctrl-C or SIGTERM

Inspect:
  doctor    Check the database and the fleet, read only: what is wrong and what to do
  jobs      List jobs a page at a time, with the dashboard's filters
  job       Show one job: args, attempts, errors, timings
  stats     Count jobs per state and queue
  queues    List the queues: paused, limits, waiting and running jobs, workers
  workers   List the workers that reported recently
  tasks     List what each task declares for its jobs
  workflow  Show a workflow's jobs, with states, parents and results

Steer:
  enqueue   Enqueue a job by task name
  retry     Run a job again now, or every job a filter selects
  cancel    Cancel a job, or every job a filter selects
  delete    Delete a job, or every job a filter selects
  queue     Pause, resume or limit a queue for every worker at once

Demo:
  demo      Run the seeds' concurrency scenarios for real

Bench:
  bench     Measure the queue against a raw-SQL baseline

`oncommit help <command>` or `oncommit <command> --help` tells more.";

/// oncommit: database concurrency done right, over PostgreSQL or SQLite.
#[derive(Debug, Parser)]
#[command(
    name = "oncommit",
    version,
    about,
    help_template = "{about-with-newline}\n{usage-heading} {usage}\n\n{before-help}Options:\n{options}{after-help}",
    before_help = COMMANDS,
    after_help = "Example:\n  oncommit --database-url postgres://app@db/app stats --json"
)]
pub(crate) struct Args {
    /// Database URL: sqlite://path (created if missing) or postgres://user@host/db.
    #[arg(long, env = "DATABASE_URL", default_value = oncommit::defaults::DATABASE_URL, global = true)]
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
    #[command(after_help = "Example:\n  oncommit --database-url postgres://app@db/app migrate")]
    Migrate {
        /// Also create or upgrade the demo application's tables (`data`, `socks`, `demo_runs`).
        #[arg(long)]
        demo: bool,
    },
    /// Serve the seed application, the dashboard (/dashboard) and an embedded worker.
    #[command(after_help = "Example:\n  oncommit serve --addr 0.0.0.0:8000")]
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
        /// Create or upgrade oncommit's and the demo's tables first, as `oncommit migrate
        /// --demo` does (on the embedded SQLite default, serve always does).
        #[arg(long)]
        migrate: bool,
    },
    /// Run jobs until Ctrl-C or SIGTERM (then finish running jobs, release the rest).
    #[command(after_help = "Example:\n  oncommit worker --queues default,mail:4 --concurrency 16")]
    Worker(WorkerArgs),
    /// Enqueue a job by task name (autocommit); prints its id.
    #[command(after_help = "Example:\n  oncommit enqueue do_stuff --args '{\"pk\": 42}' --queue mail")]
    Enqueue(EnqueueArgs),
    /// List jobs a page at a time, newest first: the dashboard's filters and cursor.
    #[command(after_help = "Example:\n  oncommit jobs --state failed --queue mail --since 1h --limit 20")]
    Jobs(JobsArgs),
    /// Show one job: args, attempts, errors, timings.
    #[command(after_help = "Example:\n  oncommit job 35 --json")]
    Job {
        /// The job id.
        id: i64,
    },
    /// Count jobs per state and queue.
    #[command(after_help = "Example:\n  oncommit stats --json")]
    Stats,
    /// Check the database and the fleet, read only, safe against production: schema version
    /// and drift, INVALID indexes, the jobs table and its vacuum, what holds vacuum back,
    /// stale leases, workers' clocks, LISTEN, an unannounced transaction pooler. Exits 0
    /// when healthy, 1 when it found a problem; each finding says what to do.
    #[command(after_help = "Example:\n  oncommit doctor --json")]
    Doctor {
        /// A transaction open longer than this, holding back vacuum, is a problem.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        transaction_age: u64,
    },
    /// Run a failed, cancelled or waiting job again now; or, with --state, every job
    /// selected (`oncommit retry --state failed --queue mail --error refused --since 12h`).
    #[command(group(clap::ArgGroup::new("target").required(true).args(["id", "state"])))]
    #[command(after_help = "Example:\n  oncommit retry --state failed --queue mail --error refused --since 12h")]
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
    #[command(after_help = "Example:\n  oncommit cancel 35")]
    Cancel {
        /// The job id.
        #[arg(conflicts_with = "state")]
        id: Option<i64>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// Delete a job that is not running; or, with --state, every such job selected.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["id", "state"])))]
    #[command(after_help = "Example:\n  oncommit delete --state cancelled --until 7d --dry-run")]
    Delete {
        /// The job id.
        #[arg(conflicts_with = "state")]
        id: Option<i64>,
        #[command(flatten)]
        select: SelectArgs,
    },
    /// List what each task declares for its jobs (queue, priority, attempts), as recorded by
    /// the workers that register it: what a job enqueued without those options gets.
    #[command(after_help = "Example:\n  oncommit tasks")]
    Tasks,
    /// Show a workflow's jobs as an indented list, with states, parents and results.
    #[command(after_help = "Example:\n  oncommit workflow 0b6f6c8e-wf")]
    Workflow {
        /// The workflow id (as `oncommit job` shows it).
        id: String,
    },
    /// List the queues: paused or not, their limits, waiting and running jobs, workers.
    #[command(after_help = "Example:\n  oncommit queues --json")]
    Queues,
    /// Steer a queue for every worker at once: pause, resume, limit (no restart needed).
    #[command(after_help = "Example:\n  oncommit queue pause mail")]
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// List the workers that reported recently.
    #[command(after_help = "Example:\n  oncommit workers")]
    Workers,
    /// Measure the queue's throughput and latency against a raw-SQL baseline (queue `bench`).
    #[command(after_help = "Example:\n  oncommit --database-url postgres://app@db/app bench --backlog 1000000")]
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
        /// Instead (PostgreSQL): where the one-job transaction's time goes between a bare
        /// INSERT and tx.enqueue, step by step (row width, indexes, triggers, the SQL
        /// function, the declaration look-up, the sleepers check), each as its share of the
        /// gap; --jobs per step.
        #[arg(long, conflicts_with_all = ["backlog", "sustain"])]
        breakdown: bool,
        /// Instead (PostgreSQL): enqueue --rate jobs/s for a worker process while three
        /// overlapping REPEATABLE READ readers of --reader-secs each hold back vacuum, and
        /// report the backlog (in seconds of work) and the dead rows every 5 s: does the
        /// queue keep up, and how soon does it recover?
        #[arg(long, conflicts_with_all = ["backlog", "sustain", "breakdown"])]
        vacuum_pressure: bool,
        /// Instead: tenant A enqueues --backlog jobs (default 100,000), then tenants B…K 100
        /// each, for a worker process: how many of A's start before the others' last? And a
        /// drain of --backlog jobs of one fairness key against the same without a key.
        #[arg(long, conflicts_with_all = ["sustain", "breakdown", "vacuum_pressure"])]
        fair: bool,
        /// Instead (PostgreSQL): fill the history with this many finished jobs (SQL, 20
        /// hourly partitions) and compare the one-job enqueue and a --jobs backlog drained
        /// by a worker process with the same on an empty history, before and after; time
        /// dropping a partition and each listing on the full history. Use a fresh database.
        #[arg(long, conflicts_with_all = ["backlog", "sustain", "breakdown", "vacuum_pressure", "fair"])]
        history: Option<usize>,
        /// Jobs per second for --vacuum-pressure.
        #[arg(long, default_value_t = 800)]
        rate: u32,
        /// How long each reader of --vacuum-pressure holds its snapshot, in seconds.
        #[arg(long, default_value_t = 120)]
        reader_secs: u64,
        /// The worker's concurrency for --backlog, --sustain and --vacuum-pressure.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
    },
    /// Run the seeds' concurrency scenarios for real and show what happened (all of them
    /// when no scenario is named).
    #[command(after_help = "Example:\n  oncommit demo deadlock")]
    Demo {
        #[command(subcommand)]
        scenario: Option<Demo>,
    },
}

/// `oncommit worker`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// Create or upgrade oncommit's and the demo's tables first, as `oncommit migrate
    /// --demo` does. Without it the worker leaves the schema alone, and claims nothing
    /// while the schema is missing, older than it, or newer and incompatible.
    #[arg(long)]
    pub(crate) migrate: bool,
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
    /// The tenant the job is for: its queue becomes fair, its workers serving the keys
    /// round robin (docs/fairness.md).
    #[arg(long)]
    pub(crate) fair_key: Option<String>,
    /// The --fair-key's share: its jobs per round, 1 to 1000 [default: 1].
    #[arg(long, requires = "fair_key")]
    pub(crate) fair_weight: Option<u16>,
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
    fn selection(&self, states: &[oncommit::JobState]) -> oncommit::admin::JobSelection {
        oncommit::admin::JobSelection {
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
    pub(crate) order: oncommit::admin::JobOrder,
    /// Go on from where a previous page ended (its `next_cursor`).
    #[arg(long)]
    pub(crate) cursor: Option<i64>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub(crate) limit: i64,
}

impl JobsArgs {
    /// The selection and page the flags describe.
    pub(crate) fn query(&self) -> (oncommit::admin::JobSelection, oncommit::admin::PageRequest) {
        let page = oncommit::admin::PageRequest { order: self.order, cursor: self.cursor, limit: self.limit };
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
    pub(crate) fn selection(&self) -> oncommit::admin::JobSelection {
        self.filter.selection(&self.state)
    }
}

/// `oncommit queue`'s actions; each prints the queue as `oncommit queues` does.
#[derive(Debug, Subcommand)]
pub(crate) enum QueueAction {
    /// No worker claims the queue's jobs until it is resumed; running jobs finish.
    #[command(after_help = "Example:\n  oncommit queue pause mail")]
    Pause {
        /// The queue.
        name: String,
    },
    /// Workers claim the queue's jobs again, at once.
    #[command(after_help = "Example:\n  oncommit queue resume mail")]
    Resume {
        /// The queue.
        name: String,
    },
    /// At most N of the queue's jobs run at once across all workers (`none`: no limit).
    #[command(after_help = "Example:\n  oncommit queue limit mail 4")]
    Limit {
        /// The queue.
        name: String,
        /// The most jobs running at once, or `none`.
        #[arg(value_parser = parse_limit)]
        limit: Limit,
    },
    /// At most N of the queue's jobs start per period across all workers: `10/1s`,
    /// `100/1m`, `5/500ms`, `1000/1h` (`none`: no limit).
    #[command(after_help = "Example:\n  oncommit queue rate-limit mail 10/1s --per-key")]
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
    #[command(after_help = "Example:\n  oncommit demo race --iterations 50")]
    Race {
        /// Views per way.
        #[arg(long, default_value_t = 20)]
        iterations: usize,
        /// How long each view keeps working after dispatching, in milliseconds.
        #[arg(long, default_value_t = 20)]
        work_ms: u64,
    },
    /// Seed 004: session A locks a sock FOR UPDATE and holds it; B's FOR UPDATE waits.
    #[command(after_help = "Example:\n  oncommit demo select-for-update --hold-ms 2000")]
    SelectForUpdate {
        /// How long A holds its lock at least, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        hold_ms: u64,
    },
    /// Seed 004: two transactions lock two rows in opposite order; then with retry, and
    /// with ordered locking.
    #[command(after_help = "Example:\n  oncommit demo deadlock --json")]
    Deadlock,
    /// Seed 004: lost update and write skew under each isolation level.
    #[command(after_help = "Example:\n  oncommit demo isolation")]
    Isolation,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Splits an example as a shell would, for the quoting the examples use.
    fn words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut quoted = false;
        for ch in line.chars() {
            match ch {
                '\'' => quoted = !quoted,
                ' ' if !quoted => words.extend((!word.is_empty()).then(|| std::mem::take(&mut word))),
                _ => word.push(ch),
            }
        }
        words.extend((!word.is_empty()).then_some(word));
        words
    }

    /// Every command of `cmd`, with the words that name it.
    fn commands(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut named = path.clone();
            named.push(sub.get_name().to_owned());
            out.push((named.clone(), sub.clone()));
            commands(sub, named, out);
        }
    }

    #[test]
    fn the_help_groups_every_command_and_each_ends_with_an_example() {
        let cmd = Args::command();
        let mut all = Vec::new();
        commands(&cmd, Vec::new(), &mut all);
        for top in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let listed = COMMANDS.lines().filter(|l| l.split_whitespace().next() == Some(top.get_name())).count();
            assert_eq!(listed, 1, "`{}` is listed {listed} times in the grouped help", top.get_name());
        }
        for (path, sub) in &all {
            let help = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            let example =
                help.strip_prefix("Example:\n  ").unwrap_or_else(|| panic!("`{}` has no example", path.join(" ")));
            let argv = words(example);
            assert_eq!(argv[0], "oncommit");
            let parsed = Args::try_parse_from(&argv).unwrap_or_else(|e| panic!("`{example}` does not parse: {e}"));
            let named: Vec<&String> = argv.iter().filter(|w| path.contains(w)).collect();
            assert_eq!(named, path.iter().collect::<Vec<_>>(), "the example of `{}` runs it", path.join(" "));
            drop(parsed);
        }
        let top = cmd.clone().render_help().to_string();
        assert!(top.contains("Steer:") && top.contains("Example:"), "{top}");
    }
}
