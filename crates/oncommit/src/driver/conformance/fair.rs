//! The contract's statements of fair queues, and the claim written over them
//! (`queries::fair`): keys round robin, weights, priorities, jobs without a key last.

use std::time::Duration;

use oncommit_testing::backend_test;

use super::{job, open};
use crate::db::Db;
use crate::driver::contract::{NewJob, Setting};
use crate::queries::{self, Claim, RateLimit};

/// A job of queue "q" whose task names its key, for reading the claim order back.
fn keyed(key: &str, weight: Option<i16>) -> NewJob {
    NewJob { fair_key: Some(key.into()), fair_weight: weight, ..job(key, "q") }
}

/// The tasks (keys) of a claim of up to `limit` jobs of "q", in the order it hands them out.
async fn claim(db: &Db, limit: i64) -> Vec<String> {
    let mut route = queries::Route::Fast;
    match queries::job_claim(db, "q", limit, "w", Duration::from_secs(60), &mut route).await.unwrap() {
        Claim::Claimed(rows) => rows.into_iter().map(|r| r.job.task).collect(),
        Claim::Paused | Claim::Full { .. } => panic!("a fair queue without limits claims"),
    }
}

backend_test!(pooled async fn a_fair_queue_serves_its_keys_round_robin_each_its_weight(t) {
    let db = open(t).await;
    let mut jobs: Vec<NewJob> = (0..6).map(|_| keyed("a", None)).collect();
    jobs.extend([keyed("b", None), keyed("b", None), keyed("c", Some(2)), keyed("c", Some(2))]);
    jobs.push(job("plain", "q"));
    let refs: Vec<&NewJob> = jobs.iter().collect();
    run!(db, job_insert_plain(&refs));
    let controls = run!(db, queue_controls_lock("q")).unwrap();
    assert!(controls.fair, "the first keyed job makes its queue fair");

    // One job a claim: each key in turn, round to the first after the last.
    let mut one_by_one = Vec::new();
    for _ in 0..4 {
        one_by_one.extend(claim(&db, 1).await);
    }
    assert_eq!(one_by_one, ["a", "b", "c", "a"]);
    // A claim of ten goes on after "a": b's last, then c (weight 2: its last one), then a
    // again, and a's further rounds fill the claim.
    assert_eq!(claim(&db, 10).await, ["b", "c", "a", "a", "a"]);
    assert_eq!(claim(&db, 10).await, ["a"]);
    // No keyed job is left: the job without a key.
    assert_eq!(claim(&db, 10).await, ["plain"]);
    assert!(claim(&db, 10).await.is_empty());
});

backend_test!(pooled async fn priorities_come_before_turns_and_weights_set_the_share(t) {
    let db = open(t).await;
    let mut jobs: Vec<NewJob> = (0..9).map(|_| keyed("heavy", Some(3))).collect();
    jobs.extend((0..9).map(|_| keyed("light", None)));
    jobs.push(NewJob { priority: Some(-1), ..keyed("urgent", None) });
    let refs: Vec<&NewJob> = jobs.iter().collect();
    run!(db, job_insert_plain(&refs));
    assert_eq!(claim(&db, 1).await, ["urgent"], "priority first");
    // Two rounds of heavy's 3 and light's 1.
    assert_eq!(claim(&db, 8).await, ["heavy", "heavy", "heavy", "light", "heavy", "heavy", "heavy", "light"]);
});

backend_test!(pooled async fn fair_keys_and_rate_limits_per_key_refuse_each_other(t) {
    let db = open(t).await;
    run!(db, job_insert_plain(&[&keyed("a", None)]));
    let per_key = RateLimit { max_starts: 5, period: Duration::from_secs(1), per_key: true };
    let mut tx = db.begin().await.unwrap();
    let err = on_driver!(tx.own_conn(), queue_set("q", Setting::RateLimit(Some(per_key)))).unwrap_err();
    assert!(err.to_string().contains("fair"), "{err}");
    drop(tx);
    // A queue-wide rate limit is fine.
    run!(db, queue_set("q", Setting::RateLimit(Some(RateLimit { per_key: false, ..per_key }))));

    run!(db, queue_set("limited", Setting::RateLimit(Some(per_key))));
    let mut tx = db.begin().await.unwrap();
    let limited = NewJob { fair_key: Some("a".into()), ..job("t", "limited") };
    let err = on_driver!(tx.own_conn(), job_insert_plain(&[&limited])).unwrap_err();
    assert!(err.to_string().contains("rate limited per concurrency key"), "{err}");
});

