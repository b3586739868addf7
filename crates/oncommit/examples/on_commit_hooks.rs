//! Django's `on_commit` rules: hooks run after the outermost commit, in order; a rolled-back
//! savepoint takes its hooks with it; a rolled-back transaction runs none.
//!
//! Run: `cargo run -p oncommit --example on_commit_hooks` (SQLite in a temp dir).
#![allow(clippy::print_stdout)] // an example shows what happens by printing it

use oncommit::{Db, Error};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("example.db").display())).await?;

    db.atomic(async |tx| {
        tx.on_commit(async { println!("1: outer hook, after the commit") });
        let inner = tx
            .atomic(async |sp| {
                sp.on_commit(async { println!("never: this savepoint rolls back") });
                Err::<(), _>(Error::app("the inner step failed"))
            })
            .await;
        println!("0: inner step: {}", inner.expect_err("it fails"));
        tx.on_commit(async { println!("2: async hook, in registration order") });
        Ok(())
    })
    .await?;

    let rolled_back = db
        .atomic(async |tx| {
            tx.on_commit(async { println!("never: the transaction rolls back") });
            Err::<(), _>(Error::app("the view failed"))
        })
        .await;
    println!("3: a rolled-back transaction ran no hook: {}", rolled_back.expect_err("it fails"));
    Ok(())
}
