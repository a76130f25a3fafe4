//! The `herald` server: configuration, the public listener (WebSocket `/app/{key}` and the HTTP
//! API), the admin listener (metrics, health, readiness), graceful shutdown.
//!
//! **Invariant:** this is the only crate that knows hyper, tungstenite, prometheus and the
//! `config` crate. It moves bytes and runs timers; protocol decisions belong to `herald-core`
//! and `herald-protocol`.

pub mod admin;
pub mod config;
pub mod http;
pub mod http_api;
pub mod metrics;
pub mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use herald_core::hub::HubConfig;
use herald_core::{CloseReason, Hub, MemoryBackplane};
use herald_protocol::ErrorCode;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::config::Config;
use crate::http::Role;
use crate::metrics::Metrics;

/// Everything a request handler needs.
pub struct State {
    pub hub: Hub,
    pub config: Config,
    pub metrics: Metrics,
}

/// Listeners bound by the caller (tests bind port 0).
pub struct Listeners {
    pub public: TcpListener,
    pub api: Option<TcpListener>,
    pub admin: TcpListener,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "redis_url is set, but this build has no Redis backplane yet (see issue #4); remove redis_url to run a single node"
    )]
    RedisUnsupported,
    #[error(
        "tls_cert/tls_key are set, but native TLS is not built in yet; terminate TLS in a proxy in front of herald"
    )]
    TlsUnsupported,
}

/// The hub for a configuration: the in-memory backplane when no Redis is configured.
pub fn build_state(config: Config) -> Result<Arc<State>, StartError> {
    if config.redis_url.is_some() {
        return Err(StartError::RedisUnsupported);
    }
    if config.tls.is_some() {
        return Err(StartError::TlsUnsupported);
    }
    let hub_config = HubConfig {
        activity_timeout: config.activity_timeout,
        pong_timeout: config.pong_timeout,
        outbox_capacity: config.outbox_capacity,
        strict_protocol: config.strict_protocol,
        max_node_connections: config.max_connections,
        p_compat_errors: config.p_compat_errors,
    };
    let hub = Hub::new(
        config.apps.clone(),
        Arc::new(MemoryBackplane::new()),
        hub_config,
    );
    Ok(Arc::new(State {
        hub,
        config,
        metrics: Metrics::new(),
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
    let tls = false;
    let mut tasks = vec![tokio::spawn(accept(
        state.clone(),
        listeners.public,
        Some(Role::Public {
            api: !api_separate,
            tls,
        }),
        stop_rx.clone(),
    ))];
    if let Some(api) = listeners.api {
        tasks.push(tokio::spawn(accept(
            state.clone(),
            api,
            Some(Role::Api),
            stop_rx.clone(),
        )));
    }
    let admin = tokio::spawn(accept(
        state.clone(),
        listeners.admin,
        None,
        stop_rx.clone(),
    ));

    shutdown.await;
    tracing::info!("shutting down: refusing new connections, closing open ones with 4200");
    state.hub.set_draining();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let reason =
        CloseReason::from_error(ErrorCode::ReconnectNow, ErrorCode::ReconnectNow.message());
    for conn in state.hub.connections() {
        conn.close(reason.clone());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while state.hub.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Accepts connections until told to stop. `role` None is the admin listener.
async fn accept(
    state: Arc<State>,
    listener: TcpListener,
    role: Option<Role>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move {
                    let res = match role {
                        Some(role) => http::route(state, role, req).await,
                        None => admin::route(state, req).await,
                    };
                    Ok::<_, std::convert::Infallible>(res)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}
