//! The `herald` server: configuration, the public listener (WebSocket `/app/{key}` and the HTTP
//! API), the admin listener (metrics, health, readiness), graceful shutdown.
//!
//! **Invariant:** this is the only crate that knows hyper, tungstenite, prometheus and the
//! `config` crate. It moves bytes and runs timers; protocol decisions belong to `herald-core`
//! and `herald-protocol`.

pub mod admin;
pub mod admin_apps;
pub mod app_store;
pub mod cli_apps;
pub mod config;
pub mod console;
pub mod http;
pub mod http_api;
pub mod metrics;
pub mod rebalance;
pub mod router;
pub mod sql_store;
pub mod tls;
pub mod webhook;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_core::hub::HubConfig;
use herald_core::webhook::WebhookStreams;
use herald_core::{Backplane, CloseReason, Hub, MemoryWebhookQueue};
use herald_protocol::ErrorCode;
use herald_redis::{RedisBackplane, RedisConfig};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::AppStoreKind;
pub use crate::config::Config;
use crate::metrics::Metrics;
use crate::router::Role;
use herald_core::store::{AppStore, MemoryAppStore};

/// Everything a request handler needs.
pub struct State {
    pub hub: Hub,
    pub webhook_client: webhook::HttpClient,
    /// Redis streams for `stream` webhook targets (cluster mode).
    pub webhook_streams: Option<Arc<dyn WebhookStreams>>,
    /// The public listener's TLS acceptor when `tls_cert`/`tls_key` are set.
    pub tls: Option<TlsAcceptor>,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub api_rate: http_api::ApiRate,
    pub auth_failures: http_api::AuthFailures,
    /// The app store the admin API writes to (None with `app_store = "file"`).
    pub app_store: Option<Arc<app_store::AppStoreHandle>>,
    /// Connections moved to less loaded nodes, and hand-offs asked for.
    pub rebalancer: rebalance::Rebalancer,
}

/// Listeners bound by the caller (tests bind port 0).
pub struct Listeners {
    pub public: TcpListener,
    pub api: Option<TcpListener>,
    pub admin: TcpListener,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("redis_url: {0}")]
    Backplane(#[source] herald_core::BackplaneError),
    /// The certificate or key could not be loaded; the message names the config key.
    #[error("{0}")]
    Tls(String),
    /// The app store could not be set up; the message names the config key.
    #[error("{0}")]
    AppStore(String),
}

