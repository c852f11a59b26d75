//! Prometheus metrics, served at `/metrics` to admin tokens. Labels come from closed sets: the
//! route patterns of [`crate::ROUTES`] (anything else is `unmatched`), methods, status codes,
//! environments from the config, and the check outcomes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Req {
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Made {
    pub env: String,
    pub scan: &'static str,
    pub signature: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<Req, Counter>,
    pub duration: Family<Route, Histogram>,
    pub versions: Family<Made, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("mlsec_registry");
        let requests = Family::<Req, Counter>::default();
        let duration = Family::<Route, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 18))
        });
        let versions = Family::<Made, Counter>::default();
        registry.register(
            "requests",
            "Requests by route pattern, method and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to the response head, by route pattern",
            duration.clone(),
        );
        registry.register(
            "versions_created",
            "Versions made, by environment and check outcome",
            versions.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            versions,
        }
    }
}

/// Maps a free string onto a closed set of static labels.
pub fn closed(value: &str, set: &[&'static str]) -> &'static str {
    set.iter()
        .find(|s| **s == value)
        .copied()
        .unwrap_or("other")
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
