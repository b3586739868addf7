//! Unique jobs by content: what makes two jobs "the same", for how long, and what happens
//! when a second one is enqueued. The guide is `docs/jobs.md`, "Unique jobs".

use std::fmt::Write as _;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::job::JobState;

/// What makes a job the same as another, for [`EnqueueOptions::unique`]: while a job that
/// is the same is in one of the chosen states, enqueueing another returns that job's id
/// instead of adding one (or, with [`Unique::replace`], updates it if it has not started).
///
/// Two jobs are the same when they have the same task and:
/// - [`Unique::by_args`]: the same arguments (compared as JSON, whatever the key order);
/// - [`Unique::by_arg_keys`]: the same values for these top-level argument keys;
/// - [`Unique::by_task`]: nothing more (one job of the task at a time);
/// - [`Unique::by_key`]: the same explicit key;
///
/// and, if asked, the same queue ([`Unique::by_queue`]) and the same period
/// ([`Unique::period`]: windows aligned to the Unix epoch, by the enqueuing machine's clock).
///
/// ```
/// use std::time::Duration;
/// use oncommit::{EnqueueOptions, JobState, Unique};
///
/// // At most one report per customer and 10 minutes, even once it has completed.
/// let report = EnqueueOptions::new().unique(
///     Unique::by_arg_keys(["customer_id"])
///         .period(Duration::from_secs(600))
///         .states([JobState::Scheduled, JobState::Available, JobState::Running, JobState::Completed]),
/// );
/// // Debounce: one pending digest per user; each enqueue pushes it back and updates it.
/// let digest = EnqueueOptions::new()
///     .delay(Duration::from_secs(30))
///     .unique(Unique::by_arg_keys(["user_id"]).states([JobState::Scheduled, JobState::Available]).replace());
/// ```
///
/// [`EnqueueOptions::unique`]: crate::EnqueueOptions::unique
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Unique {
    by: By,
    by_queue: bool,
    period: Option<Duration>,
    states: Vec<JobState>,
    replace: bool,
}

/// What beside the task is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
enum By {
    Args,
    ArgKeys(Vec<String>),
    Task,
    Key(String),
}

/// The states a unique job holds its identity in unless told otherwise: until it finishes.
const UNFINISHED: [JobState; 5] =
    [JobState::Pending, JobState::Scheduled, JobState::Available, JobState::Running, JobState::Retryable];

impl Unique {
    fn new(by: By) -> Unique {
        Unique { by, by_queue: false, period: None, states: UNFINISHED.to_vec(), replace: false }
    }

    /// The same task with the same arguments.
    pub fn by_args() -> Unique {
        Unique::new(By::Args)
    }

    /// The same task with the same values for these top-level keys of its arguments (a
    /// missing key counts as `null`). The arguments must be a JSON object.
    pub fn by_arg_keys<K: Into<String>>(keys: impl IntoIterator<Item = K>) -> Unique {
        let mut keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        keys.sort();
        keys.dedup();
        Unique::new(By::ArgKeys(keys))
    }

    /// The same task, whatever its arguments.
    pub fn by_task() -> Unique {
        Unique::new(By::Task)
    }

    /// The same explicit key (with the periods, states and replacement an
    /// [`EnqueueOptions::unique_key`](crate::EnqueueOptions::unique_key) does not have).
    pub fn by_key(key: impl Into<String>) -> Unique {
        Unique::new(By::Key(key.into()))
    }

    /// … and the same queue.
    pub fn by_queue(mut self) -> Self {
        self.by_queue = true;
        self
    }