/// The hub for a configuration: the in-memory backplane when no Redis is configured.
pub fn build_state(config: Config) -> Result<Arc<State>, StartError> {
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let mut hub_config = HubConfig {
        activity_timeout: config.activity_timeout,
        pong_timeout: config.pong_timeout,
        outbox_capacity: config.outbox_capacity,
        strict_protocol: config.strict_protocol,
        max_node_connections: config.max_connections,
        p_compat_errors: config.p_compat_errors,
        webhook_debounce: config.webhook_debounce,
        ..HubConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let timed = |b: Backplane| b.timed(metrics.clone());
    // Webhook events wait in process memory on a single node (lost if it dies) and in a Redis
    // stream on a cluster (any node delivers them).
    let mut webhook_streams: Option<Arc<dyn WebhookStreams>> = None;
    let mut store: Option<Arc<dyn AppStore>> = match &config.app_store {
        AppStoreKind::Memory => Some(Arc::new(MemoryAppStore::default())),
        AppStoreKind::Sql { url, table, .. } => Some(
            sql_store::SqlAppStore::new(url, table)
                .map_err(|e| StartError::AppStore(format!("app_store_url: {e}")))?,
        ),
        AppStoreKind::File | AppStoreKind::Redis => None,
    };
    let hub = match &config.redis_url {
        None => Hub::new(
            config.apps.clone(),
            timed(Backplane::memory()),
            Arc::new(MemoryWebhookQueue::default()),
            hub_config,
        ),
        Some(url) => {
            let redis = RedisConfig {
                url: url.clone(),
                tls: config.redis_tls.clone(),
                prefix: config.redis_prefix.clone(),
                heartbeat: config.heartbeat_interval,
                node_timeout: config.node_timeout,
                apps: config.apps.clone(),
                debounce: config.webhook_debounce,
            };
            let (backplane, inbound) =
                RedisBackplane::start(redis).map_err(StartError::Backplane)?;
            hub_config.node_id = backplane.node_id().to_owned();
            let webhooks = backplane.webhook_queue();
            webhook_streams = Some(backplane.clone());
            if config.app_store == AppStoreKind::Redis {
                store = Some(backplane.app_store());
            }
            let hub = Hub::new(
                config.apps.clone(),
                timed(Backplane::new(backplane)),
                webhooks,
                hub_config,
            );
            hub.spawn_inbound(inbound);
            hub
        }
    };
    let webhook_client =
        webhook::http_client(config.webhook_ca_file.as_deref()).map_err(StartError::Tls)?;
    hub.set_metrics(metrics.clone());
    metrics.set_max_connections(config.max_connections);
    let app_store = store.map(|s| {
        let has_redis = config.redis_url.is_some();
        Arc::new(app_store::AppStoreHandle::new(
            s,
            hub.clone(),
            has_redis,
            config.app_cache,
        ))
    });
    Ok(Arc::new(State {
        app_store,
        rebalancer: rebalance::Rebalancer::default(),
        hub,
        webhook_client,
        webhook_streams,
        tls,
        config,
        metrics,
        api_rate: http_api::ApiRate::default(),
        auth_failures: http_api::AuthFailures::default(),
    }))
}

/// Serves until `shutdown` resolves, then closes every connection with 4200 (reconnect now)
/// and returns once they are gone (or after a grace period).
pub async fn run(
    state: Arc<State>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let api_separate = listeners.api.is_some();
    let tls = state.tls.clone();
    let public_role = Role::Public {
        api: !api_separate,
        tls: tls.is_some(),
    };
    let public = accept(
        state.clone(),
        listeners.public,
        Some(public_role),
        tls,
        stop_rx.clone(),
    );
    let mut tasks = vec![tokio::spawn(public)];
    if let Some(api) = listeners.api {
        let api = accept(state.clone(), api, Some(Role::Api), None, stop_rx.clone());
        tasks.push(tokio::spawn(api));
    }
    if let Some(store) = &state.app_store {
        store.spawn();
    }
    rebalance::spawn(state.clone(), state.config.rebalance);
    state.hub.hooks().spawn_debouncer();
    webhook::spawn(
        state.config.apps.clone(),
        state.hub.hooks().queue().clone(),
        state.webhook_streams.clone(),
        state.webhook_client.clone(),
        state.config.webhooks.clone(),
        state.metrics.clone(),
        state.hub.clone(),
    );
    state.hub.spawn_console();
    let admin = tokio::spawn(accept(
        state.clone(),
        listeners.admin,
        None,
        None,
        stop_rx.clone(),
    ));

    shutdown.await;
    tracing::info!("shutting down: refusing new connections, closing open ones with 4200");
    state.hub.admission().drain();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    drain(&state).await;
    state.hub.backplane().health.shutdown().await;
    admin.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Closes every connection with 4200 (pusher-js reconnects at once) in paced batches spread
/// over `drain_secs`, so the clients land on other nodes without a thundering herd, then waits
/// for their sessions to clean up (at most 5 s more).
async fn drain(state: &State) {
    let conns = state.hub.connections();
    let window = state.config.drain_window;
    const STEP: Duration = Duration::from_millis(100);
    let steps = (window.as_millis() / STEP.as_millis()).max(1) as usize;
    let per_step = conns.len().div_ceil(steps).max(1);
    tracing::info!(connections = conns.len(), window = ?window, per_step, "draining");
    let reason =
        CloseReason::from_error(ErrorCode::ReconnectNow, ErrorCode::ReconnectNow.message());
    for (i, batch) in conns.chunks(per_step).enumerate() {
        if i > 0 {
            tokio::time::sleep(STEP).await;
        }
        for conn in batch {
            conn.close(reason.clone());
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while state.hub.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Accepts connections until told to stop. `role` None is the admin listener.
async fn accept(
    state: Arc<State>,
    listener: TcpListener,
    role: Option<Role>,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let timeout = state.config.handshake_timeout;
            match tls {
                None => serve_http(state, role, TokioIo::new(stream), peer).await,
                Some(acceptor) => {
                    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            serve_http(state, role, TokioIo::new(tls_stream), peer).await
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// The TCP peer of a request (in its extensions).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Serves HTTP/1.1 (with upgrades) on one accepted connection.
async fn serve_http<I>(state: Arc<State>, role: Option<Role>, io: I, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let timeout = state.config.handshake_timeout;
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        let state = state.clone();
        async move {
            let res = match role {
                Some(role) => router::route(state, role, req).await,
                None => admin::route(state, req).await,
            };
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(io, service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}
