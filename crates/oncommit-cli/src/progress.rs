//! Progress of a long command on a terminal: one line on stderr, rewritten in place with
//! the time taken so far, and cleared at the end. Nothing for a command that ends within
//! the first tick, and nothing at all when stderr is not a terminal, so scripts and
//! `--json` readers see only the result.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// How often the line is rewritten.
const TICK: Duration = Duration::from_millis(100);

/// Runs `work`, showing `what` and the seconds it has taken while it runs.
pub(crate) async fn while_running<T>(what: &str, work: impl Future<Output = T>) -> T {
    if !std::io::stderr().is_terminal() {
        return work.await;
    }
    let started = Instant::now();
    let mut work = std::pin::pin!(work);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    let mut shown = false;
    let done = loop {
        tokio::select! {
            done = &mut work => break done,
            _ = ticks.tick() => {
                eprint!("\r{what}… {:.1} s", started.elapsed().as_secs_f64());
                std::io::stderr().flush().ok();
                shown = true;
            }
        }
    };
    if shown {
        eprint!("\r{:width$}\r", "", width = what.chars().count() + 16);
        std::io::stderr().flush().ok();
    }
    done
}
