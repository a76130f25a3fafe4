//! The webhook dispatcher: takes decided events from the queue, batches them per app and
//! endpoint, signs each body for exactly the bytes sent, POSTs with retries and exponential
//! back-off, acknowledges entries once every endpoint got them, and dead-letters what exhausted
//! the retry budget.

use herald_core::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use herald_core::webhook::{DeadLetter, QueuedWebhook, WebhookQueue, WebhookStreams, now_ms};
use herald_core::{App, Apps, WebhookEndpoint, WebhookTarget};
use herald_protocol::webhook::{WebhookEvent, body, body_signature};
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// Delivery policy (PROTOCOL.md §7.3).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// A batch goes out this long after its first event…
    pub batch_window: Duration,
    /// …or as soon as it holds this many events.
    pub batch_size: usize,
    /// A request not answered with 2xx within this time failed.
    pub timeout: Duration,
    /// First retry delay; doubles up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Retrying stops (dead letter) once this much time passed since the first attempt.
    pub retry_budget: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            batch_window: Duration::from_millis(250),
            batch_size: 20,
            timeout: Duration::from_secs(10),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            retry_budget: Duration::from_secs(300),
        }
    }
}

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The webhook HTTP(S) client: Mozilla's roots (bundled, no system store needed) plus the
/// certificates in `extra_ca` (a PEM file, for endpoints behind a private CA).
pub fn http_client(extra_ca: Option<&std::path::Path>) -> Result<HttpClient, String> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                format!(
                    "webhook_ca_file: cannot read PEM certificates from {}: {e}",
                    path.display()
                )
            })?;
        if certs.is_empty() {
            return Err(format!(
                "webhook_ca_file: no certificate in {}",
                path.display()
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                format!(
                    "webhook_ca_file: unusable certificate in {}: {e}",
                    path.display()
                )
            })?;
        }
    }
    let tls = ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("webhook TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

struct Batch {
    started: Instant,
    entries: Vec<QueuedWebhook>,
}

/// Entry id → endpoints still to finish, so an entry is acknowledged exactly when all are done.
type Outstanding = Arc<Mutex<HashMap<String, usize>>>;

/// Runs until the process ends.
pub fn spawn(
    apps: Apps,
    queue: Arc<dyn WebhookQueue>,
    streams: Option<Arc<dyn WebhookStreams>>,
    client: HttpClient,
    config: WebhookConfig,
    metrics: Arc<Metrics>,
    hub: herald_core::Hub,
) {
    tokio::spawn(async move {
        let outstanding: Outstanding = Arc::new(Mutex::new(HashMap::new()));
        let mut batches: HashMap<(herald_core::AppId, usize), Batch> = HashMap::new();
        loop {
            let wait = batches
                .values()
                .map(|b| {
                    (b.started + config.batch_window).saturating_duration_since(Instant::now())
                })
                .min()
                .unwrap_or(Duration::from_millis(500))
                .max(Duration::from_millis(5));
            let entries = match queue.take(512, wait).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook queue unavailable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Ok(depth) = queue.depth().await {
                metrics.webhook_depth(depth);
            }
            let mut ack_now = Vec::new();
            for entry in entries {
                let Some(app) = apps.by_id(entry.app.as_str()) else {
                    ack_now.push(entry.id);
                    continue;
                };
                let targets: Vec<usize> = app
                    .webhooks
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| takes(w, &entry.event))
                    .map(|(i, _)| i)
                    .collect();
                if targets.is_empty() {
                    ack_now.push(entry.id);
                    continue;
                }
                metrics.webhook(&app.id, "queued", targets.len());
                lock(&outstanding).insert(entry.id.clone(), targets.len());
                for t in targets {
                    let batch = batches.entry((app.id.clone(), t)).or_insert_with(|| Batch {
                        started: Instant::now(),
                        entries: Vec::new(),
                    });
                    batch.entries.push(entry.clone());
                }
            }
            if !ack_now.is_empty() {
                let _ = queue.ack(&ack_now).await;
            }
            let now = Instant::now();
            let due: Vec<(herald_core::AppId, usize)> = batches
                .iter()
                .filter(|(_, b)| {
                    b.entries.len() >= config.batch_size || now >= b.started + config.batch_window
                })
                .map(|(k, _)| k.clone())
                .collect();
            for key in due {
                let Some(mut batch) = batches.remove(&key) else {
                    continue;
                };
                let Some(app) = apps.by_id(key.0.as_str()) else {
                    continue;
                };
                // Oversized batches go out in chunks of `batch_size`.
                while !batch.entries.is_empty() {
                    let rest = batch
                        .entries
                        .split_off(batch.entries.len().min(config.batch_size));
                    let chunk = std::mem::replace(&mut batch.entries, rest);
                    let delivery = Delivery {
                        app: app.clone(),
                        endpoint: key.1,
                        entries: chunk,
                        client: client.clone(),
                        config: config.clone(),
                        queue: queue.clone(),
                        streams: streams.clone(),
                        outstanding: outstanding.clone(),
                        metrics: metrics.clone(),
                        hub: hub.clone(),
                    };
                    tokio::spawn(delivery.run());
                }
            }
        }
    });
}

/// Whether an endpoint takes this event: its kind, and the channel filter.
fn takes(w: &WebhookEndpoint, event: &WebhookEvent) -> bool {
    let channel = event.channel();
    w.event_types.contains(&event.kind())
        && w.filter_prefix
            .as_deref()
            .is_none_or(|p| channel.starts_with(p))
        && w.filter_suffix
            .as_deref()
            .is_none_or(|s| channel.ends_with(s))
}

