//! Seed 000 done right: a "view" inserts a row and enqueues the task that works on it in
//! the same transaction; a worker runs the task, which always finds its row.
//!
//! Run: `cargo run -p oncommit --example transactional_enqueue` (SQLite in a temp dir).
#![allow(clippy::print_stdout)] // an example shows what happens by printing it

use std::time::Duration;

use oncommit::{Db, Shutdown, Task, TaskContext, TaskError, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct DoStuff {
    pk: i64,
}

impl Task for DoStuff {
    const NAME: &'static str = "do_stuff";

    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM data WHERE id = $1")
            .bind(self.pk)
            .fetch_optional(cx.db().sqlite_pool().expect("this example uses SQLite"))
            .await?;
        let name = name.ok_or_else(|| TaskError::fail(format!("no row {}", self.pk)))?;
        println!("task: row {} is there: {name:?}", self.pk);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("example.db").display())).await?;
    db.migrate().await?;
    sqlx::raw_sql("CREATE TABLE data (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(db.sqlite_pool().expect("SQLite"))
        .await?;

    let (stop, shutdown) = Shutdown::new();
    let worker = tokio::spawn(Worker::new(db.clone()).register::<DoStuff>().run(shutdown));

    for _ in 0..3 {
        let mut tx = db.begin().await?;
        let pk: i64 =
            sqlx::query_scalar("INSERT INTO data (name) VALUES ('Dummy') RETURNING id").fetch_one(tx.sqlite()?).await?;
        let job = tx.enqueue(DoStuff { pk }).await?; // commits with the row, or vanishes with it
        tokio::time::sleep(Duration::from_millis(20)).await; // the view keeps working...
        tx.commit().await?; // ...and only now can the worker see the job
        println!("view: committed row {pk} with job {job}");
    }
    use oncommit::JobState::{Available, Pending, Retryable, Running, Scheduled};
    let unfinished = oncommit::admin::JobSelection::new([Available, Pending, Retryable, Running, Scheduled]);
    while db.jobs().count(&unfinished).await? > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.trigger();
    worker.await??;
    Ok(())
}
