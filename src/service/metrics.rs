//! The factory's Prometheus metrics, under upstream's names: assets built and delivered from
//! the cache (by Talos version, output kind and architecture) with their bytes, build and
//! build-slot latencies, schematic lookups and creations, and per-route HTTP requests. They
//! are served on their own listener (`metrics.addr`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

/// Upstream's buckets for build latencies, in seconds.
const BUILD_BUCKETS: [f64; 5] = [1.0, 10.0, 60.0, 180.0, 600.0];
/// Request durations, in seconds.
const REQUEST_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AssetLabels {
    pub talos_version: String,
    pub output_kind: String,
    pub arch: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub handler: String,
    pub method: String,
    pub code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlerLabels {
    pub handler: String,
}

fn build_histogram() -> Histogram {
    Histogram::new(BUILD_BUCKETS)
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// Every metric, and the registry that encodes them.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub assets_built: Family<AssetLabels, Counter>,
    pub assets_built_bytes: Family<AssetLabels, Counter>,
    pub assets_delivered_cached: Family<AssetLabels, Counter>,
    pub assets_cached_bytes: Family<AssetLabels, Counter>,
    pub assets_cached_errors: Family<AssetLabels, Counter>,
    pub build_latency: Family<AssetLabels, Histogram, fn() -> Histogram>,
    pub concurrency_latency: Family<AssetLabels, Histogram, fn() -> Histogram>,
    pub schematic_get: Counter,
    pub schematic_create: Counter,
    pub schematic_duplicate_create: Counter,
    pub request_duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
    pub requests_inflight: Family<HandlerLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Mutex::new(Registry::default()),
            assets_built: Family::default(),
            assets_built_bytes: Family::default(),
            assets_delivered_cached: Family::default(),
            assets_cached_bytes: Family::default(),
            assets_cached_errors: Family::default(),
            build_latency: Family::new_with_constructor(build_histogram),
            concurrency_latency: Family::new_with_constructor(build_histogram),
            schematic_get: Counter::default(),
            schematic_create: Counter::default(),
            schematic_duplicate_create: Counter::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            requests_inflight: Family::default(),
        };
        if let Ok(mut registry) = metrics.registry.lock() {
            // The registry adds `_total` to counters.
            registry.register(
                "image_factory_assets_built",
                "Assets built",
                metrics.assets_built.clone(),
            );
            registry.register(
                "image_factory_assets_built_bytes",
                "Bytes of the assets built",
                metrics.assets_built_bytes.clone(),
            );
            registry.register(
                "image_factory_assets_delivered_cached",
                "Assets delivered from the cache",
                metrics.assets_delivered_cached.clone(),
            );
            registry.register(
                "image_factory_assets_cached_bytes",
                "Bytes of the assets delivered from the cache",
                metrics.assets_cached_bytes.clone(),
            );
            registry.register(
                "image_factory_assets_cached_errors",
                "Asset builds that failed",
                metrics.assets_cached_errors.clone(),
            );
            registry.register(
                "image_factory_assets_build_latency_seconds",
                "How long asset builds take",
                metrics.build_latency.clone(),
            );
            registry.register(
                "image_factory_assets_concurrency_latency_seconds",
                "How long builds wait for a build slot",
                metrics.concurrency_latency.clone(),
            );
            registry.register(
                "image_factory_schematic_get",
                "Schematic lookups",
                metrics.schematic_get.clone(),
            );
            registry.register(
                "image_factory_schematic_create",
                "Schematics created",
                metrics.schematic_create.clone(),
            );
            registry.register(
                "image_factory_schematic_duplicate_create",
                "Schematics uploaded again",
                metrics.schematic_duplicate_create.clone(),
            );
            registry.register(
                "http_request_duration_seconds",
                "HTTP request durations by route",
                metrics.request_duration.clone(),
            );
            registry.register(
                "http_requests_inflight",
                "HTTP requests being served, by route",
                metrics.requests_inflight.clone(),
            );
        }
        metrics
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names_in_the_text() {
        let metrics = Metrics::new();
        let labels = AssetLabels {
            talos_version: "v1.12.0".into(),
            output_kind: "image".into(),
            arch: "amd64".into(),
        };
        metrics.assets_built.get_or_create(&labels).inc();
        metrics.build_latency.get_or_create(&labels).observe(2.0);
        metrics.schematic_create.inc();
        let text = metrics.encode();
        assert!(
            text.contains(
                "image_factory_assets_built_total{talos_version=\"v1.12.0\",output_kind=\"image\",arch=\"amd64\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("image_factory_assets_build_latency_seconds_bucket{"),
            "{text}"
        );
        assert!(
            text.contains("image_factory_schematic_create_total 1"),
            "{text}"
        );
    }
}
