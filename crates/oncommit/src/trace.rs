//! Spans for transactions and job runs, named after OpenTelemetry's semantic conventions,
//! and the trace context that links a job's run to the code that enqueued it.
//!
//! Job runs are `INFO` spans named `oncommit.job` (OpenTelemetry name `process {queue}`, kind
//! consumer) with the messaging fields `messaging.system`, `messaging.operation.type`,
//! `messaging.operation.name`, `messaging.destination.name` (the queue) and
//! `messaging.message.id` (the job id), plus `oncommit.job.task`, `oncommit.job.attempt`,
//! `oncommit.job.outcome` and `oncommit.job.duration_ms`; a failed attempt sets `error.type`
//! and `otel.status_code`. Transactions are `DEBUG` spans named `oncommit.transaction` (they
//! are many) with `db.system.name`, `oncommit.transaction.isolation`,
//! `oncommit.transaction.attempt` and `oncommit.transaction.outcome`.
//!
//! With the `opentelemetry` feature, enqueueing stores the current span's context in the
//! job row (W3C `traceparent` and `tracestate`, through the global propagator when one is
//! set), and the worker's span continues it: one trace from the HTTP request to the job.

use tracing::Span;

use crate::job::Job;

/// The span of one attempt of `job`, a root in this process, continuing the enqueuer's
/// trace when the job carries one.
pub(crate) fn job_span(job: &Job) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "oncommit.job",
        otel.name = format!("process {}", job.queue),
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        messaging.system = "oncommit",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = job.queue.as_str(),
        messaging.message.id = job.id.0,
        oncommit.job.task = job.task.as_str(),
        oncommit.job.attempt = job.attempt,
        oncommit.job.outcome = tracing::field::Empty,
        oncommit.job.duration_ms = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if let Some(context) = &job.trace_context {
        continue_trace(&span, context);
    }
    span
}

/// Records how an attempt ended on its span, and logs it: at `DEBUG` when it did what it
/// should, `INFO` when it will be retried, `WARN` when it failed for good.
pub(crate) fn job_ended(span: &Span, outcome: &'static str, took: std::time::Duration, error: Option<&str>) {
    let millis = took.as_secs_f64() * 1000.0;
    span.record("oncommit.job.outcome", outcome);
    span.record("oncommit.job.duration_ms", millis);
    if outcome == "failed" || outcome == "retryable" {
        span.record("error.type", outcome);
        span.record("otel.status_code", "ERROR");
    }
    let error = error.unwrap_or("");
    match outcome {
        "failed" => tracing::warn!(parent: span, outcome, duration_ms = millis, error, "job attempt failed for good"),
        "retryable" => {
            tracing::info!(parent: span, outcome, duration_ms = millis, error, "job attempt failed; will retry")
        }
        _ => tracing::debug!(parent: span, outcome, duration_ms = millis, "job attempt ended"),
    }
}

/// The span of one attempt of an outermost transaction.
pub(crate) fn transaction_span(backend: crate::Backend, isolation: Option<crate::Isolation>, attempt: u32) -> Span {
    tracing::debug_span!(
        "oncommit.transaction",
        otel.name = "transaction",
        otel.status_code = tracing::field::Empty,
        db.system.name = on_backend!(backend, const SYSTEM_NAME),
        oncommit.transaction.isolation = isolation.map_or_else(|| "default".to_owned(), |i| i.to_string()),
        oncommit.transaction.attempt = attempt,
        oncommit.transaction.outcome = tracing::field::Empty,
    )
}

/// Records how a transaction ended on its span.
pub(crate) fn transaction_ended(span: &Span, outcome: &'static str) {
    span.record("oncommit.transaction.outcome", outcome);
    if outcome == "failed" {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use std::collections::HashMap;

    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
    use opentelemetry::{Context, global};
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    /// The current span's context as a JSON object of propagation fields, or `None` when
    /// no trace is being recorded.
    pub(crate) fn current_context() -> Option<String> {
        let cx = Span::current().context();
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let mut carrier: HashMap<String, String> = HashMap::new();
        global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
        // No propagator set (the global default injects nothing): W3C's, which every
        // OpenTelemetry SDK reads.
        carrier
            .entry("traceparent".to_owned())
            .or_insert_with(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()));
        let state = sc.trace_state().header();
        if !state.is_empty() {
            carrier.entry("tracestate".to_owned()).or_insert(state);
        }
        serde_json::to_string(&carrier).ok()
    }

    /// Makes `span` a child of the stored context; a malformed one is ignored (it is only
    /// observability, never a reason to fail the job).
    pub(crate) fn continue_trace(span: &Span, stored: &str) {
        let Ok(carrier) = serde_json::from_str::<HashMap<String, String>>(stored) else {
            tracing::debug!(stored, "ignoring a job's unreadable trace context");
            return;
        };
        let mut cx = global::get_text_map_propagator(|p| p.extract(&carrier));
        if !cx.span().span_context().is_valid() {
            match carrier.get("traceparent").and_then(|tp| parse_traceparent(tp, carrier.get("tracestate"))) {
                Some(sc) => cx = Context::new().with_remote_span_context(sc),
                None => return,
            }
        }
        let _ = span.set_parent(cx);
    }

    /// `00-{trace id}-{parent id}-{flags}`, as W3C Trace Context writes it.
    fn parse_traceparent(header: &str, state: Option<&String>) -> Option<SpanContext> {
        let mut parts = header.trim().split('-');
        let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
            return None;
        }
        let trace_id = TraceId::from_hex(trace).ok()?;
        let span_id = SpanId::from_hex(parent).ok()?;
        let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()?);
        let state = state.and_then(|s| s.parse::<TraceState>().ok()).unwrap_or_default();
        let sc = SpanContext::new(trace_id, span_id, flags, true, state);
        sc.is_valid().then_some(sc)
    }
}

#[cfg(feature = "opentelemetry")]
pub(crate) use otel::{continue_trace, current_context};

/// Without the `opentelemetry` feature there is no trace context to store.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn current_context() -> Option<String> {
    None
}

/// Without the `opentelemetry` feature a stored trace context cannot be continued.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn continue_trace(_span: &Span, _stored: &str) {}
