//! Prometheus metrics (`herald_` prefix). App labels come only from configured apps, so the
//! label set stays bounded.

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use herald_core::{AppId, Hub};

/// Every metric of the node, grouped by what it observes. The names, help texts and labels are
/// a contract with dashboards and alerts: add, never rename.
pub struct Metrics {
    registry: Registry,
    conns: ConnectionMetrics,
    traffic: TrafficMetrics,
    api: ApiMetrics,
    hooks: WebhookMetrics,
    backplane: BackplaneStats,
}

/// Latency buckets of in-process hand-offs and Redis round trips (seconds).
const FAST_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, metric: T) -> T {
    r.register(Box::new(metric.clone())).expect("unique metric");
    metric
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(r, HistogramVec::new(opts, labels).expect("valid metric"))
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help).expect("valid metric"))
}

fn gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

/// Connections: open (gauges read at scrape time), opened, closed, refused, cut off.
struct ConnectionMetrics {
    connections: IntGaugeVec,
    node_connections: IntGauge,
    channels: IntGaugeVec,
    opened: IntCounterVec,
    closed: IntCounterVec,
    refused: IntCounterVec,
    slow_consumers: IntCounterVec,
    /// Apps served, by source (file, store).
    apps: IntGaugeVec,
    /// Connections this node closed with 4200 to move them to less loaded nodes.
    rebalanced: IntCounter,
    /// Connections per accepting node, cluster-wide, as this node last saw it (NaN: unknown).
    cluster_mean: Gauge,
    /// 1 while `/ready` answers 200.
    ready: IntGauge,
    /// `max_connections` (0: no cap).
    max_connections: IntGauge,
    /// Apps whose per-app gauges are set: a removed app's are dropped at the next scrape.
    labelled: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl ConnectionMetrics {
    fn new(r: &Registry) -> Self {
        ConnectionMetrics {
            connections: gauges(
                r,
                "herald_connections",
                "Open WebSocket connections on this node",
                &["app"],
            ),
            node_connections: gauge(
                r,
                "herald_node_connections",
                "Open WebSocket connections on this node, all apps",
            ),
            channels: gauges(
                r,
                "herald_channels",
                "Channels with subscribers on this node",
                &["app"],
            ),
            opened: counter(
                r,
                "herald_connections_opened_total",
                "WebSocket connections opened",
                &["app"],
            ),
            closed: counter(
                r,
                "herald_connections_closed_total",
                "WebSocket connections closed, by the close code the server sent (client: the client left)",
                &["app", "code"],
            ),
            refused: counter(
                r,
                "herald_connections_refused_total",
                "WebSocket handshakes refused, by close code",
                &["code"],
            ),
            apps: gauges(
                r,
                "herald_apps",
                "Apps this node serves, by source (file: the config file; store: the app store)",
                &["source"],
            ),
            labelled: std::sync::Mutex::default(),
            rebalanced: register(
                r,
                IntCounter::new(
                    "herald_rebalanced_connections_total",
                    "Connections this node closed with 4200 so they reconnect to a less loaded node (rebalancing and hand-offs)",
                )
                .expect("valid metric"),
            ),
            ready: gauge(
                r,
                "herald_ready",
                "1 while this node takes new connections (GET /ready answers 200), else 0",
            ),
            max_connections: gauge(
                r,
                "herald_node_max_connections",
                "This node's max_connections (0: no cap)",
            ),
            cluster_mean: register(
                r,
                Gauge::new(
                    "herald_cluster_mean_connections",
                    "Connections per ready node across the cluster, as this node last saw it (its rebalancing reference)",
                )
                .expect("valid metric"),
            ),
            slow_consumers: counter(
                r,
                "herald_slow_consumer_disconnects_total",
                "Connections closed with 4100 because they did not read their messages fast enough",
                &["app"],
            ),
        }
    }
}

/// Frames in and out, and how long a publish takes to reach this node's subscribers.
struct TrafficMetrics {
    messages_in: IntCounterVec,
    bytes_in: IntCounterVec,
    messages_out: IntCounterVec,
    bytes_out: IntCounterVec,
    dropped: IntCounterVec,
    delivery_latency: HistogramVec,
}

impl TrafficMetrics {
    fn new(r: &Registry) -> Self {
        TrafficMetrics {
            messages_in: counter(
                r,
                "herald_messages_received_total",
                "Frames received from clients",
                &["app"],
            ),
            bytes_in: counter(
                r,
                "herald_received_bytes_total",
                "Bytes received from clients",
                &["app"],
            ),
            messages_out: counter(
                r,
                "herald_messages_sent_total",
                "Frames queued to clients (one per recipient)",
                &["app"],
            ),
            bytes_out: counter(
                r,
                "herald_sent_bytes_total",
                "Bytes queued to clients (frame size × recipients)",
                &["app"],
            ),
            dropped: counter(
                r,
                "herald_outbound_dropped_total",
                "Frames dropped because a subscriber's outbound queue was full",
                &["app"],
            ),
            delivery_latency: histogram(
                r,
                "herald_publish_delivery_seconds",
                "Time from an event's publication to its hand-off to this node's subscribers; origin: local (published on this node) or remote (through the backplane)",
                FAST_BUCKETS,
                &["origin"],
            ),
        }
    }
}

/// The HTTP API.
struct ApiMetrics {
    events: IntCounterVec,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl ApiMetrics {
    fn new(r: &Registry) -> Self {
        ApiMetrics {
            events: counter(
                r,
                "herald_api_events_total",
                "Events published through the HTTP API (one per channel)",
                &["app"],
            ),
            requests: counter(
                r,
                "herald_http_requests_total",
                "HTTP API requests by endpoint and status",
                &["endpoint", "status"],
            ),
            latency: histogram(
                r,
                "herald_http_request_duration_seconds",
                "HTTP API request latency",
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ],
                &["endpoint"],
            ),
        }
    }
}

/// Webhook delivery.
struct WebhookMetrics {
    events: IntCounterVec,
    depth: IntGauge,
    latency: prometheus::Histogram,
}

impl WebhookMetrics {
    fn new(r: &Registry) -> Self {
        let latency = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "herald_webhook_delivery_seconds",
                "Time from a webhook event to its successful delivery",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
        )
        .expect("valid metric");
        WebhookMetrics {
            events: counter(
                r,
                "herald_webhook_events_total",
                "Webhook events by outcome, per endpoint: queued, delivered, failed (an attempt), retried, dead_lettered",
                &["app", "outcome"],
            ),
            depth: gauge(
                r,
                "herald_webhook_queue_depth",
                "Webhook events queued and not yet acknowledged (the cluster's stream, or this node's memory)",
            ),
            latency: register(r, latency),
        }
    }
}

