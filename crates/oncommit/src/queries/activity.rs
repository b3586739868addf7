//! The per-queue, per-minute activity counts (`oncommit.queue_activity`): a worker's upsert
//! of what it counted, the dashboard's read of the last hour, the leader's prune.

use crate::db::Db;
use crate::error::Result;

/// One counter: `(minute since the epoch, queue, metric, bucket, count)`.
pub(crate) type ActivityRow = (i64, String, String, i16, i64);

/// Adds `rows` to the stored counts. The rows arrive sorted by key, so two workers adding
/// to the same minutes lock the same rows in the same order and never deadlock.
pub(crate) async fn activity_add(db: &Db, rows: &[ActivityRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let minutes: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let queues: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let metrics: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    let buckets: Vec<i16> = rows.iter().map(|r| r.3).collect();
    let counts: Vec<i64> = rows.iter().map(|r| r.4).collect();
    let json = serde_json::to_string(rows).map_err(crate::Error::app)?;
    on_conn!(
        db,
        "recording queue activity",
        |c| async {
            sqlx::query(
                "INSERT INTO oncommit.queue_activity (minute, queue, metric, bucket, count) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int2[], $5::int8[]) \
             ON CONFLICT (minute, queue, metric, bucket) \
             DO UPDATE SET count = oncommit.queue_activity.count + excluded.count",
            )
            .bind(&minutes)
            .bind(&queues)
            .bind(&metrics)
            .bind(&buckets)
            .bind(&counts)
            .execute(&mut **c)
            .await
            .map(|_| ())
        },
        async {
            sqlx::query(
                "INSERT INTO oncommit_queue_activity (minute, queue, metric, bucket, count) \
             SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]', value ->> '$[3]', value ->> '$[4]' \
             FROM json_each($1) WHERE true \
             ON CONFLICT (minute, queue, metric, bucket) DO UPDATE SET count = count + excluded.count",
            )
            .bind(&json)
            .execute(&mut **c)
            .await
            .map(|_| ())
        },
    )
}

/// The counts since a minute, a range of the primary key, summed in the database: per
/// minute only for completions (the chart), over the whole range for the rest, so an hour
/// comes back as some 80 rows per queue however many buckets its minutes filled.
macro_rules! activity_since {
    ($table:literal, $sum:literal) => {
        concat!(
            "SELECT CASE WHEN metric = 'completed' THEN minute ELSE 0 END AS m, queue, metric, bucket, ",
            $sum,
            " FROM ",
            $table,
            " WHERE minute >= $1 GROUP BY m, queue, metric, bucket ORDER BY m, queue, metric, bucket"
        )
    };
}

pub(super) const PG_ACTIVITY_SINCE: &str = activity_since!("oncommit.queue_activity", "sum(count)::int8");

/// The counts of minutes `since_minute` and later (the minute is 0 but for completions).
pub(crate) async fn activity_since(db: &Db, since_minute: i64) -> Result<Vec<ActivityRow>> {
    on_conn!(
        db,
        "reading queue activity",
        |c| sqlx::query_as(PG_ACTIVITY_SINCE).bind(since_minute).fetch_all(&mut **c),
        sqlx::query_as(activity_since!("oncommit_queue_activity", "sum(count)")).bind(since_minute).fetch_all(&mut **c),
    )
}

/// Deletes the minutes before `before_minute`.
pub(crate) async fn activity_prune(db: &Db, before_minute: i64) -> Result<u64> {
    on_conn!(
        db,
        "pruning queue activity",
        |c| async {
            let done = sqlx::query("DELETE FROM oncommit.queue_activity WHERE minute < $1")
                .bind(before_minute)
                .execute(&mut **c)
                .await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        },
        async {
            let done = sqlx::query("DELETE FROM oncommit_queue_activity WHERE minute < $1")
                .bind(before_minute)
                .execute(&mut **c)
                .await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        },
    )
}