backend_test!(pooled async fn fairness_composes_with_pauses_limits_concurrency_keys_and_uniqueness(t) {
    let db = open(t).await;
    let mut jobs: Vec<NewJob> = (0..4).map(|_| keyed("a", None)).collect();
    jobs.extend((0..4).map(|_| keyed("b", None)));
    let refs: Vec<&NewJob> = jobs.iter().collect();
    run!(db, job_insert_plain(&refs));
    // Paused: nothing. A concurrency limit of 3: three, still in turns.
    run!(db, queue_set("q", Setting::Paused(true)));
    let mut route = queries::Route::Fast;
    let paused = queries::job_claim(&db, "q", 10, "w", Duration::from_secs(60), &mut route).await.unwrap();
    assert!(matches!(paused, Claim::Paused));
    assert_eq!(route, queries::Route::Turns { limited: true });
    run!(db, queue_set("q", Setting::Paused(false)));
    run!(db, queue_set("q", Setting::ConcurrencyLimit(Some(3))));
    assert_eq!(claim(&db, 10).await, ["a", "b", "a"]);
    run!(db, queue_set("q", Setting::ConcurrencyLimit(None)));
    // Only fair: claims still take turns, and the worker may prefetch.
    assert_eq!(claim(&db, 2).await, ["b", "a"]);
    let mut route = queries::Route::Fast;
    queries::job_claim(&db, "q", 1, "w", Duration::from_secs(60), &mut route).await.unwrap();
    assert_eq!(route, queries::Route::Turns { limited: false });

    // A job with a concurrency key waits for its slot, then takes its key's turn; a unique
    // job with a fairness key is held once.
    let slot = || NewJob { concurrency_key: Some("one-at-a-time".into()), ..keyed("c", None) };
    let unique = || NewJob { unique_key: Some("once".into()), ..keyed("d", None) };
    let mut tx = db.begin().await.unwrap();
    let inserted = queries::job_insert(tx.own_conn(), &[slot(), slot(), unique(), unique()]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(inserted.ids[2], inserted.ids[3], "the unique job is held once");
    // c's second job is pending behind its first: one c per claim until it finishes.
    let claimed = claim(&db, 10).await;
    assert_eq!(claimed.iter().filter(|k| *k == "c").count(), 1, "{claimed:?}");
    assert_eq!(claimed.iter().filter(|k| *k == "d").count(), 1, "{claimed:?}");
});

backend_test!(pooled async fn a_job_reads_back_with_its_fairness_key(t) {
    let db = open(t).await;
    let inserted = run!(db, job_insert_plain(&[&keyed("tenant:7", Some(2)), &job("t", "q")]));
    let keyed = crate::queries::job_get(&db, inserted.ids[0]).await.unwrap().unwrap();
    assert_eq!(keyed.fair_key.as_deref(), Some("tenant:7"));
    let plain = crate::queries::job_get(&db, inserted.ids[1]).await.unwrap().unwrap();
    assert_eq!(plain.fair_key, None);
});

backend_test!(pooled async fn keys_go_round_in_the_databases_order_whatever_their_case(t) {
    let db = open(t).await;
    // Upper and lower case, digits and punctuation: PostgreSQL's collation and bytes order
    // them differently; each key is still served once a round.
    let names = ["b", "B", "a", "A", "1", "_", "ä"];
    let jobs: Vec<NewJob> = names.iter().flat_map(|k| [keyed(k, None), keyed(k, None)]).collect();
    let refs: Vec<&NewJob> = jobs.iter().collect();
    run!(db, job_insert_plain(&refs));
    let mut served = Vec::new();
    for _ in 0..names.len() {
        served.extend(claim(&db, 1).await);
    }
    let mut once: Vec<String> = served.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), names.len(), "each key once in the first round: {served:?}");
    // A claim that wraps part way through a round serves each key once more.
    let second = claim(&db, names.len() as i64).await;
    let mut again = second.clone();
    again.sort();
    again.dedup();
    assert_eq!((second.len(), again.len()), (names.len(), names.len()), "{second:?}");
});

