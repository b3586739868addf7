//! The worker's span continues the trace of the code that enqueued the job, on both
//! backends: the context travels only through the job row (the worker runs in a task with
//! no span of its own, as in another process).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::OnceLock;

use oncommit::{JobId, Worker};
use oncommit_otel_example::{SendWelcome, install};
use oncommit_testing::backend_test;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tracing::Instrument;

/// One subscriber for the whole test binary (a global default can be set once); each test
/// finds its own spans by trace id.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        // The provider lives as long as the process: spans export as each ends.
        std::mem::forget(install(exporter.clone()));
        exporter
    })
}

fn attribute<'s>(span: &'s SpanData, key: &str) -> Option<&'s Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

fn spans_of(trace: TraceId) -> Vec<SpanData> {
    exporter().get_finished_spans().unwrap().into_iter().filter(|s| s.span_context.trace_id() == trace).collect()
}

backend_test!(async fn the_workers_span_continues_the_enqueuers_trace(t) {
    let exporter = exporter();
    t.db.migrate().await.unwrap();
    let request = tracing::info_span!("POST /signup");
    let job: JobId = oncommit::atomic!(t.db, |tx| tx.enqueue(SendWelcome { user: 42 }).await)
        .instrument(request.clone())
        .await
        .unwrap();
    drop(request);
    let stored = t.db.jobs().get(job).await.unwrap().unwrap().trace_context.expect("the job stored a trace context");
    assert!(stored.contains("traceparent"), "{stored}");

    // The worker: a task with no enclosing span.
    let worker = Worker::new(t.db.clone()).register::<SendWelcome>();
    let drained = tokio::spawn(worker.drain(10)).await.unwrap().unwrap();
    assert_eq!(drained.completed, 1);

    let request = exporter.get_finished_spans().unwrap().into_iter()
        .find(|s| s.name == "POST /signup" && stored.contains(&s.span_context.trace_id().to_string()))
        .expect("the request's span was exported");
    let trace = request.span_context.trace_id();
    let spans = spans_of(trace);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    let transaction = spans.iter().find(|s| s.name == "transaction").unwrap_or_else(|| panic!("{names:?}"));
    let process = spans.iter().find(|s| s.name == "process default").unwrap_or_else(|| panic!("{names:?}"));
    assert_eq!(transaction.parent_span_id, request.span_context.span_id());
    // The job ran in the enqueuing transaction's trace, as its child.
    assert_eq!(process.parent_span_id, transaction.span_context.span_id());
    assert_ne!(process.parent_span_id, SpanId::INVALID);
    assert_eq!(attribute(process, "messaging.system"), Some(&Value::from("oncommit")));
    assert_eq!(attribute(process, "messaging.destination.name"), Some(&Value::from("default")));
    assert_eq!(attribute(process, "messaging.message.id"), Some(&Value::from(job.0)));
    assert_eq!(attribute(process, "oncommit.job.task"), Some(&Value::from("send_welcome")));
    assert_eq!(attribute(process, "oncommit.job.outcome"), Some(&Value::from("completed")));
    assert_eq!(attribute(transaction, "oncommit.transaction.outcome"), Some(&Value::from("committed")));
    // The task's own event is inside the job's span.
    assert!(process.events.iter().any(|e| e.name == "welcome email sent"), "{:?}", process.events);
});

backend_test!(async fn untraced_code_stores_no_context_and_a_bad_one_fails_nothing(t) {
    exporter();
    t.db.migrate().await.unwrap();
    // Outside any span: nothing to store.
    let plain = t.db.enqueue(SendWelcome { user: 1 }).await.unwrap();
    assert_eq!(t.db.jobs().get(plain).await.unwrap().unwrap().trace_context, None);
    // A row written by other code with a context that is not one: the job still runs.
    let mut conn = t.db.acquire().await.unwrap();
    let table = match t.db.backend() { oncommit::Backend::Postgres => "oncommit.jobs", oncommit::Backend::Sqlite => "oncommit_jobs" };
    oncommit::with_conn!(conn.conn(), c => {
        let sql = format!("UPDATE {table} SET trace_context = 'not json' WHERE id = {}", plain.0);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(c).await.unwrap();
    });
    drop(conn);
    let drained = Worker::new(t.db.clone()).register::<SendWelcome>().drain(10).await.unwrap();
    assert_eq!((drained.completed, drained.failed), (1, 0));
});
