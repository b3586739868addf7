//! `oncommit`'s exit codes: a public interface for scripts, listed in the README.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | failed (any other error) |
//! | 2 | usage: a bad command line, option value, URL or `--args`; a transaction pooler the URL does not announce |
//! | 3 | not found: no such job |
//! | 4 | the database is unreachable (no server of the URL's list suits), or did not answer in time |
//! | 5 | refused: the action is not possible in the job's state, the credentials were refused, or the schema is missing or does not suit this binary (the message says what to run) |

use std::fmt;

/// Failures the CLI names itself, beside those of `oncommit::Error`.
#[derive(Debug)]
pub(crate) enum Exit {
    /// A bad value on the command line.
    Usage(String),
    /// The job (or other thing) named does not exist.
    NotFound(String),
    /// The action is not possible now.
    Refused(String),
    /// The database did not answer.
    Unreachable(String),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Usage(m) | Exit::NotFound(m) | Exit::Refused(m) | Exit::Unreachable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Exit {}

/// The exit code for `err`: the first cause that says.
pub(crate) fn code(err: &anyhow::Error) -> u8 {
    use oncommit::Error as E;
    for cause in err.chain() {
        if let Some(exit) = cause.downcast_ref::<Exit>() {
            return match exit {
                Exit::Usage(_) => 2,
                Exit::NotFound(_) => 3,
                Exit::Unreachable(_) => 4,
                Exit::Refused(_) => 5,
            };
        }
        if let Some(e) = cause.downcast_ref::<E>() {
            return match e {
                E::InvalidUrl { .. }
                | E::InvalidOption { .. }
                | E::InvalidTransactionOptions(_)
                | E::InvalidArgs { .. }
                | E::InvalidSchedule { .. }
                | E::TransactionPooler { .. } => 2,
                E::Unreachable { .. }
                | E::NoServer { .. }
                | E::DatabaseUnavailable { .. }
                | E::ConnectionLost(_)
                | E::PoolTimedOut
                | E::TimedOut { .. } => 4,
                E::AuthenticationFailed { .. } | E::Tls { .. } | E::SchemaVersion { .. } => 5,
                _ => 1,
            };
        }
    }
    1
}
