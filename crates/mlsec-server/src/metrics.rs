//! Prometheus metrics. Label values come from closed sets only: route kinds, configured model
//! names (anything else is `unknown`), status codes, limit and error codes. A client cannot
//! create a new series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Req {
    pub route: &'static str,
    pub model: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteModel {
    pub route: &'static str,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub route: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenKind {
    pub model: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AbuseLabel {
    pub policy: String,
    pub signal: &'static str,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabel {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabel {
    pub model: String,
    /// `yes` or `no`.
    pub drift: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabel {
    pub model: String,
    /// `drift`, `ood_rate`, `low_confidence`, `error_rate` or `latency`.
    pub condition: &'static str,
    /// `firing` or `resolved`.
    pub state: &'static str,
}

fn ood_histogram() -> Histogram {
    Histogram::new([0.5, 0.9, 0.99, 0.999, 0.9999])
}

fn unit_histogram() -> Histogram {
    Histogram::new((1..=10).map(|i| f64::from(i) / 10.0))
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~100 s
    Histogram::new(exponential_buckets(0.000_1, 2.0, 21))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<Req, Counter>,
    pub duration: Family<RouteModel, Histogram, fn() -> Histogram>,
    pub ttft: Family<ModelLabel, Histogram, fn() -> Histogram>,
    pub limiter_rejections: Family<Reason, Counter>,
    pub validation_rejections: Family<Reason, Counter>,
    pub tokens: Family<TokenKind, Counter>,
    pub backend_errors: Counter,
    /// Abuse and extraction signals raised, by policy, signal and the action taken.
    pub abuse_signals: Family<AbuseLabel, Counter>,
    /// Client connections open on the public listener.
    pub connections_open: Gauge,
    /// Connections closed at accept because `server.max_connections` was reached.
    pub connections_refused: Counter,
    /// Per-request out-of-distribution scores of monitored models.
    pub ood_score: Family<ModelLabel, Histogram, fn() -> Histogram>,
    pub ood_requests: Family<ModelLabel, Counter>,
    /// Normalised entropy of each scored output row (0 certain, 1 uniform).
    pub output_entropy: Family<ModelLabel, Histogram, fn() -> Histogram>,
    pub low_confidence: Family<ModelLabel, Counter>,
    /// Responses of a model with `probabilities` set where none could be read.
    pub unscored: Family<ModelLabel, Counter>,
    pub drift_windows: Family<WindowLabel, Counter>,
    /// Features that drifted in the model's last closed window.
    pub drifted_features: Family<ModelLabel, Gauge>,
    pub alerts: Family<AlertLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mlsec_gateway");
        let m = Metrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            ttft: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            limiter_rejections: Family::default(),
            validation_rejections: Family::default(),
            tokens: Family::default(),
            backend_errors: Counter::default(),
            abuse_signals: Family::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            ood_score: Family::new_with_constructor(ood_histogram as fn() -> Histogram),
            ood_requests: Family::default(),
            output_entropy: Family::new_with_constructor(unit_histogram as fn() -> Histogram),
            low_confidence: Family::default(),
            unscored: Family::default(),
            drift_windows: Family::default(),
            drifted_features: Family::default(),
            alerts: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests by route, model and status",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to the last byte of the response",
            m.duration.clone(),
        );
        registry.register(
            "upstream_ttft_seconds",
            "Time from sending to the upstream to its first response byte",
            m.ttft.clone(),
        );
        registry.register(
            "limiter_rejections",
            "Requests refused by a limit (reason: the limit)",
            m.limiter_rejections.clone(),
        );
        registry.register(
            "validation_rejections",
            "Requests refused before the upstream (reason: the error code)",
            m.validation_rejections.clone(),
        );
        registry.register(
            "tokens",
            "Tokens used, from upstream usage",
            m.tokens.clone(),
        );
        registry.register(
            "limiter_backend_errors",
            "Limit store failures (fail-open or fail-closed applied)",
            m.backend_errors.clone(),
        );
        registry.register(
            "abuse_signals",
            "Abuse and extraction signals raised per principal request (signal, action taken)",
            m.abuse_signals.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections open on the public listener",
            m.connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept because server.max_connections was reached",
            m.connections_refused.clone(),
        );
        registry.register(
            "monitor_ood_score",
            "Per-request out-of-distribution score against the model's reference profile",
            m.ood_score.clone(),
        );
        registry.register(
            "monitor_ood_requests",
            "Requests scored out of distribution",
            m.ood_requests.clone(),
        );
        registry.register(
            "monitor_output_entropy",
            "Normalised entropy of each scored output (0 certain, 1 uniform)",
            m.output_entropy.clone(),
        );
        registry.register(
            "monitor_low_confidence",
            "Outputs whose top probability is below the model's low_confidence",
            m.low_confidence.clone(),
        );
        registry.register(
            "monitor_unscored",
            "Responses whose probabilities could not be read",
            m.unscored.clone(),
        );
        registry.register(
            "monitor_drift_windows",
            "Closed drift windows, by whether any feature drifted",
            m.drift_windows.clone(),
        );
        registry.register(
            "monitor_drifted_features",
            "Features that drifted in the last closed window",
            m.drifted_features.clone(),
        );
        registry.register(
            "monitor_alerts",
            "Monitoring alerts sent, by condition and state",
            m.alerts.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}
