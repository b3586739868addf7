//! The contract's `SelectedJobs`: counting, walking and acting on a filter's jobs.

use oncommit_testing::backend_test;

use super::{claim, job, open};
use crate::driver::contract::Action;
use crate::driver::selection::Filter;
use crate::job::JobState;

backend_test!(pooled async fn bulk_actions_touch_only_what_the_filter_still_selects(t) {
    let db = open(t).await;
    let ids: Vec<i64> =
        run!(db, job_insert_plain(&[&job("t", "q"), &job("t", "q"), &job("t", "q"), &job("t", "other")]))
            .ids
            .iter()
            .map(|id| id.0)
            .collect();
    let running = run!(db, job_claim(&claim("q", 1, "w1")))[0].job.id.0;
    let q = Filter { states: JobState::ALL.iter().map(|s| s.as_str()).collect(), queue: Some("q".into()), ..Filter::default() };
    assert_eq!(run!(db, job_count_selected(&q)), 3);
    assert_eq!(run!(db, job_select_ids(&q, 0, 2)), ids[..2]);
    assert_eq!(run!(db, job_select_ids(&q, ids[1], 10)), [ids[2]]);

    // A cancel cancels the waiting ones and asks the running one's worker to stop it.
    let mut rows = run!(db, job_act_on(&q, Action::Cancel, &ids));
    rows.sort();
    let mut expected: Vec<(String, String)> = ids[..3]
        .iter()
        .map(|&id| (id.to_string(), if id == running { "running" } else { "cancelled" }.to_owned()))
        .collect();
    expected.sort();
    assert_eq!(rows, expected, "ids of the cancelled, the other queue's job untouched");
    assert_eq!(run!(db, job_get(ids[3])).unwrap().job.state, JobState::Available);
    run!(db, jobs_notify(&["q".to_owned()], &[running.to_string()]));

    // A retry makes the cancelled ones available again; not the running one.
    let retried = run!(db, job_act_on(&q, Action::Retry, &ids));
    assert_eq!(retried.len(), 2);
    assert!(retried.iter().all(|(queue, state)| queue == "q" && state == "available"), "{retried:?}");
    // The filter is checked again on each row: ids it no longer selects are left alone.
    let other = Filter { queue: Some("other".into()), ..q.clone() };
    assert!(run!(db, job_act_on(&other, Action::Delete, &ids[..3])).is_empty());
    // A delete leaves the running one.
    assert_eq!(run!(db, job_act_on(&q, Action::Delete, &ids)).len(), 2);
    assert_eq!(run!(db, job_count_selected(&q)), 1);
});
