//! The task the example and its test enqueue, and the tracing set-up they share: a
//! `tracing` subscriber whose spans go to an OpenTelemetry tracer provider.

use oncommit::{Task, TaskContext, TaskError};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;

/// Sends a welcome email (here: logs that it would).
#[derive(Debug, Serialize, Deserialize)]
pub struct SendWelcome {
    /// The user to welcome.
    pub user: i64,
}

impl Task for SendWelcome {
    const NAME: &'static str = "send_welcome";

    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        // Inside the worker's `process default` span, so in the request's trace.
        tracing::info!(user = self.user, "welcome email sent");
        Ok(())
    }
}

/// Installs, for the whole process, a subscriber that sends every span to a tracer provider
/// exporting through `exporter` as each span ends; returns the provider (flush or shut it
/// down before exiting).
pub fn install(exporter: impl SpanExporter + 'static) -> SdkTracerProvider {
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("oncommit-otel-example"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("no other subscriber was installed");
    provider
}
