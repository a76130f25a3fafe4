//! Prometheus metrics (`herald_` prefix). App labels come only from configured apps, so the
//! label set stays bounded.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use herald_core::{AppId, Hub};

pub struct Metrics {
    registry: Registry,
    connections: IntGaugeVec,
    node_connections: IntGauge,
    channels: IntGaugeVec,
    backplane_ready: IntGauge,
    webhook_depth: IntGauge,
    opened: IntCounterVec,
    closed: IntCounterVec,
    refused: IntCounterVec,
    messages_in: IntCounterVec,
    messages_out: IntCounterVec,
    bytes_out: IntCounterVec,
    bytes_in: IntCounterVec,
    api_events: IntCounterVec,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    webhooks: IntCounterVec,
    webhook_latency: prometheus::Histogram,
    delivery_latency: HistogramVec,
    dropped: IntCounterVec,
    slow_consumers: IntCounterVec,
    backplane_latency: HistogramVec,
    backplane_errors: IntCounterVec,
    backplane_reconnects: IntCounter,
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let connections = IntGaugeVec::new(
            Opts::new(
                "herald_connections",
                "Open WebSocket connections on this node",
            ),
            &["app"],
        )
        .expect("valid metric");
        r.register(Box::new(connections.clone()))
            .expect("unique metric");
        let node_connections = IntGauge::new(
            "herald_node_connections",
            "Open WebSocket connections on this node, all apps",
        )
        .expect("valid metric");
        r.register(Box::new(node_connections.clone()))
            .expect("unique metric");
        let channels = IntGaugeVec::new(
            Opts::new("herald_channels", "Channels with subscribers on this node"),
            &["app"],
        )
        .expect("valid metric");
        r.register(Box::new(channels.clone()))
            .expect("unique metric");
        let backplane_ready = IntGauge::new(
            "herald_backplane_ready",
            "1 while the backplane (Redis) is reachable, 0 otherwise",
        )
        .expect("valid metric");
        r.register(Box::new(backplane_ready.clone()))
            .expect("unique metric");
        let webhook_depth = IntGauge::new(
            "herald_webhook_queue_depth",
            "Webhook events queued and not yet acknowledged (the cluster's stream, or this node's memory)",
        )
        .expect("valid metric");
        r.register(Box::new(webhook_depth.clone()))
            .expect("unique metric");
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "herald_http_request_duration_seconds",
                "HTTP API request latency",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["endpoint"],
        )
        .expect("valid metric");
        r.register(Box::new(http_latency.clone()))
            .expect("unique metric");
        let webhook_latency = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "herald_webhook_delivery_seconds",
                "Time from a webhook event to its successful delivery",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(webhook_latency.clone()))
            .expect("unique metric");
        let backplane_reconnects = IntCounter::new(
            "herald_backplane_reconnects_total",
            "Times this node re-established its Redis pub/sub connection after losing it",
        )
        .expect("valid metric");
        r.register(Box::new(backplane_reconnects.clone()))
            .expect("unique metric");
        Metrics {
            delivery_latency: histogram(
                &r,
                "herald_publish_delivery_seconds",
                "Time from an event's publication to its hand-off to this node's subscribers; origin: local (published on this node) or remote (through the backplane)",
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    1.0,
                ],
                &["origin"],
            ),
            dropped: counter(
                &r,
                "herald_outbound_dropped_total",
                "Frames dropped because a subscriber's outbound queue was full",
                &["app"],
            ),
            slow_consumers: counter(
                &r,
                "herald_slow_consumer_disconnects_total",
                "Connections closed with 4100 because they did not read their messages fast enough",
                &["app"],
            ),
            backplane_latency: histogram(
                &r,
                "herald_backplane_operation_seconds",
                "Backplane operation latency (one Redis round trip each in a cluster), by operation",
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
                ],
                &["op"],
            ),
            backplane_errors: counter(
                &r,
                "herald_backplane_errors_total",
                "Backplane operations that failed (Redis unreachable, timeout, script error), by operation",
                &["op"],
            ),
            backplane_reconnects,
            opened: counter(
                &r,
                "herald_connections_opened_total",
                "WebSocket connections opened",
                &["app"],
            ),
            closed: counter(
                &r,
                "herald_connections_closed_total",
                "WebSocket connections closed, by the close code the server sent (client: the client left)",
                &["app", "code"],
            ),
            refused: counter(
                &r,
                "herald_connections_refused_total",
                "WebSocket handshakes refused, by close code",
                &["code"],
            ),
            messages_in: counter(
                &r,
                "herald_messages_received_total",
                "Frames received from clients",
                &["app"],
            ),
            bytes_in: counter(
                &r,
                "herald_received_bytes_total",
                "Bytes received from clients",
                &["app"],
            ),
            messages_out: counter(
                &r,
                "herald_messages_sent_total",
                "Frames queued to clients (one per recipient)",
                &["app"],
            ),
            bytes_out: counter(
                &r,
                "herald_sent_bytes_total",
                "Bytes queued to clients (frame size × recipients)",
                &["app"],
            ),
            api_events: counter(
                &r,
                "herald_api_events_total",
                "Events published through the HTTP API (one per channel)",
                &["app"],
            ),
            http_requests: counter(
                &r,
                "herald_http_requests_total",
                "HTTP API requests by endpoint and status",
                &["endpoint", "status"],
            ),
            webhooks: counter(
                &r,
                "herald_webhook_events_total",
                "Webhook events by outcome, per endpoint: queued, delivered, failed (an attempt), retried, dead_lettered",
                &["app", "outcome"],
            ),
            webhook_latency,
            registry: r,
            connections,
            node_connections,
            channels,
            backplane_ready,
            webhook_depth,
            http_latency,
        }
    }

    pub fn connection_opened(&self, app: &AppId) {
        self.opened.with_label_values(&[app.as_str()]).inc();
    }

    /// `code`: the close code the server sent, None when the client left.
    pub fn connection_closed(&self, app: &AppId, code: Option<u16>) {
        let code = code.map_or_else(|| "client".to_owned(), |c| c.to_string());
        self.closed.with_label_values(&[app.as_str(), &code]).inc();
    }

    pub fn connection_refused(&self, code: u16) {
        self.refused.with_label_values(&[&code.to_string()]).inc();
    }

    pub fn message_received(&self, app: &AppId, bytes: usize) {
        self.messages_in.with_label_values(&[app.as_str()]).inc();
        self.bytes_in
            .with_label_values(&[app.as_str()])
            .inc_by(bytes as u64);
    }

    pub fn api_event_published(&self, app: &AppId, channels: usize) {
        self.api_events
            .with_label_values(&[app.as_str()])
            .inc_by(channels as u64);
    }

    pub fn http_request(&self, endpoint: &str, status: u16, took: Duration) {
        self.http_requests
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
        self.http_latency
            .with_label_values(&[endpoint])
            .observe(took.as_secs_f64());
    }

    pub fn webhook(&self, app: &AppId, outcome: &str, events: usize) {
        self.webhooks
            .with_label_values(&[app.as_str(), outcome])
            .inc_by(events as u64);
    }

    pub fn webhook_depth(&self, depth: u64) {
        self.webhook_depth.set(depth as i64);
    }

    pub fn webhook_latency(&self, ms: u64) {
        self.webhook_latency.observe(ms as f64 / 1000.0);
    }

    /// The text exposition, with gauges read from the hub at scrape time.
    pub fn render(&self, hub: &Hub) -> String {
        for app in hub.apps().iter() {
            self.connections
                .with_label_values(&[app.id.as_str()])
                .set(hub.app_connection_count(app.id.as_str()) as i64);
        }
        self.node_connections.set(hub.connection_count() as i64);
        for app in hub.apps().iter() {
            self.channels
                .with_label_values(&[app.id.as_str()])
                .set(hub.app_channel_count(app.id.as_str()) as i64);
        }
        self.backplane_ready
            .set(i64::from(hub.backplane().health.is_ready()));
        let reconnects = hub.backplane().health.reconnects();
        self.backplane_reconnects
            .inc_by(reconnects.saturating_sub(self.backplane_reconnects.get()));
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
        self.messages_out
            .with_label_values(&[app.as_str()])
            .inc_by(recipients as u64);
        self.bytes_out
            .with_label_values(&[app.as_str()])
            .inc_by((recipients * frame_bytes) as u64);
    }

    fn delivery_latency(&self, remote: bool, seconds: f64) {
        let origin = if remote { "remote" } else { "local" };
        self.delivery_latency
            .with_label_values(&[origin])
            .observe(seconds);
    }

    fn dropped(&self, app: &herald_core::AppId, cut_off: bool) {
        self.dropped.with_label_values(&[app.as_str()]).inc();
        if cut_off {
            self.slow_consumers.with_label_values(&[app.as_str()]).inc();
        }
    }
}

impl herald_core::backplane::BackplaneMetrics for Metrics {
    fn operation(&self, op: &'static str, took: Duration, ok: bool) {
        self.backplane_latency
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
        if !ok {
            self.backplane_errors.with_label_values(&[op]).inc();
        }
    }
}
