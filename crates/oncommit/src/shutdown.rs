//! [`Shutdown`]: how a worker (or a server) is told to stop, as a value that can be passed
//! around and cloned.

use tokio::sync::watch;

/// Listens for a shutdown. Clones listen to the same trigger.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (trigger, mut shutdown) = oncommit::Shutdown::new();
/// assert!(!shutdown.is_triggered());
/// trigger.trigger();
/// shutdown.wait().await;
/// assert!(shutdown.is_triggered());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Starts a shutdown; dropping it starts one too, so a lost trigger cannot leave a worker
/// running forever.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A trigger and its listener.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// A listener that fires on Ctrl-C or SIGTERM. For a program's `main`: a second
    /// Ctrl-C or SIGTERM ends the process at once (exit status 130), as an operator who
    /// repeats the signal expects, whatever the graceful shutdown is waiting for.
    pub fn on_signal() -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            next_signal().await;
            tracing::info!("shutdown signal received (send another to exit at once)");
            trigger.trigger();
            next_signal().await;
            tracing::warn!("second shutdown signal: exiting at once");
            std::process::exit(130);
        });
        shutdown
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until the shutdown starts (at once if it has).
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped, which also means "stop".
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// Waits for Ctrl-C or SIGTERM.
async fn next_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; Ctrl-C only");
                tokio::signal::ctrl_c().await.ok();
            }
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.ok();
}

impl ShutdownTrigger {
    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.trigger();
    }
}