    /// … enqueued within the same `period` (windows aligned to the Unix epoch: with 10
    /// minutes, 12:00 to 12:10, 12:10 to 12:20…). At least a millisecond.
    pub fn period(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// The states in which a job keeps its identity (default: pending, scheduled,
    /// available, running and retryable, i.e. until it finishes). Add `Completed` for "at most one per
    /// period, even once done"; leave out `Running` to let a new one queue up while one runs.
    pub fn states(mut self, states: impl IntoIterator<Item = JobState>) -> Self {
        self.states = states.into_iter().collect();
        self
    }

    /// When the same job is waiting and has not started (`scheduled` or `available`), update
    /// it instead: its arguments, run time and priority become the new job's (a debounce:
    /// each enqueue pushes it back). A job that has started is left alone: its id is
    /// returned, or a new job is added if its state is not among [`Unique::states`].
    pub fn replace(mut self) -> Self {
        self.replace = true;
        self
    }

    /// The identity of a job of `task` with `args` (JSON text) on `queue`, enqueued at
    /// `now_ms`: a hash, and the bitmask of the states it is held in.
    pub(crate) fn identity(&self, task: &str, args: &str, queue: Option<&str>, now_ms: i64) -> Result<Identity> {
        let refuse = |reason: String| Error::InvalidOption { option: "unique", reason };
        if self.states.is_empty() {
            return Err(refuse("no states: name the states in which a job stays unique".to_owned()));
        }
        let compared = match &self.by {
            By::Args => serde_json::json!({ "args": parse(args)? }),
            By::ArgKeys(keys) => {
                let args = parse(args)?;
                let object = args.as_object().ok_or_else(|| {
                    refuse("unique by argument keys needs arguments that are a JSON object".to_owned())
                })?;
                let picked: serde_json::Map<String, serde_json::Value> =
                    keys.iter().map(|k| (k.clone(), object.get(k).cloned().unwrap_or_default())).collect();
                serde_json::json!({ "keys": picked })
            }
            By::Task => serde_json::json!({}),
            By::Key(key) => serde_json::json!({ "key": key }),
        };
        let period = match self.period {
            None => serde_json::Value::Null,
            Some(p) => {
                let ms = i64::try_from(p.as_millis()).unwrap_or(i64::MAX);
                if ms < 1 {
                    return Err(refuse(format!("a period of {p:?}: it must be at least a millisecond")));
                }
                serde_json::json!([ms, now_ms.div_euclid(ms)])
            }
        };
        let queue = if self.by_queue { serde_json::json!(queue) } else { serde_json::Value::Null };
        let mut text = String::new();
        canonical(&serde_json::json!({ "task": task, "by": compared, "queue": queue, "period": period }), &mut text);
        let digest = Sha256::digest(text.as_bytes());
        let mut hash = String::with_capacity(64);
        for byte in digest {
            let _ = write!(hash, "{byte:02x}");
        }
        let states = self.states.iter().fold(0_i32, |mask, s| mask | 1 << state_bit(*s));
        Ok(Identity { hash, states, replace: self.replace })
    }
}

/// A unique job's identity, as stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// SHA-256 of what makes it the same job, hex.
    pub(crate) hash: String,
    /// The states it is held in, a bit each (see `state_bit`).
    pub(crate) states: i32,
    /// Update a same job that has not started instead.
    pub(crate) replace: bool,
}

/// A state's bit in `unique_states`, as the index's CASE numbers it (migrations 011/008):
/// stored in rows, so fixed for good.
fn state_bit(state: JobState) -> u32 {
    match state {
        JobState::Scheduled => 0,
        JobState::Available => 1,
        JobState::Running => 2,
        JobState::Retryable => 3,
        JobState::Completed => 4,
        JobState::Failed => 5,
        JobState::Cancelled => 6,
        JobState::Pending => 7,
    }
}

fn parse(args: &str) -> Result<serde_json::Value> {
    serde_json::from_str(args).map_err(crate::Error::app)
}

/// JSON with object keys sorted at every level, whatever order serde_json keeps them in, so
/// equal arguments hash equally.
fn canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn hash(unique: &Unique, task: &str, args: &str, queue: Option<&str>, now_ms: i64) -> String {
        unique.identity(task, args, queue, now_ms).unwrap().hash
    }

    #[test]
    fn the_same_content_hashes_the_same_whatever_the_key_order() {
        let u = Unique::by_args();
        assert_eq!(
            hash(&u, "t", r#"{"a": 1, "b": {"x": 1, "y": 2}}"#, None, 0),
            hash(&u, "t", r#"{"b": {"y": 2, "x": 1}, "a": 1}"#, None, 0)
        );
        assert_ne!(hash(&u, "t", r#"{"a": 1}"#, None, 0), hash(&u, "t", r#"{"a": 2}"#, None, 0));
        assert_ne!(hash(&u, "t", r#"{"a": 1}"#, None, 0), hash(&u, "other", r#"{"a": 1}"#, None, 0));
    }

    #[test]
    fn keys_queue_and_period_say_what_is_compared() {
        let keys = Unique::by_arg_keys(["customer"]);
        assert_eq!(
            hash(&keys, "t", r#"{"customer": 7, "n": 1}"#, None, 0),
            hash(&keys, "t", r#"{"customer": 7, "n": 2}"#, None, 0)
        );
        assert!(keys.identity("t", "[1, 2]", None, 0).is_err(), "keys need an object");
        let queue = Unique::by_task().by_queue();
        assert_ne!(hash(&queue, "t", "{}", Some("a"), 0), hash(&queue, "t", "{}", Some("b"), 0));
        assert_eq!(
            hash(&Unique::by_task(), "t", "{}", Some("a"), 0),
            hash(&Unique::by_task(), "t", "{}", Some("b"), 0)
        );
        let period = Unique::by_task().period(Duration::from_secs(600));
        assert_eq!(hash(&period, "t", "{}", None, 600_000), hash(&period, "t", "{}", None, 1_199_999));
        assert_ne!(hash(&period, "t", "{}", None, 1_199_999), hash(&period, "t", "{}", None, 1_200_000));
        assert!(Unique::by_task().period(Duration::from_micros(5)).identity("t", "{}", None, 0).is_err());
        assert!(Unique::by_task().states([]).identity("t", "{}", None, 0).is_err());
    }

    #[test]
    fn states_are_a_bit_each_in_the_order_of_a_jobs_life() {
        let all = Unique::by_task().states(JobState::ALL).identity("t", "{}", None, 0).unwrap();
        assert_eq!(all.states, 0b1111_1111);
        let default = Unique::by_task().identity("t", "{}", None, 0).unwrap();
        assert_eq!(default.states, 0b1000_1111);
    }
}
