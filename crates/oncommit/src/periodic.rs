//! [`Periodic`]: jobs enqueued on a fixed period or a cron schedule by the elected leader,
//! exactly once per period (or cron occurrence) across all workers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::db::Db;
use crate::enqueue::EnqueueOptions;
use crate::error::Result;
use crate::queries;
use crate::task::Task;

type MakeArgs = Arc<dyn Fn() -> Result<serde_json::Value> + Send + Sync>;

/// An occurrence older than this when the leader looks is skipped, as cron skips runs
/// missed while it was down: a deploy at 10:00 does not run the 03:00 job.
const CRON_GRACE: Duration = Duration::from_secs(60);

#[derive(Clone)]
enum Schedule {
    Every(Duration),
    /// A pattern read on the wall clock of a time zone (UTC unless set).
    Cron(Arc<croner::Cron>, Tz),
}

/// A job to enqueue every `period` (aligned to the Unix epoch: an hourly job runs at the top
/// of each hour), or on a cron schedule, in UTC or in an IANA time zone
/// ([`Periodic::time_zone`]).
///
/// ```
/// use std::time::Duration;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Cleanup;
/// # impl oncommit::Task for Cleanup { const NAME: &'static str = "cleanup";
/// #   async fn run(self, _: &mut oncommit::TaskContext) -> Result<(), oncommit::TaskError> { Ok(()) } }
/// let hourly = oncommit::Periodic::every("hourly-cleanup", Duration::from_secs(3600), || Cleanup);
/// let nightly = oncommit::Periodic::cron("nightly-cleanup", "0 3 * * *", || Cleanup)?;
/// let berlin = oncommit::Periodic::cron("berlin-report", "30 2 * * *", || Cleanup)?.time_zone("Europe/Berlin")?;
/// assert!(oncommit::Periodic::cron("bad", "every tuesday", || Cleanup).is_err());
/// # Ok::<(), oncommit::Error>(())
/// ```
#[derive(Clone)]
pub struct Periodic {
    /// Names the schedule; the per-period claim is kept under it.
    name: String,
    schedule: Schedule,
    task: &'static str,
    make_args: MakeArgs,
    options: EnqueueOptions,
}