backend_test!(pooled async fn the_claim_in_one_call_hands_out_what_the_steps_do(t) {
    let db = open(t).await;
    // The same jobs in two queues: keys of weights 1 to 3, a key of a better priority, jobs
    // without a key. Each job is told apart by its args.
    let shape: Vec<(&str, Option<i16>, Option<i16>, usize)> =
        vec![("a", None, None, 9), ("b", None, None, 2), ("c", Some(2), None, 5), ("e", Some(3), None, 8), ("u", None, Some(-1), 3), ("", None, None, 2)];
    for queue in ["steps", "once"] {
        let jobs: Vec<NewJob> = shape
            .iter()
            .flat_map(|&(key, weight, priority, n)| {
                (0..n).map(move |i| NewJob {
                    args: format!(r#"{{"key":"{key}","i":{i}}}"#),
                    priority,
                    fair_key: (!key.is_empty()).then(|| key.to_owned()),
                    fair_weight: weight,
                    ..job("t", queue)
                })
            })
            .collect();
        let refs: Vec<&NewJob> = jobs.iter().collect();
        run!(db, job_insert_plain(&refs));
    }
    let mut route = queries::Route::Turns { limited: false };
    for limit in [1, 1, 2, 3, 5, 1, 7, 4, 10, 10, 10] {
        let by_steps = claimed_in_steps(&db, "steps", limit).await;
        let at_once = claimed_args(&db, "once", limit, &mut route).await;
        assert_eq!(at_once, by_steps, "a claim of {limit}");
        assert_eq!(route, queries::Route::Turns { limited: false });
    }
    assert!(claimed_args(&db, "once", 10, &mut route).await.is_empty());

    // The statement itself: PostgreSQL has it, SQLite claims in steps.
    let mut tx = db.begin().await.unwrap();
    let more = NewJob { fair_key: Some("z".into()), ..job("t", "once") };
    on_driver!(tx.own_conn(), job_insert_plain(&[&more])).unwrap();
    tx.commit().await.unwrap();
    let claim = crate::driver::contract::JobClaim { queue: "once", limit: 5, worker: "w", lease: Duration::from_secs(60) };
    let mut tx = db.begin().await.unwrap();
    let rows = on_driver!(tx.own_conn(), job_claim_fair(&claim)).unwrap();
    tx.commit().await.unwrap();
    match db.backend() {
        crate::Backend::Postgres => assert_eq!(rows.map(|r| r.len()), Some(1)),
        crate::Backend::Sqlite => assert!(rows.is_none()),
    }
});

/// The args of the jobs a claim of up to `limit` jobs of `queue` hands out, in its order.
async fn claimed_args(db: &Db, queue: &str, limit: i64, route: &mut queries::Route) -> Vec<String> {
    match queries::job_claim(db, queue, limit, "w", Duration::from_secs(60), route).await.unwrap() {
        Claim::Claimed(rows) => rows.into_iter().map(|r| r.job.args.to_string()).collect(),
        Claim::Paused | Claim::Full { .. } => panic!("a fair queue without limits claims"),
    }
}

/// The same through `queries::fair`'s steps only, under the queue's turn.
async fn claimed_in_steps(db: &Db, queue: &str, limit: i64) -> Vec<String> {
    let mut tx = db.begin().await.unwrap();
    let controls = on_driver!(tx.own_conn(), queue_controls_lock(queue)).unwrap().unwrap();
    let claim = crate::driver::contract::JobClaim { queue, limit, worker: "w", lease: Duration::from_secs(60) };
    let cursor = controls.fair_cursor.as_deref();
    let rows = queries::fair::claim(tx.own_conn(), &claim, controls.read_at_ms, cursor).await.unwrap();
    tx.commit().await.unwrap();
    rows.into_iter().map(|r| r.job.args.to_string()).collect()
}
