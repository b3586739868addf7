-- A queue that is only fair (not paused, no limit) is claimed in one call: the function
-- waits for the queue's turn, then claims round robin across the keys in one statement and
-- records where it ended. The turn is held for that statement and the commit, where the
-- claim in steps held it for eight round trips (docs/fairness.md). Workers of an older
-- version claim in steps, under the same turn: both can run side by side.

-- include: current/claim_fair.sql
