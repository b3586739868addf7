//! The bounds oncommit keeps to: how much one call takes, how long figures are kept, how
//! long a write waits for SQLite's lock. Each is checked where it applies, and a value over
//! it is refused with [`Error::InvalidOption`](crate::Error::InvalidOption) rather than cut.

pub use crate::activity::{ACTIVITY_RETENTION, WAIT_BUCKETS_MS};
pub use crate::admin::bulk::MAX_IDS;
pub use crate::admin::jobs::FINISHED_COUNTS_MAX_AGE;
pub use crate::admin::listing::{MAX_PAGE, PAGE_BUDGET};
pub use crate::driver::options::SQLITE_BUSY_TIMEOUT;
pub use crate::enqueue::MAX_QUEUE_NAME_BYTES;
pub use crate::queries::TOP_KEYS;