struct Delivery {
    app: Arc<App>,
    endpoint: usize,
    entries: Vec<QueuedWebhook>,
    client: HttpClient,
    config: WebhookConfig,
    queue: Arc<dyn WebhookQueue>,
    streams: Option<Arc<dyn WebhookStreams>>,
    outstanding: Outstanding,
    metrics: Arc<Metrics>,
    hub: herald_core::Hub,
}

impl Delivery {
    /// Shows each event's outcome in the app's console log.
    fn log(&self, outcome: &str) {
        for e in &self.entries {
            let entry = herald_core::console::LogEntry::Webhook {
                kind: e.event.kind().name(),
                channel: e.event.channel(),
                outcome,
            };
            self.hub.console().log(&self.app.id, entry);
        }
    }

    /// Drops the entries this node no longer holds (another node took them over while this
    /// one looked dead): whoever holds an entry sends and acknowledges it. False when none is
    /// left.
    async fn keep_held(&mut self) -> bool {
        let ids: Vec<String> = self.entries.iter().map(|e| e.id.clone()).collect();
        let held = match self.queue.still_held(&ids).await {
            Ok(held) => held,
            // Unknown: send (at least once).
            Err(_) => return !self.entries.is_empty(),
        };
        if held.len() < ids.len() {
            let gone: Vec<&String> = ids.iter().filter(|id| !held.contains(id)).collect();
            tracing::warn!(app = %self.app.id, entries = gone.len(), "webhook entries taken over by another node while this one looked dead; not sent from here");
            let mut out = lock(&self.outstanding);
            for id in &gone {
                out.remove(*id);
            }
            drop(out);
            self.entries.retain(|e| held.contains(&e.id));
        }
        !self.entries.is_empty()
    }

    async fn run(mut self) {
        if !self.keep_held().await {
            return;
        }
        let endpoint = &self.app.webhooks[self.endpoint];
        let events: Vec<WebhookEvent> = self.entries.iter().map(|e| e.event.clone()).collect();
        let time_ms = self
            .entries
            .iter()
            .map(|e| e.time_ms)
            .min()
            .unwrap_or_else(now_ms);
        let payload = Bytes::from(body(time_ms, &events));
        let signature = body_signature(&self.app.secret, &payload);
        let started = Instant::now();
        let mut backoff = self.config.first_backoff;
        let n = self.entries.len();
        loop {
            match self.send(endpoint, &payload, &signature).await {
                Ok(()) => {
                    self.metrics.webhook(&self.app.id, "delivered", n);
                    self.log("delivered");
                    self.metrics
                        .webhook_latency(now_ms().saturating_sub(time_ms));
                    break;
                }
                Err(why) => {
                    self.metrics.webhook(&self.app.id, "failed", n);
                    self.log("failed");
                    if started.elapsed() + backoff > self.config.retry_budget {
                        tracing::error!(app = %self.app.id, target = %endpoint.target, events = n, reason = %why, "webhook dead-lettered after the retry budget");
                        self.metrics.webhook(&self.app.id, "dead_lettered", n);
                        self.log("dead_lettered");
                        for entry in &self.entries {
                            let letter = DeadLetter {
                                entry: entry.clone(),
                                url: endpoint.target.to_string(),
                                reason: why.clone(),
                            };
                            if let Err(e) = self.queue.dead_letter(letter).await {
                                tracing::error!(error = %e, "dead letter not stored");
                            }
                        }
                        break;
                    }
                    tracing::warn!(app = %self.app.id, target = %endpoint.target, reason = %why, retry_in = ?backoff, "webhook delivery failed; retrying");
                    self.metrics.webhook(&self.app.id, "retried", n);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
        let done: Vec<String> = {
            let mut out = lock(&self.outstanding);
            self.entries
                .iter()
                .filter(|e| match out.get_mut(&e.id) {
                    Some(left) if *left > 1 => {
                        *left -= 1;
                        false
                    }
                    _ => {
                        out.remove(&e.id);
                        true
                    }
                })
                .map(|e| e.id.clone())
                .collect()
        };
        if !done.is_empty()
            && let Err(e) = self.queue.ack(&done).await
        {
            tracing::warn!(error = %e, "webhook acknowledgement failed; entries may be delivered again");
        }
    }

    /// One attempt.
    async fn send(
        &self,
        endpoint: &WebhookEndpoint,
        payload: &Bytes,
        signature: &str,
    ) -> Result<(), String> {
        match &endpoint.target {
            WebhookTarget::Http(url) => self.post(url, endpoint, payload, signature).await,
            WebhookTarget::Stream(stream) => {
                let streams = self
                    .streams
                    .as_ref()
                    .ok_or("stream targets need the Redis backplane")?;
                let body = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
                streams
                    .append(stream, body, signature, &self.app.key)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// Any 2xx within the timeout succeeds.
    async fn post(
        &self,
        url: &str,
        endpoint: &WebhookEndpoint,
        payload: &Bytes,
        signature: &str,
    ) -> Result<(), String> {
        let mut req = Request::builder().method(Method::POST).uri(url);
        for (name, value) in &endpoint.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                req = req.header(n, v);
            }
        }
        // Exactly this content type: pusher-http-node compares the whole header.
        let req = req
            .header(CONTENT_TYPE, "application/json")
            .header("X-Pusher-Key", &self.app.key)
            .header("X-Pusher-Signature", signature)
            .body(Full::new(payload.clone()))
            .map_err(|e| format!("invalid request: {e}"))?;
        match tokio::time::timeout(self.config.timeout, self.client.request(req)).await {
            Err(_) => Err(format!("no answer within {:?}", self.config.timeout)),
            Ok(Err(e)) => Err(format!("request failed: {e}")),
            Ok(Ok(res)) if res.status().is_success() => Ok(()),
            Ok(Ok(res)) => Err(format!("answered {}", res.status())),
        }
    }
}
