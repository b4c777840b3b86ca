//! `GET /metrics`: what a platform team graphs and alerts on, in Prometheus
//! text format (0.0.4), from `prometheus-client`, the Prometheus project's
//! own Rust client. Every name starts with `stripe_plugin_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The content type of `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// Stripe's event type, or `unknown` when the body was not read.
    pub event_type: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlerLabels {
    /// The contract's export name (`on-webhook`, `on-invoice-finalized` ...).
    pub handler: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StripeLabels {
    /// The HTTP status Stripe answered, or `none` when no answer came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabels {
    /// `sent`, or `duplicate` when the dedupe key had been sent before.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `public` or `platform`: the listener.
    pub listener: String,
    /// `unauthenticated`, `forbidden`, `wrong_host`, `not_json`, `not_here`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GateLabels {
    /// What the Stripe gate found wrong with the plugin's request.
    pub reason: String,
}

type HistogramFamily = Family<HandlerLabels, Histogram, fn() -> Histogram>;

/// What a webhook came to, as the metrics and the logs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// 2xx, and the plugin's transitions were stored.
    Applied,
    /// 2xx with nothing to store (a duplicate, an event the plugin ignores).
    Ignored,
    /// 2xx for a connected account that belongs to no merchant.
    Unrouted,
    /// 4xx: refused (bad signature, bad body); Stripe should not retry.
    Refused,
    /// 5xx: not stored; Stripe retries.
    Failed,
}

impl WebhookOutcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Ignored => "ignored",
            Self::Unrouted => "unrouted",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    handler_seconds: HistogramFamily,
    stripe_requests: Family<StripeLabels, Counter>,
    emails: Family<EmailLabels, Counter>,
    queue_depth: Gauge,
    dead_letters: Gauge,
    queue_oldest_age_seconds: Gauge<f64, AtomicU64>,
    jobs: Family<JobLabels, Counter>,
    refused_requests: Family<RefusedLabels, Counter>,
    gate_refusals: Family<GateLabels, Counter>,
    caps_exceeded: Family<CapLabels, Counter>,
    collections_queued: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapLabels {
    /// The cap a plugin call went over (`wall time`, `kv operations` ...).
    pub cap: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    /// `done`, `retried` or `failed` (not retryable: given up).
    pub result: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("stripe_plugin");
        let webhooks = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhooks",
            "Webhook deliveries by event type and outcome",
            webhooks.clone(),
        );
        let handler_seconds: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "handler_duration_seconds",
            "Time of one plugin call, imports included",
            handler_seconds.clone(),
        );
        let stripe_requests = Family::<StripeLabels, Counter>::default();
        registry.register(
            "stripe_requests",
            "Requests to Stripe by the status it answered",
            stripe_requests.clone(),
        );
        let emails = Family::<EmailLabels, Counter>::default();
        registry.register("emails", "Emails handed to the outbox", emails.clone());
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Jobs in the durable work queue (all workers)",
            queue_depth.clone(),
        );
        let dead_letters = Gauge::default();
        registry.register(
            "dead_letters",
            "Jobs that failed for good, kept for an operator (all merchants)",
            dead_letters.clone(),
        );
        let queue_oldest_age_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "queue_oldest_age_seconds",
            "Age of the oldest queued job",
            queue_oldest_age_seconds.clone(),
        );
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "jobs",
            "Queued jobs run by this worker, by result",
            jobs.clone(),
        );
        let refused_requests = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "refused_requests",
            "Requests to serve turned away before anything ran, by listener and reason",
            refused_requests.clone(),
        );
        let gate_refusals = Family::<GateLabels, Counter>::default();
        registry.register(
            "gate_refusals",
            "Requests of the plugin that the Stripe gate refused, by reason",
            gate_refusals.clone(),
        );
        let caps_exceeded = Family::<CapLabels, Counter>::default();
        registry.register(
            "calls_over_cap",
            "Plugin calls failed for going over a cap of time or of host use",
            caps_exceeded.clone(),
        );
        let collections_queued = Gauge::default();
        registry.register(
            "collections_queued",
            "Dunning retries and collections resumed after an account restriction, queued (all merchants); their runs are jobs{kind=\"collect\"}",
            collections_queued.clone(),
        );
        Self {
            registry,
            collections_queued,
            refused_requests,
            gate_refusals,
            caps_exceeded,
            webhooks,
            handler_seconds,
            stripe_requests,
            emails,
            queue_depth,
            dead_letters,
            queue_oldest_age_seconds,
            jobs,
        }
    }
}