impl std::fmt::Debug for Periodic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let schedule = match &self.schedule {
            Schedule::Every(d) => format!("every {d:?}"),
            Schedule::Cron(c, tz) => format!("cron {} in {tz}", c.as_str()),
        };
        f.debug_struct("Periodic")
            .field("name", &self.name)
            .field("schedule", &schedule)
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
        Periodic::new(name, Schedule::Every(period.max(Duration::from_millis(1))), make)
    }

    /// Enqueues the task `make()` returns at each occurrence of a cron pattern, in UTC
    /// (five fields, or six with seconds first: `"0 3 * * *"` is 03:00 every day).
    pub fn cron<T: Task>(
        name: impl Into<String>,
        pattern: &str,
        make: impl Fn() -> T + Send + Sync + 'static,
    ) -> Result<Self> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|e| crate::Error::InvalidSchedule { pattern: pattern.to_owned(), reason: e.to_string() })?;
        Ok(Periodic::new(name, Schedule::Cron(Arc::new(cron), Tz::UTC), make))
    }

    /// Reads the cron pattern on the wall clock of `zone`, an IANA time zone such as
    /// `"Europe/Berlin"`, as Oban's cron does; UTC by default. Daylight saving is handled as
    /// cron does it: a time that a spring-forward skips runs once, right after the gap (a
    /// 02:30 job runs at 03:00 that day); a time that a fall-back repeats runs once, the
    /// first time; patterns with steps or wildcards in their time fields run at each match
    /// of the wall clock. A fixed period (`every`) has no wall clock: refused.
    ///
    /// ```
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct Report;
    /// # impl oncommit::Task for Report { const NAME: &'static str = "report";
    /// #   async fn run(self, _: &mut oncommit::TaskContext) -> Result<(), oncommit::TaskError> { Ok(()) } }
    /// let daily = oncommit::Periodic::cron("daily-report", "0 9 * * 1-5", || Report)?.time_zone("America/New_York")?;
    /// assert!(oncommit::Periodic::cron("r", "0 9 * * *", || Report)?.time_zone("Mars/Olympus").is_err());
    /// # Ok::<(), oncommit::Error>(())
    /// ```
    pub fn time_zone(mut self, zone: &str) -> Result<Self> {
        let invalid =
            |reason: &str| crate::Error::InvalidSchedule { pattern: zone.to_owned(), reason: reason.to_owned() };
        let tz: Tz = zone.parse().map_err(|_| invalid("not an IANA time zone name (such as Europe/Berlin or UTC)"))?;
        match &mut self.schedule {
            Schedule::Cron(_, zone) => *zone = tz,
            Schedule::Every(_) => {
                return Err(invalid("a fixed period has no wall clock: time zones are for cron schedules"));
            }
        }
        Ok(self)
    }

    fn new<T: Task>(name: impl Into<String>, schedule: Schedule, make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        let make_args: MakeArgs = Arc::new(move || {
            serde_json::to_value(make())
                .map_err(|e| crate::Error::InvalidArgs { task: T::NAME.to_owned(), reason: e.to_string() })
        });
        let defaults = T::options();
        Periodic {
            name: name.into(),
            schedule,
            task: T::NAME,
            make_args,
            options: EnqueueOptions::new()
                .queue(defaults.queue)
                .priority(defaults.priority)
                .max_attempts(defaults.max_attempts),
        }
    }

    /// Overrides the enqueue options (queue, priority, …) of each job.
    pub fn options(mut self, options: EnqueueOptions) -> Self {
        self.options = options;
        self
    }

    /// The key of the period (or cron occurrence) to enqueue now, if any: for a fixed period
    /// its number since the epoch; for cron, the latest occurrence's time in milliseconds,
    /// unless it is older than the grace period.
    fn due(&self, now: DateTime<Utc>) -> Option<i64> {
        match &self.schedule {
            Schedule::Every(period) => Some(now.timestamp_millis() / millis(*period)),
            Schedule::Cron(cron, tz) => {
                let now = now.with_timezone(tz);
                let at = cron.find_previous_occurrence(&now, true).ok()?;
                let age = (now - at).to_std().unwrap_or_default();
                // Keyed by the instant, not the wall clock: a repeated hour's two 01:30s
                // are two keys, a skipped one's none.
                (age <= CRON_GRACE).then(|| at.timestamp_millis())
            }
        }
    }

    /// How long until the next period or occurrence starts.
    fn next_in(&self, now: DateTime<Utc>) -> Duration {
        match &self.schedule {
            Schedule::Every(period) => {
                let ms = millis(*period);
                Duration::from_millis(u64::try_from(ms - now.timestamp_millis().rem_euclid(ms)).unwrap_or(0))
            }
            Schedule::Cron(cron, tz) => {
                let now = now.with_timezone(tz);
                cron.find_next_occurrence(&now, false)
                    .ok()
                    .and_then(|next| (next - now).to_std().ok())
                    .unwrap_or(Duration::from_secs(60))
            }
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// Enqueues each periodic job whose current period (or occurrence) has not been claimed
/// yet. The claim and the job commit together.
/// `settled` remembers, per name, the latest period known claimed (by this leader or
/// another), so a period costs one transaction, not one per maintenance tick.
pub(crate) async fn enqueue_due(db: &Db, periodic: &[Periodic], settled: &mut HashMap<String, i64>) -> Result<()> {
    let now = Utc::now();
    for p in periodic {
        let Some(period) = p.due(now) else { continue };
        if settled.get(&p.name).is_some_and(|last| *last >= period) {
            continue;
        }
        let args = (p.make_args)()?;
        // The guard form: an async closure here would make the worker's future fail the
        // compiler's Send check (a limitation of today's rustc, see docs/transactions.md).
        let mut tx = db.begin().await?;
        if queries::periodic_claim(tx.conn(), &p.name, period).await? {
            tx.enqueue_raw(p.task, &args, p.options.clone()).await?;
        }
        tx.commit().await?;
        settled.insert(p.name.clone(), period);
    }
    Ok(())
}

/// How long until the next period starts for any of them.
pub(crate) fn next_in(periodic: &[Periodic]) -> Duration {
    let now = Utc::now();
    periodic.iter().map(|p| p.next_in(now)).min().unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Nothing;

    impl Task for Nothing {
        const NAME: &'static str = "nothing";
        async fn run(self, _: &mut crate::TaskContext) -> Result<(), crate::TaskError> {
            Ok(())
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a valid time")
    }

    #[test]
    fn cron_occurrences_are_keyed_by_time_and_stale_ones_are_skipped() {
        let daily = Periodic::cron("daily", "0 3 * * *", || Nothing).expect("valid");
        let three = at("2026-11-22T03:00:00Z");
        assert_eq!(daily.due(at("2026-11-22T03:00:30Z")), Some(three.timestamp_millis()));
        // At 10:00 the 03:00 run is long gone: skipped, as cron would.
        assert_eq!(daily.due(at("2026-11-22T10:00:00Z")), None);
        assert_eq!(daily.next_in(at("2026-11-22T02:59:00Z")), Duration::from_secs(60));
    }

    /// The keys `periodic` is due under, minute by minute from `from` for `hours`: each
    /// occurrence found, once.
    fn occurrences(periodic: &Periodic, from: &str, hours: i64) -> Vec<DateTime<Utc>> {
        let start = at(from);
        let mut keys: Vec<i64> =
            (0..hours * 60).filter_map(|m| periodic.due(start + chrono::Duration::minutes(m))).collect();
        keys.dedup();
        keys.into_iter().map(|k| DateTime::from_timestamp_millis(k).expect("a time")).collect()
    }

    #[test]
    fn cron_in_a_time_zone_runs_once_across_daylight_saving_changes() {
        let berlin = Periodic::cron("report", "30 2 * * *", || Nothing).expect("valid").time_zone("Europe/Berlin");
        let berlin = berlin.expect("a zone");
        // An ordinary winter day: 02:30 CET is 01:30 UTC.
        assert_eq!(occurrences(&berlin, "2027-01-10T00:00:00Z", 24), [at("2027-01-10T01:30:00Z")]);
        // Spring forward (2027-03-28, 02:00 CET becomes 03:00 CEST): 02:30 does not exist;
        // the job runs once, at 03:00 CEST (01:00 UTC).
        assert_eq!(occurrences(&berlin, "2027-03-27T22:00:00Z", 24), [at("2027-03-28T01:00:00Z")]);
        // Fall back (2027-10-31, 03:00 CEST becomes 02:00 CET): 02:30 happens twice; the
        // job runs once, the first time (02:30 CEST, 00:30 UTC).
        assert_eq!(occurrences(&berlin, "2027-10-30T22:00:00Z", 24), [at("2027-10-31T00:30:00Z")]);
        // The next day, 02:30 CET.
        assert_eq!(occurrences(&berlin, "2027-10-31T22:00:00Z", 24), [at("2027-11-01T01:30:00Z")]);
        assert_eq!(berlin.next_in(at("2027-03-28T00:59:00Z")), Duration::from_secs(60));

        // A pattern with a step runs at each match of the wall clock: the repeated hour's
        // half hours twice.
        let half = Periodic::cron("half", "*/30 2 * * *", || Nothing).expect("valid").time_zone("Europe/Berlin");
        let runs = occurrences(&half.expect("a zone"), "2027-10-30T22:00:00Z", 24);
        let expect = ["2027-10-31T00:00:00Z", "2027-10-31T00:30:00Z", "2027-10-31T01:00:00Z", "2027-10-31T01:30:00Z"];
        assert_eq!(runs, expect.map(at));

        // UTC unless set, and refused where it means nothing.
        let utc = Periodic::cron("utc", "30 2 * * *", || Nothing).expect("valid");
        assert_eq!(occurrences(&utc, "2027-03-28T00:00:00Z", 24), [at("2027-03-28T02:30:00Z")]);
        for (periodic, zone) in [
            (Periodic::cron("x", "30 2 * * *", || Nothing).expect("valid"), "Europe/Atlantis"),
            (Periodic::every("x", Duration::from_secs(60), || Nothing), "Europe/Berlin"),
        ] {
            let err = periodic.time_zone(zone).expect_err("refused");
            assert!(matches!(err, crate::Error::InvalidSchedule { .. }), "{err}");
        }
    }

    #[test]
    fn fixed_periods_are_numbered_from_the_epoch() {
        let hourly = Periodic::every("hourly", Duration::from_secs(3600), || Nothing);
        assert_eq!(hourly.due(at("1970-01-01T05:30:00Z")), Some(5));
        assert_eq!(hourly.next_in(at("1970-01-01T05:30:00Z")), Duration::from_secs(1800));
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Beat {
        n: u8,
    }

    impl Task for Beat {
        const NAME: &'static str = "beat";
        async fn run(self, _: &mut crate::TaskContext) -> Result<(), crate::TaskError> {
            Ok(())
        }
    }

    /// Two leaders at once (the case the leader lease makes rare: a leader whose lease ran
    /// out while it still acts): each drives the enqueue path with its own bookkeeping, over
    /// its own pool, at the same instants. Only the database's per-period claim stands
    /// between them and a job per leader; one job is what comes out.
    async fn two_leaders_enqueue_one_job_per_period(url: &str) {
        let (a, b) = (Db::connect(url).await.expect("connect"), Db::connect(url).await.expect("connect"));
        a.migrate().await.expect("migrate");
        // A period of ten years: every round below falls in the same one.
        let periodic = [Periodic::every("decade", Duration::from_secs(315_360_000), || Beat { n: 1 })];
        for _ in 0..10 {
            let (mut mine, mut theirs) = (HashMap::new(), HashMap::new());
            let (x, y) = tokio::join!(enqueue_due(&a, &periodic, &mut mine), enqueue_due(&b, &periodic, &mut theirs));
            x.expect("leader a");
            y.expect("leader b");
        }
        let jobs = a.jobs().count(&crate::admin::JobSelection::default()).await.expect("count");
        assert_eq!(jobs, 1, "one job for the period, not one per leader");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_leaders_enqueue_one_job_per_period_in_postgres() {
        let (name, url, mut admin) = crate::queries::plans::scratch_database("oncommit_leaders").await;
        two_leaders_enqueue_one_job_per_period(&url).await;
        let drop = format!("DROP DATABASE {name} WITH (FORCE)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await.expect("drop the database");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_leaders_enqueue_one_job_per_period_in_sqlite() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        two_leaders_enqueue_one_job_per_period(&format!("sqlite://{}", dir.path().join("t.db").display())).await;
    }
}