/// The backplane: readiness, operation latency and errors, pub/sub reconnections.
struct BackplaneStats {
    ready: IntGauge,
    cluster_version: IntGauge,
    latency: HistogramVec,
    errors: IntCounterVec,
    reconnects: IntCounter,
    primary_changes: IntCounter,
}

impl BackplaneStats {
    fn new(r: &Registry) -> Self {
        BackplaneStats {
            ready: gauge(
                r,
                "herald_backplane_ready",
                "1 while the backplane (Redis) is reachable, 0 otherwise",
            ),
            cluster_version: gauge(
                r,
                "herald_cluster_version",
                "The cluster format version the nodes use: the lowest any live node speaks (0 on a single node)",
            ),
            latency: histogram(
                r,
                "herald_backplane_operation_seconds",
                "Backplane operation latency (one Redis round trip each in a cluster), by operation",
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
                ],
                &["op"],
            ),
            errors: counter(
                r,
                "herald_backplane_errors_total",
                "Backplane operations that failed (Redis unreachable, timeout, script error), by operation",
                &["op"],
            ),
            reconnects: register(
                r,
                IntCounter::new(
                    "herald_backplane_reconnects_total",
                    "Times this node re-established its Redis pub/sub connection after losing it",
                )
                .expect("valid metric"),
            ),
            primary_changes: register(
                r,
                IntCounter::new(
                    "herald_backplane_primary_changes_total",
                    "Times this node followed the Redis master to another server (Sentinel failovers)",
                )
                .expect("valid metric"),
            ),
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        Metrics {
            conns: ConnectionMetrics::new(&registry),
            traffic: TrafficMetrics::new(&registry),
            api: ApiMetrics::new(&registry),
            hooks: WebhookMetrics::new(&registry),
            backplane: BackplaneStats::new(&registry),
            registry,
        }
    }

    pub fn connection_opened(&self, app: &AppId) {
        self.conns.opened.with_label_values(&[app.as_str()]).inc();
    }

    /// `code`: the close code the server sent, None when the client left.
    pub fn connection_closed(&self, app: &AppId, code: Option<u16>) {
        let code = code.map_or_else(|| "client".to_owned(), |c| c.to_string());
        self.conns
            .closed
            .with_label_values(&[app.as_str(), &code])
            .inc();
    }

    /// Whether `/ready` answers 200 right now (set before each scrape).
    pub fn set_ready(&self, ready: bool) {
        self.conns.ready.set(i64::from(ready));
    }

    pub fn set_max_connections(&self, max: Option<usize>) {
        self.conns.max_connections.set(max.unwrap_or(0) as i64);
    }

    /// The rebalancer closed `n` connections; the cluster mean it saw.
    pub fn rebalanced(&self, n: u64) {
        self.conns.rebalanced.inc_by(n);
    }

    pub fn cluster_mean(&self, mean: Option<f64>) {
        self.conns.cluster_mean.set(mean.unwrap_or(f64::NAN));
    }

    pub fn connection_refused(&self, code: u16) {
        self.conns
            .refused
            .with_label_values(&[&code.to_string()])
            .inc();
    }

    pub fn message_received(&self, app: &AppId, bytes: usize) {
        self.traffic
            .messages_in
            .with_label_values(&[app.as_str()])
            .inc();
        self.traffic
            .bytes_in
            .with_label_values(&[app.as_str()])
            .inc_by(bytes as u64);
    }