impl Metrics {
    pub fn webhook(&self, event_type: Option<&str>, outcome: WebhookOutcome) {
        self.webhooks
            .get_or_create(&WebhookLabels {
                event_type: event_type.unwrap_or("unknown").to_string(),
                outcome: outcome.name().to_string(),
            })
            .inc();
    }

    pub fn handler_call(&self, handler: &str, took: Duration) {
        self.handler_seconds
            .get_or_create(&HandlerLabels {
                handler: handler.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn stripe_request(&self, status: Option<u16>) {
        let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
        self.stripe_requests
            .get_or_create(&StripeLabels { status })
            .inc();
    }

    /// A request the host's pacing refused before it reached Stripe.
    pub fn stripe_held_back(&self) {
        let status = "held-back".to_string();
        self.stripe_requests
            .get_or_create(&StripeLabels { status })
            .inc();
    }

    /// What the SMTP relay did with one email: `sent`, `retried`, `failed`.
    pub fn email_delivery(&self, result: &str) {
        let result = format!("relay-{result}");
        self.emails.get_or_create(&EmailLabels { result }).inc();
    }

    pub fn email(&self, sent: bool) {
        let result = if sent { "sent" } else { "duplicate" }.to_string();
        self.emails.get_or_create(&EmailLabels { result }).inc();
    }

    pub fn set_queue(&self, depth: i64, oldest_ms: i64, dead: i64) {
        self.queue_depth.set(depth);
        self.dead_letters.set(dead);
        self.queue_oldest_age_seconds.set(oldest_ms as f64 / 1000.0);
    }

    /// Retries and resumed collections waiting in the queue.
    pub fn set_collections(&self, queued: i64) {
        self.collections_queued.set(queued);
    }

    pub fn job(&self, kind: &str, result: &str) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn refused_request(&self, listener: &str, reason: &str) {
        self.refused_requests
            .get_or_create(&RefusedLabels {
                listener: listener.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn cap_exceeded(&self, cap: &str) {
        self.caps_exceeded
            .get_or_create(&CapLabels {
                cap: cap.to_string(),
            })
            .inc();
    }

    pub fn gate_refusal(&self, reason: &str) {
        self.gate_refusals
            .get_or_create(&GateLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Everything, in Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}
/// What the runtime reports, counted for `/metrics`.
impl crate::ports::Observer for Metrics {
    fn handler_call(&self, handler: &str, took: Duration) {
        Metrics::handler_call(self, handler, took);
    }
    fn cap_exceeded(&self, cap: &str) {
        Metrics::cap_exceeded(self, cap);
    }
    fn gate_refusal(&self, reason: &str) {
        Metrics::gate_refusal(self, reason);
    }
    fn email(&self, kept: bool) {
        Metrics::email(self, kept);
    }
    fn stripe_held_back(&self) {
        Metrics::stripe_held_back(self);
    }
    fn stripe_exchange(
        &self,
        _req: &crate::bindings::billing::stripe_plugin::http::Request,
        result: &Result<
            crate::bindings::billing::stripe_plugin::http::Response,
            crate::bindings::billing::stripe_plugin::http::HttpError,
        >,
    ) {
        self.stripe_request(result.as_ref().ok().map(|r| r.status));
    }
}
