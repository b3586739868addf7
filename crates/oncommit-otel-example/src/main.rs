//! One trace from a web request through the job it enqueued, printed by OpenTelemetry's
//! stdout exporter: `cargo run -p oncommit-otel-example`.
//!
//! The request's span encloses a transaction that enqueues `SendWelcome`; oncommit stores
//! the span's trace context in the job row. The worker runs the job later, in a task with
//! no span of its own, and its `process default` span continues that trace: every span
//! printed has the same trace id.

use oncommit::{Db, Worker};
use oncommit_otel_example::{SendWelcome, install};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = install(opentelemetry_stdout::SpanExporter::default());
    let dir = tempfile::tempdir()?;
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("otel.db").display())).await?;
    db.migrate().await?;

    // The web request: its span is the trace's root.
    let request = tracing::info_span!("POST /signup", otel.kind = "server");
    oncommit::atomic!(db, |tx| tx.enqueue(SendWelcome { user: 42 }).await).instrument(request).await?;

    // The worker, as it would run in another process: no enclosing span.
    let worker = Worker::new(db.clone()).register::<SendWelcome>();
    let drained = tokio::spawn(worker.drain(10)).await??;
    assert_eq!(drained.completed, 1);

    provider.shutdown()?;
    Ok(())
}