    pub fn api_event_published(&self, app: &AppId, channels: usize) {
        self.api
            .events
            .with_label_values(&[app.as_str()])
            .inc_by(channels as u64);
    }

    pub fn http_request(&self, endpoint: &str, status: u16, took: Duration) {
        self.api
            .requests
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
        self.api
            .latency
            .with_label_values(&[endpoint])
            .observe(took.as_secs_f64());
    }

    pub fn webhook(&self, app: &AppId, outcome: &str, events: usize) {
        self.hooks
            .events
            .with_label_values(&[app.as_str(), outcome])
            .inc_by(events as u64);
    }

    pub fn webhook_depth(&self, depth: u64) {
        self.hooks.depth.set(depth as i64);
    }

    pub fn webhook_latency(&self, ms: u64) {
        self.hooks.latency.observe(ms as f64 / 1000.0);
    }

    /// The text exposition, with gauges read from the hub at scrape time.
    pub fn render(&self, hub: &Hub) -> String {
        let apps = hub.apps().snapshot();
        let fixed = apps.iter().filter(|a| apps.is_fixed(a.id.as_str())).count();
        self.conns
            .apps
            .with_label_values(&["file"])
            .set(fixed as i64);
        self.conns
            .apps
            .with_label_values(&["store"])
            .set((apps.len() - fixed) as i64);
        {
            // A removed app's gauges go with it (its counters stay: they only grow).
            let mut labelled = herald_core::sync::lock(&self.conns.labelled);
            labelled.retain(|id| {
                let keep = apps.by_id(id).is_some();
                if !keep {
                    let _ = self.conns.connections.remove_label_values(&[id.as_str()]);
                    let _ = self.conns.channels.remove_label_values(&[id.as_str()]);
                }
                keep
            });
            labelled.extend(apps.iter().map(|a| a.id.to_string()));
        }
        // Every app's counters exist from the start at 0, so a dashboard's rate() and an
        // alert see a series before the first event.
        for app in apps.iter() {
            let id = [app.id.as_str()];
            self.conns.opened.with_label_values(&id);
            self.conns.slow_consumers.with_label_values(&id);
            for c in [
                &self.traffic.messages_in,
                &self.traffic.bytes_in,
                &self.traffic.messages_out,
                &self.traffic.bytes_out,
                &self.traffic.dropped,
                &self.api.events,
            ] {
                c.with_label_values(&id);
            }
            if !app.webhooks.is_empty() {
                for outcome in ["queued", "delivered", "failed", "retried", "dead_lettered"] {
                    self.hooks
                        .events
                        .with_label_values(&[app.id.as_str(), outcome]);
                }
            }
        }
        for app in hub.apps().iter() {
            self.conns
                .connections
                .with_label_values(&[app.id.as_str()])
                .set(hub.app_connection_count(app.id.as_str()) as i64);
        }
        self.conns
            .node_connections
            .set(hub.connection_count() as i64);
        for app in hub.apps().iter() {
            self.conns
                .channels
                .with_label_values(&[app.id.as_str()])
                .set(hub.app_channel_count(app.id.as_str()) as i64);
        }
        self.backplane
            .ready
            .set(i64::from(hub.backplane().health.is_ready()));
        self.backplane.cluster_version.set(i64::from(
            hub.backplane().health.cluster_version().unwrap_or(0),
        ));
        let reconnects = hub.backplane().health.reconnects();
        self.backplane
            .reconnects
            .inc_by(reconnects.saturating_sub(self.backplane.reconnects.get()));
        let moves = hub.backplane().health.primary_changes();
        self.backplane
            .primary_changes
            .inc_by(moves.saturating_sub(self.backplane.primary_changes.get()));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Fan-out counts from the hub: one call per frame, not per recipient.
impl herald_core::hub::HubMetrics for Metrics {
    fn delivered(&self, app: &herald_core::AppId, recipients: usize, frame_bytes: usize) {
        self.traffic
            .messages_out
            .with_label_values(&[app.as_str()])
            .inc_by(recipients as u64);
        self.traffic
            .bytes_out
            .with_label_values(&[app.as_str()])
            .inc_by((recipients * frame_bytes) as u64);
    }

    fn delivery_latency(&self, remote: bool, seconds: f64) {
        let origin = if remote { "remote" } else { "local" };
        self.traffic
            .delivery_latency
            .with_label_values(&[origin])
            .observe(seconds);
    }

    fn dropped(&self, app: &herald_core::AppId, cut_off: bool) {
        self.traffic
            .dropped
            .with_label_values(&[app.as_str()])
            .inc();
        if cut_off {
            self.conns
                .slow_consumers
                .with_label_values(&[app.as_str()])
                .inc();
        }
    }
}

impl herald_core::backplane::BackplaneMetrics for Metrics {
    fn operation(&self, op: &'static str, took: Duration, ok: bool) {
        self.backplane
            .latency
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
        if !ok {
            self.backplane.errors.with_label_values(&[op]).inc();
        }
    }
}
