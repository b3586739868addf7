//! The seeds' scenarios assert what `oncommit demo` shows, on both backends.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use oncommit::{Backend, Isolation};
use oncommit_demo::{deadlock, isolation, select_for_update};
use oncommit_testing::backend_test;

backend_test!(async fn select_for_update_makes_the_second_locker_wait(t) {
    let r = select_for_update::run(&t.db, Duration::from_millis(50)).await.unwrap();
    assert!(r.blocked, "{r:?}");
    assert_eq!(r.hold_ms, 50);
    // B's request waited for (most of) A's hold.
    assert!(r.waited_ms >= 40, "{r:?}");
    // Even with no hold at all, A keeps its lock until B is seen waiting.
    let r = select_for_update::run(&t.db, Duration::ZERO).await.unwrap();
    assert!(r.blocked, "{r:?}");
});

backend_test!(async fn opposite_lock_order_deadlocks_and_retry_or_ordering_cure_it(t) {
    let r = deadlock::run(&t.db).await.unwrap();
    match t.backend() {
        Backend::Postgres => {
            assert_eq!(r.deadlock_errors, 1, "{r:?}");
            assert_eq!(r.victim_error.as_deref(), Some("deadlock detected"));
            assert!(r.victim_detail.as_deref().unwrap_or_default().contains("blocked by process"), "{r:?}");
            let mut attempts = r.with_retry_attempts;
            attempts.sort();
            assert_eq!(attempts, [1, 2], "the victim ran twice, the other once");
        }
        Backend::Sqlite => {
            assert_eq!(r.deadlock_errors, 0, "{r:?}");
            assert_eq!(r.with_retry_attempts, [1, 1]);
        }
    }
    assert!(r.with_retry_committed, "{r:?}");
    assert_eq!(r.ordered_locking_deadlocks, 0, "{r:?}");
});

backend_test!(async fn isolation_levels_decide_which_anomalies_happen(t) {
    let r = isolation::run(&t.db).await.unwrap();
    let outcome = |list: &[isolation::Outcome], level| {
        let o = list.iter().find(|o| o.isolation == level).expect("every level ran");
        (o.outcome, o.blocked)
    };
    use Isolation::*;
    match t.backend() {
        Backend::Postgres => {
            assert_eq!(outcome(&r.lost_update, ReadCommitted), ("anomaly", true));
            assert_eq!(outcome(&r.lost_update, RepeatableRead), ("serialization_failure", true));
            assert_eq!(outcome(&r.lost_update, Serializable), ("serialization_failure", true));
            assert_eq!(outcome(&r.write_skew, ReadCommitted), ("anomaly", false));
            assert_eq!(outcome(&r.write_skew, RepeatableRead), ("anomaly", false));
            assert_eq!(outcome(&r.write_skew, Serializable), ("serialization_failure", false));
        }
        Backend::Sqlite => {
            for level in Isolation::ALL {
                assert_eq!(outcome(&r.lost_update, level), ("correct", true));
                assert_eq!(outcome(&r.write_skew, level), ("correct", true));
            }
        }
    }
});
