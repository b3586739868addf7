//! Fair queuing across tenants with real `oncommit worker` processes, both backends: one
//! tenant's backlog of thousands does not hold up ten others' few, and the tenants' jobs
//! each run in enqueue order. Checked by order of start, not by time.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{EnqueueOptions, Job, JobState};
use oncommit_testing::{backend_test, eventually};
use serde_json::json;
use support::{oncommit, worker_process};

const BIG: usize = 3000;
const SMALL: usize = 30;
const OTHERS: [&str; 10] = ["B", "C", "D", "E", "F", "G", "H", "I", "J", "K"];

/// Every job of queue "fair", oldest first.
async fn all_jobs(db: &oncommit::Db) -> Vec<Job> {
    let fair = JobSelection::default().queue("fair");
    let first = PageRequest::oldest(oncommit::limits::MAX_PAGE);
    let mut page = db.jobs().list(&fair, &first).await.unwrap();
    let mut jobs = std::mem::take(&mut page.jobs);
    while let Some(cursor) = page.next_cursor {
        page = db.jobs().list(&fair, &first.after(cursor)).await.unwrap();
        jobs.append(&mut page.jobs);
    }
    jobs
}

backend_test!(async fn one_tenants_backlog_does_not_hold_up_the_others(t) {
    t.db.migrate().await.unwrap();
    let mut tx = t.db.begin().await.unwrap();
    for n in 0..BIG {
        let opts = EnqueueOptions::new().queue("fair").fair_key("A");
        tx.enqueue_raw("noop", &json!({ "tenant": "A", "n": n }), opts).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut tx = t.db.begin().await.unwrap();
    for tenant in &OTHERS[..9] {
        for n in 0..SMALL {
            let opts = EnqueueOptions::new().queue("fair").fair_key(*tenant);
            tx.enqueue_raw("noop", &json!({ "tenant": tenant, "n": n }), opts).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    // The last tenant through the CLI, as a script would.
    for n in 0..SMALL {
        let args = json!({ "tenant": "K", "n": n }).to_string();
        let out = oncommit(&t.url, &["enqueue", "noop", "--queue", "fair", "--fair-key", "K", "--args", &args]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    // The queue says it is fair, and who waits most.
    let listed = oncommit(&t.url, &["queues", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let fair = listed["queues"].as_array().unwrap().iter().find(|q| q["name"] == "fair").unwrap();
    assert_eq!(fair["fair"], true, "{fair}");
    assert_eq!(fair["top_keys"][0], json!({ "key": "A", "available": BIG }), "{fair}");
    assert_eq!(fair["top_keys"].as_array().unwrap().len(), 5, "{fair}");

    let _workers: Vec<_> = (0..2).map(|_| worker_process(&t.url, "fair", 4)).collect();
    let total = BIG + SMALL * OTHERS.len();
    let done = JobSelection::new([JobState::Completed]).queue("fair");
    eventually("every job of the fair queue to complete", || async {
        (t.db.jobs().count(&done).await.unwrap() as usize == total).then_some(())
    })
    .await;

    let mut jobs = all_jobs(&t.db).await;
    assert_eq!(jobs.len(), total);
    assert!(jobs.iter().all(|j| j.attempt == 1), "each ran once");
    // In the order they started (a claim's jobs share a start: then by id, A's first).
    jobs.sort_by_key(|j| (j.attempted_at, j.id));
    let tenant = |j: &Job| j.args["tenant"].as_str().unwrap().to_owned();
    let last_small = jobs.iter().rposition(|j| tenant(j) != "A").unwrap();
    let a_before = jobs[..last_small].iter().filter(|j| tenant(j) == "A").count();
    // Round robin gives A one job per round, 30 rounds, plus what claims and prefetch hold
    // at once; first come first served would have run all 3,000 of A's first.
    assert!(a_before < 100, "{a_before} of A's jobs started before the others' last");
    // Within a tenant, enqueue order.
    for name in std::iter::once("A").chain(OTHERS) {
        let ns: Vec<i64> = jobs.iter().filter(|j| tenant(j) == name).map(|j| j.args["n"].as_i64().unwrap()).collect();
        assert!(ns.windows(2).all(|w| w[0] < w[1]), "{name} out of order: {ns:?}");
    }
});
