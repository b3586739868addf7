//! What the code under test logged.

use std::sync::{Arc, Mutex};

/// Captures the `tracing` events (all levels, as plain text lines) that the calling thread
/// emits while it lives: for a test that a failure is logged, not only handled. A
/// `#[tokio::test]` body runs on the test's own thread, and so does what it awaits
/// directly; tasks it spawns run elsewhere and are not captured.
///
/// ```
/// let logs = oncommit_testing::LogCapture::start();
/// tracing::warn!(queue = "mail", "something to see");
/// assert!(logs.text().contains("something to see"));
/// ```
pub struct LogCapture {
    lines: Arc<Mutex<Vec<u8>>>,
    _default: tracing::subscriber::DefaultGuard,
}

impl LogCapture {
    /// Starts capturing on this thread.
    pub fn start() -> LogCapture {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        LogCapture { lines, _default: tracing::subscriber::set_default(subscriber) }
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lines.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// Where the formatter writes: the capture's buffer.
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
