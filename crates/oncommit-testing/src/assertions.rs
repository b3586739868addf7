//! Asserting on the jobs an application enqueued (Oban's `assert_enqueued`, `rivertest`'s
//! `RequireInserted`), read back from the database with their arguments decoded as the task.

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Db, Job, JobState, Task};

/// The jobs of task `T` waiting to run (available, scheduled or retryable), oldest first,
/// each with its arguments decoded. Panics when a row's arguments do not decode as `T`:
/// the worker would fail that job.
pub async fn enqueued<T: Task>(db: &Db) -> Vec<(Job, T)> {
    let waiting = JobSelection::new([JobState::Available, JobState::Scheduled, JobState::Retryable]).task(T::NAME);
    let first = PageRequest::oldest(oncommit::limits::MAX_PAGE);
    let mut page = db.jobs().list(&waiting, &first).await.expect("listing the jobs");
    let mut found = Vec::new();
    loop {
        for job in std::mem::take(&mut page.jobs) {
            let task: T = serde_json::from_value(job.args.clone())
                .unwrap_or_else(|e| panic!("job {} of `{}` has args the task cannot decode: {e}", job.id, T::NAME));
            found.push((job, task));
        }
        let Some(cursor) = page.next_cursor else { break };
        page = db.jobs().list(&waiting, &first.after(cursor)).await.expect("listing the jobs");
    }
    found
}

/// Asserts that a job of task `T` whose arguments satisfy `matches` is waiting to run, and
/// returns it; the panic lists what is waiting instead.
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct SendWelcome { user: i64 }
/// # impl oncommit::Task for SendWelcome { const NAME: &'static str = "send_welcome";
/// #   async fn run(self, _: &mut oncommit::TaskContext) -> Result<(), oncommit::TaskError> { Ok(()) } }
/// # async fn demo(db: oncommit::Db) {
/// let (job, welcome) = oncommit_testing::assert_enqueued::<SendWelcome>(&db, |w| w.user == 42).await;
/// assert_eq!(job.queue, "default");
/// # }
/// ```
pub async fn assert_enqueued<T: Task>(db: &Db, matches: impl Fn(&T) -> bool) -> (Job, T) {
    let waiting = enqueued::<T>(db).await;
    let shown: Vec<String> = waiting.iter().map(|(job, _)| format!("#{} {}", job.id, job.args)).collect();
    waiting
        .into_iter()
        .find(|(_, task)| matches(task))
        .unwrap_or_else(|| panic!("no waiting `{}` job matches; waiting: {shown:?}", T::NAME))
}

/// Asserts that no job of task `T` whose arguments satisfy `matches` is waiting to run.
pub async fn assert_not_enqueued<T: Task>(db: &Db, matches: impl Fn(&T) -> bool) {
    if let Some((job, _)) = enqueued::<T>(db).await.into_iter().find(|(_, task)| matches(task)) {
        panic!("a `{}` job that should not be there is waiting: #{} {}", T::NAME, job.id, job.args);
    }
}
