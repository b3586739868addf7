//! The contract's `Dependencies`: dependants, workflows, concurrency keys, the sweep.

use oncommit_testing::backend_test;

use super::{change, claim, job, open};
use crate::driver::contract::{Link, NewJob};
use crate::job::JobState;

backend_test!(pooled async fn dependants_link_to_their_parents(t) {
    let db = open(t).await;
    let parent = run!(db, job_insert_plain(&[&job("t", "q")])).ids[0].0;
    assert_eq!(run!(db, job_parents_lock(&[parent, i64::MAX])), [(parent, "available".to_owned())], "the existing");
    let child = NewJob { depends_on: vec![parent], workflow_id: Some("wf".into()), ..job("t", "q") };
    let (id, queue, state) = run!(db, job_insert_dependent(&child, "pending", None));
    assert_eq!((queue.as_str(), state.as_str()), ("q", "pending"));
    let ids = |rows: Vec<crate::job_row::JobRow>| rows.into_iter().map(|r| r.job.id.0).collect::<Vec<_>>();
    assert_eq!(ids(run!(db, job_linked(id, Link::Parents))), [parent]);
    assert_eq!(ids(run!(db, job_linked(parent, Link::Dependants))), [id]);
    assert_eq!(ids(run!(db, workflow_jobs("wf"))), [id]);
    assert_eq!(run!(db, workflow_edges("wf")), [(id, parent)]);
    assert!(run!(db, workflow_jobs("none")).is_empty());

    let ready = NewJob { workflow_id: Some("wf".into()), ..job("t", "q") };
    assert_eq!(run!(db, job_insert_dependent(&ready, "ready", None)).2, "available");
    let why = r#"[{"attempt":0,"at":0,"error":"parent job 1 failed"}]"#;
    let (gone, _, state) = run!(db, job_insert_dependent(&ready, "cancelled", Some(why)));
    assert_eq!(state, "cancelled");
    let gone = run!(db, job_get(gone)).unwrap().job;
    assert!(gone.finished_at.is_some());
    assert_eq!(gone.errors.len(), 1);
});

backend_test!(pooled async fn a_concurrency_key_counts_holders_and_waiters(t) {
    let db = open(t).await;
    assert_eq!(run!(db, concurrency_key_lock_count("k")), (0, 0));
    let keyed = NewJob { concurrency_key: Some("k".into()), key_limit: 1, ..job("t", "q") };
    run!(db, job_insert_dependent(&keyed, "ready", None));
    run!(db, job_insert_dependent(&keyed, "pending", None));
    assert_eq!(run!(db, concurrency_key_lock_count("k")), (1, 1), "one holds the slot, one waits");
    assert_eq!(run!(db, concurrency_key_lock_count("other")), (0, 0));
});

backend_test!(pooled async fn the_sweep_settles_pending_jobs_whose_parents_finished(t) {
    let db = open(t).await;
    let ids = run!(db, job_insert_plain(&[&job("t", "q"), &job("t", "q")])).ids;
    let done = run!(db, job_claim(&claim("q", 1, "w1")))[0].job.id;
    run!(db, job_set_state_if_running_many(&[change(done, 1, JobState::Completed)]));
    let other = if ids[0] == done { ids[1] } else { ids[0] };
    run!(db, job_cancel(other.0));
    // Inserted pending though their parents have finished: what a cut-short cascade leaves.
    let after_done = NewJob { depends_on: vec![done.0], ..job("t", "q") };
    let after_cancelled = NewJob { depends_on: vec![other.0], ..job("t", "q") };
    let a = run!(db, job_insert_dependent(&after_done, "pending", None)).0;
    let b = run!(db, job_insert_dependent(&after_cancelled, "pending", None)).0;
    assert_eq!(run!(db, job_pending_after(0, 10)), [a, b]);
    assert_eq!(run!(db, job_pending_after(a, 10)), [b]);
    assert_eq!(run!(db, job_settle_pending(&[a, b])), 2);
    assert_eq!(run!(db, job_get(a)).unwrap().job.state, JobState::Available);
    let cancelled = run!(db, job_get(b)).unwrap().job;
    assert_eq!(cancelled.state, JobState::Cancelled);
    let why = format!("parent job {} cancelled", other.0);
    assert!(cancelled.errors.iter().any(|e| e.error == why), "{:?}", cancelled.errors);
    assert!(run!(db, job_pending_after(0, 10)).is_empty());
    assert_eq!(run!(db, job_settle_pending(&[a, b])), 0, "settled once");
});
