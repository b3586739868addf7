//! Decoding job rows so that no stored value can panic a worker or break a listing.
//!
//! Rows are written by oncommit, but also by hand, by other languages and by old versions:
//! a `run_at` of `'infinity'`, a year past chrono's range, an `errors` column that is not
//! JSON. sqlx's own `timestamptz` decoder panics on the first two (it adds microseconds to
//! its epoch unchecked). So every column is read here leniently: a value that cannot be
//! decoded becomes a stand-in (the nearest representable time, the raw text) and a
//! *problem* naming the column. Listings show the stand-in; the claim fails the job with
//! the problem as its error, and the rest of its batch runs.

#[cfg(feature = "postgres")]
use chrono::TimeZone;
use chrono::{DateTime, Utc};
use sqlx::Row;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgRow, PgTypeInfo, PgValueFormat, PgValueRef, Postgres};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqliteRow;
#[cfg(feature = "postgres")]
use sqlx::{Decode, Type};

use crate::job::{AttemptError, Job, JobId, JobState};

/// A job row as read, with what could not be decoded.
pub(crate) struct JobRow {
    /// The job, with stand-ins for undecodable values.
    pub(crate) job: Job,
    /// The first column that could not be decoded, and why; `None` for a sound row.
    pub(crate) problem: Option<String>,
}

impl JobRow {
    fn read(row: &impl Columns) -> sqlx::Result<JobRow> {
        let mut problems = Problems::default();
        // The id identifies the row for everything else (a failing transition included).
        let id: i64 =
            row.int64("id").map_err(|e| sqlx::Error::ColumnDecode { index: "id".into(), source: e.into() })?;
        let job = Job {
            id: JobId(id),
            queue: problems.take("queue", row.text("queue")).unwrap_or_default(),
            task: problems.take("task", row.text("task")).unwrap_or_default(),
            args: args(&mut problems, row.text("args")),
            state: problems
                .take("state", row.text("state").and_then(|s| s.parse::<JobState>()))
                .unwrap_or(JobState::Available),
            priority: problems.take("priority", row.int16("priority")).unwrap_or_default(),
            attempt: problems.take("attempt", row.int32("attempt")).unwrap_or_default(),
            max_attempts: problems.take("max_attempts", row.int32("max_attempts")).unwrap_or(1),
            run_at: problems.time("run_at", row.time("run_at")).unwrap_or_default(),
            created_at: problems.time("created_at", row.time("created_at")).unwrap_or_default(),
            attempted_at: problems.time("attempted_at", row.time("attempted_at")),
            finished_at: problems.time("finished_at", row.time("finished_at")),
            lease_owner: problems.take("lease_owner", row.opt_text("lease_owner")).flatten(),
            lease_expires_at: problems.time("lease_expires_at", row.time("lease_expires_at")),
            cancel_requested: problems.take("cancel_requested", row.boolean("cancel_requested")).unwrap_or(false),
            errors: errors(row.text("errors")),
            unique_key: problems.take("unique_key", row.opt_text("unique_key")).flatten(),
            // Only observability: an unreadable one is dropped, never a reason to fail the job.
            trace_context: row.opt_text("trace_context").ok().flatten(),
            // Only for reading: a result that is not JSON (written by hand) is kept as text.
            result: row
                .opt_text("result")
                .ok()
                .flatten()
                .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
            workflow_id: row.opt_text("workflow_id").ok().flatten(),
            concurrency_key: row.opt_text("concurrency_key").ok().flatten(),
            fair_key: row.opt_text("fair_key").ok().flatten(),
        };
        Ok(JobRow { job, problem: problems.first })
    }
}

/// Collects the first problem; later ones are usually consequences of the same bad write.
#[derive(Default)]
struct Problems {
    first: Option<String>,
}

impl Problems {
    fn take<T>(&mut self, column: &str, value: Result<T, String>) -> Option<T> {
        match value {
            Ok(v) => Some(v),
            Err(why) => {
                self.first.get_or_insert_with(|| format!("column `{column}` cannot be read: {why}"));
                None
            }
        }
    }

    /// A time column: an out-of-range value stands in as the nearest representable time.
    fn time(&mut self, column: &str, value: Result<Option<Time>, String>) -> Option<DateTime<Utc>> {
        match self.take(column, value).flatten()? {
            Time::At(t) => Some(t),
            Time::OutOfRange { stand_in, what } => {
                self.first.get_or_insert_with(|| format!("column `{column}` is out of range: {what}"));
                Some(stand_in)
            }
        }
    }
}

fn args(problems: &mut Problems, text: Result<String, String>) -> serde_json::Value {
    let Some(text) = problems.take("args", text) else { return serde_json::Value::Null };
    match serde_json::from_str(&text) {
        Ok(args) => args,
        Err(e) => {
            problems.take::<()>("args", Err(format!("not JSON ({e})")));
            serde_json::Value::String(text)
        }
    }
}

/// The error history. A malformed history is shown, not fatal: it says nothing about
/// whether the job can run.
fn errors(text: Result<String, String>) -> Vec<AttemptError> {
    let unreadable = |why: String| {
        vec![AttemptError {
            attempt: 0,
            at: 0,
            error: format!("unreadable error history: {why}"),
            worker: None,
            started: None,
        }]
    };
    let text = match text {
        Ok(text) => text,
        Err(why) => return unreadable(why),
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Array(entries)) => entries
            .into_iter()
            .map(|entry| {
                serde_json::from_value::<AttemptError>(entry.clone()).unwrap_or_else(|_| AttemptError {
                    attempt: entry.get("attempt").and_then(serde_json::Value::as_i64).map_or(0, |a| a as i32),
                    at: entry.get("at").and_then(serde_json::Value::as_i64).unwrap_or(0),
                    error: entry
                        .get("error")
                        .and_then(serde_json::Value::as_str)
                        .map_or_else(|| entry.to_string(), str::to_owned),
                    worker: None,
                    started: None,
                })
            })
            .collect(),
        Ok(other) => unreadable(format!("not a JSON array: {other}")),
        Err(e) => unreadable(format!("not JSON ({e}): {text}")),
    }
}

