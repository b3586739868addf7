//! Per-queue wake-ups: a NOTIFY names its queue, and the maintenance tick names the queues
//! with work, so only that queue's claim loops run a claim. Each is a counter, not an
//! event, so a wake that comes while a loop is claiming is not lost.

use std::collections::HashMap;

use tokio::sync::watch;

pub(crate) struct Wakers {
    queues: HashMap<String, watch::Sender<u64>>,
}

impl Wakers {
    pub(crate) fn new(queues: &[String]) -> Wakers {
        Wakers { queues: queues.iter().map(|q| (q.clone(), watch::channel(0).0)).collect() }
    }

    /// Wakes `queue`'s claim loops, if this worker serves it.
    pub(crate) fn wake(&self, queue: &str) {
        if let Some(waker) = self.queues.get(queue) {
            waker.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every queue (after a lost LISTEN connection, say).
    #[cfg(feature = "postgres")]
    pub(crate) fn wake_all(&self) {
        for waker in self.queues.values() {
            waker.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// What `queue`'s claim loops wait on; `None` for a queue this worker does not serve.
    pub(crate) fn receiver(&self, queue: &str) -> Option<watch::Receiver<u64>> {
        self.queues.get(queue).map(watch::Sender::subscribe)
    }
}
