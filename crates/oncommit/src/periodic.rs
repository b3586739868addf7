//! [`Periodic`]: jobs enqueued on a fixed period by the elected leader, exactly once per
//! period across all workers.

use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use crate::enqueue::EnqueueOptions;
use crate::error::Result;
use crate::queries;
use crate::task::Task;

type MakeArgs = Arc<dyn Fn() -> Result<serde_json::Value> + Send + Sync>;

/// A job to enqueue every `period`, aligned to the Unix epoch (an hourly job runs at the top
/// of each hour).
///
/// ```
/// use std::time::Duration;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Cleanup;
/// # impl oncommit::Task for Cleanup { const NAME: &'static str = "cleanup";
/// #   async fn run(self, _: &mut oncommit::TaskContext) -> Result<(), oncommit::TaskError> { Ok(()) } }
/// let hourly = oncommit::Periodic::every("hourly-cleanup", Duration::from_secs(3600), || Cleanup);
/// ```
#[derive(Clone)]
pub struct Periodic {
    /// Names the schedule; the per-period claim is kept under it.
    name: String,
    period: Duration,
    task: &'static str,
    make_args: MakeArgs,
    options: EnqueueOptions,
}

impl std::fmt::Debug for Periodic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Periodic")
            .field("name", &self.name)
            .field("period", &self.period)
            .field("task", &self.task)
            .finish()
    }
}

impl Periodic {
    /// Enqueues the task `make()` returns once every `period` (at least 1 ms).
    pub fn every<T: Task>(
        name: impl Into<String>,
        period: Duration,
        make: impl Fn() -> T + Send + Sync + 'static,
    ) -> Self {
        let make_args: MakeArgs = Arc::new(move || {
            serde_json::to_value(make())
                .map_err(|e| crate::Error::InvalidArgs { task: T::NAME.to_owned(), reason: e.to_string() })
        });
        let defaults = T::options();
        Periodic {
            name: name.into(),
            period: period.max(Duration::from_millis(1)),
            task: T::NAME,
            make_args,
            options: EnqueueOptions::new().queue(defaults.queue).priority(defaults.priority),
        }
    }

    /// Overrides the enqueue options (queue, priority, …) of each job.
    pub fn options(mut self, options: EnqueueOptions) -> Self {
        self.options = options;
        self
    }

    fn period_ms(&self) -> i64 {
        i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX)
    }

    /// The number of the period we are in.
    fn current(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() / self.period_ms()
    }
}

/// Enqueues each periodic job whose current period has not been claimed yet. The claim
/// and the job commit together.
pub(crate) async fn enqueue_due(db: &Db, periodic: &[Periodic]) -> Result<()> {
    for p in periodic {
        let period = p.current();
        let args = (p.make_args)()?;
        // The guard form: an async closure here would make the worker's future fail the
        // compiler's Send check (a limitation of today's rustc, see docs/transactions.md).
        let mut tx = db.begin().await?;
        if queries::periodic_claim(tx.conn(), &p.name, period).await? {
            tx.enqueue_raw(p.task, &args, p.options.clone()).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// How long until the next period starts for any of them.
pub(crate) fn next_in(periodic: &[Periodic]) -> Duration {
    let now = chrono::Utc::now().timestamp_millis();
    periodic
        .iter()
        .map(|p| {
            let ms = p.period_ms();
            Duration::from_millis(u64::try_from(ms - now.rem_euclid(ms)).unwrap_or(0))
        })
        .min()
        .unwrap_or(Duration::from_secs(1))
}