/// A stored time.
enum Time {
    At(DateTime<Utc>),
    /// `infinity`, `-infinity`, or a year chrono cannot hold.
    OutOfRange {
        stand_in: DateTime<Utc>,
        what: String,
    },
}

impl Time {
    fn out_of_range(positive: bool, what: String) -> Time {
        let stand_in = if positive { DateTime::<Utc>::MAX_UTC } else { DateTime::<Utc>::MIN_UTC };
        Time::OutOfRange { stand_in, what }
    }
}

/// The two backends' rows, read the same way (errors as text, for [`Problems`]).
trait Columns {
    fn int64(&self, column: &str) -> Result<i64, String>;
    fn int32(&self, column: &str) -> Result<i32, String>;
    fn int16(&self, column: &str) -> Result<i16, String>;
    fn boolean(&self, column: &str) -> Result<bool, String>;
    fn text(&self, column: &str) -> Result<String, String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, String>;
    fn time(&self, column: &str) -> Result<Option<Time>, String>;
}

#[cfg(feature = "postgres")]
impl Columns for PgRow {
    fn int64(&self, column: &str) -> Result<i64, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn int32(&self, column: &str) -> Result<i32, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn int16(&self, column: &str) -> Result<i16, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn boolean(&self, column: &str) -> Result<bool, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn text(&self, column: &str) -> Result<String, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn time(&self, column: &str) -> Result<Option<Time>, String> {
        self.try_get::<Option<PgTime>, _>(column).map(|t| t.map(|t| t.0)).map_err(|e| e.to_string())
    }
}

/// SQLite stores any integer as one type; a value that does not fit the column's Rust type
/// is a problem, not a truncation.
#[cfg(feature = "sqlite")]
impl Columns for SqliteRow {
    fn int64(&self, column: &str) -> Result<i64, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn int32(&self, column: &str) -> Result<i32, String> {
        i32::try_from(self.int64(column)?).map_err(|e| e.to_string())
    }

    fn int16(&self, column: &str) -> Result<i16, String> {
        i16::try_from(self.int64(column)?).map_err(|e| e.to_string())
    }

    fn boolean(&self, column: &str) -> Result<bool, String> {
        Ok(self.int64(column)? != 0)
    }

    fn text(&self, column: &str) -> Result<String, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, String> {
        self.try_get(column).map_err(|e| e.to_string())
    }

    /// Epoch milliseconds.
    fn time(&self, column: &str) -> Result<Option<Time>, String> {
        let ms: Option<i64> = self.try_get(column).map_err(|e| e.to_string())?;
        Ok(ms.map(|ms| match DateTime::from_timestamp_millis(ms) {
            Some(t) => Time::At(t),
            None => Time::out_of_range(ms > 0, format!("{ms} ms since the epoch")),
        }))
    }
}

#[cfg(feature = "postgres")]
/// A `timestamptz` decoded without sqlx's unchecked arithmetic.
struct PgTime(Time);

#[cfg(feature = "postgres")]
impl Type<Postgres> for PgTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

#[cfg(feature = "postgres")]
impl<'r> Decode<'r, Postgres> for PgTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        if value.format() == PgValueFormat::Text {
            let text = value.clone().as_str()?.to_owned();
            return Ok(PgTime(match text.as_str() {
                "infinity" => Time::out_of_range(true, text),
                "-infinity" => Time::out_of_range(false, text),
                _ => Time::At(<DateTime<Utc> as Decode<Postgres>>::decode(value)?),
            }));
        }
        // Microseconds since 2000-01-01 UTC; i64::MAX and MIN stand for ±infinity.
        let micros = <i64 as Decode<Postgres>>::decode(value)?;
        let epoch_2000 = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().ok_or("the year 2000 exists")?;
        Ok(PgTime(match micros {
            i64::MAX => Time::out_of_range(true, "infinity".into()),
            i64::MIN => Time::out_of_range(false, "-infinity".into()),
            _ => match epoch_2000.checked_add_signed(chrono::Duration::microseconds(micros)) {
                Some(t) => Time::At(t),
                None => Time::out_of_range(micros > 0, format!("{micros} µs from 2000-01-01")),
            },
        }))
    }
}

#[cfg(feature = "postgres")]
impl sqlx::FromRow<'_, PgRow> for JobRow {
    fn from_row(row: &PgRow) -> sqlx::Result<JobRow> {
        JobRow::read(row)
    }
}

#[cfg(feature = "sqlite")]
impl sqlx::FromRow<'_, SqliteRow> for JobRow {
    fn from_row(row: &SqliteRow) -> sqlx::Result<JobRow> {
        JobRow::read(row)
    }
}

#[cfg(feature = "postgres")]
impl sqlx::FromRow<'_, PgRow> for Job {
    fn from_row(row: &PgRow) -> sqlx::Result<Job> {
        JobRow::read(row).map(|r| r.job)
    }
}

#[cfg(feature = "sqlite")]
impl sqlx::FromRow<'_, SqliteRow> for Job {
    fn from_row(row: &SqliteRow) -> sqlx::Result<Job> {
        JobRow::read(row).map(|r| r.job)
    }
}
