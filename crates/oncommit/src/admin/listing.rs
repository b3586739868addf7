//! Listing jobs a page at a time: what `oncommit jobs` and the dashboard's jobs view call.
//!
//! Pages follow the job id (the order of creation) with a cursor, not an offset: the next
//! page starts after the last id shown, so jobs that change state, are enqueued or are
//! pruned meanwhile never make a page repeat or skip one that still matches.
//!
//! A page reads windows of the primary key, growing from 10,000 ids, until it has its jobs
//! or has spent its time budget ([`PAGE_BUDGET`]); then it returns what it found and a
//! cursor to go on from. A filter that matches few jobs in a table of millions (a search
//! for some text in the args) thus answers in bounded time, with a shorter page, instead
//! of scanning the whole table in one statement.

use std::time::{Duration, Instant};

use super::{JobSelection, Jobs};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::queries::listing;

/// How long one page may read before it returns what it found, with a cursor.
pub const PAGE_BUDGET: Duration = Duration::from_millis(300);

/// The most jobs one page may hold.
pub const MAX_PAGE: i64 = 1_000;

/// Which way pages run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOrder {
    /// The most recently enqueued first.
    #[default]
    Newest,
    /// The longest enqueued first.
    Oldest,
}

impl std::str::FromStr for JobOrder {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "newest" => Ok(JobOrder::Newest),
            "oldest" => Ok(JobOrder::Oldest),
            other => Err(format!("unknown order `{other}`: newest or oldest")),
        }
    }
}

/// Which page of a listing [`Jobs::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Newest or oldest first.
    pub order: JobOrder,
    /// Where the previous page ended ([`JobsPage::next_cursor`]); `None` for the first page.
    pub cursor: Option<i64>,
    /// At most this many jobs (1 to [`MAX_PAGE`]).
    pub limit: i64,
}

impl Default for PageRequest {
    /// The first 50 jobs, newest first.
    fn default() -> Self {
        PageRequest { order: JobOrder::Newest, cursor: None, limit: 50 }
    }
}

/// One page of jobs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobsPage {
    /// The jobs, in the page's order.
    pub jobs: Vec<Job>,
    /// Where the next page starts, or `None` when no job lies beyond this page. A page
    /// shorter than its limit may still have one: it stopped at its time budget, having
    /// read every job up to that point.
    pub next_cursor: Option<i64>,
}

/// The first window of ids a page reads, and the largest.
const FIRST_WINDOW: i64 = 10_000;
const LARGEST_WINDOW: i64 = 1_000_000;

impl PageRequest {
    /// The first `limit` jobs, newest first.
    pub fn newest(limit: i64) -> PageRequest {
        PageRequest { order: JobOrder::Newest, cursor: None, limit }
    }

    /// The first `limit` jobs, oldest first.
    pub fn oldest(limit: i64) -> PageRequest {
        PageRequest { order: JobOrder::Oldest, cursor: None, limit }
    }

    /// This page's next: the same order and limit, starting after `cursor`
    /// ([`JobsPage::next_cursor`]).
    pub fn after(self, cursor: i64) -> PageRequest {
        PageRequest { cursor: Some(cursor), ..self }
    }
}

impl Jobs<'_> {
    /// One page of the jobs `selection` picks (every state when it names none): the one
    /// way to list jobs, by any filter, either way, a page at a time.
    ///
    /// ```no_run
    /// # use oncommit::admin::{JobSelection, PageRequest};
    /// # use oncommit::{Db, JobState};
    /// # async fn demo(db: Db) -> oncommit::Result<()> {
    /// let failed = JobSelection::new([JobState::Failed]).search("timeout");
    /// let first = PageRequest::default();
    /// let mut page = db.jobs().list(&failed, &first).await?;
    /// loop {
    ///     for job in &page.jobs {
    ///         println!("{} {}", job.id, job.task);
    ///     }
    ///     let Some(cursor) = page.next_cursor else { break };
    ///     page = db.jobs().list(&failed, &first.after(cursor)).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, selection: &JobSelection, page: &PageRequest) -> Result<JobsPage> {
        if !(1..=MAX_PAGE).contains(&page.limit) {
            return Err(Error::InvalidOption {
                option: "page limit",
                reason: format!("{} is not between 1 and {MAX_PAGE}", page.limit),
            });
        }
        let filter = selection.any_state_filter()?;
        let Some((min, max)) = listing::job_id_bounds(self.db).await? else {
            return Ok(JobsPage { jobs: Vec::new(), next_cursor: None });
        };
        let started = Instant::now();
        let mut jobs = Vec::new();
        let mut window = FIRST_WINDOW;
        // The ids not read yet: [from, to) newest first, (from, to] oldest first.
        let newest = page.order == JobOrder::Newest;
        let mut edge = match (newest, page.cursor) {
            (true, cursor) => cursor.unwrap_or(i64::MAX).min(max.saturating_add(1)),
            (false, cursor) => cursor.unwrap_or(i64::MIN).max(min.saturating_sub(1)),
        };
        loop {
            let done = if newest { edge <= min } else { edge >= max };
            if done {
                return Ok(JobsPage { jobs, next_cursor: None });
            }
            let need = page.limit - jobs.len() as i64;
            let (lo, hi, next_edge) = if newest {
                let lo = edge.saturating_sub(window).max(min);
                (lo, edge, lo)
            } else {
                let hi = edge.saturating_add(window).min(max);
                (edge + 1, hi + 1, hi)
            };
            let found = listing::job_window(self.db, &filter, lo, hi, newest, need).await?;
            jobs.extend(found);
            if jobs.len() as i64 >= page.limit {
                let next_cursor = jobs.last().map(|j| j.id.0);
                return Ok(JobsPage { jobs, next_cursor });
            }
            edge = next_edge;
            if started.elapsed() >= PAGE_BUDGET {
                let more = if newest { edge > min } else { edge < max };
                return Ok(JobsPage { jobs, next_cursor: more.then_some(edge) });
            }
            window = (window * 4).min(LARGEST_WINDOW);
        }
    }
}
