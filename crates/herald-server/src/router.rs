//! The router of the public and API listeners: WebSocket upgrades at `/app/{key}`, the HTTP
//! API under `/apps/{id}/` (and the Python SDK's `/users/…`), `/` for probes. The admin
//! listener has its own (`admin.rs`).

use std::sync::Arc;

use hyper::{Request, Response, StatusCode};

use crate::State;
use crate::http::{Body, json_error, text};

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// WebSocket `/app/{key}`, plus the HTTP API unless it has its own listener.
    Public { api: bool, tls: bool },
    /// The HTTP API only (`api_bind`).
    Api,
}

/// Routes one request on the public or API listener.
pub async fn route(
    state: Arc<State>,
    role: Role,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let (serves_ws, serves_api, tls) = match role {
        Role::Public { api, tls } => (true, api, tls),
        Role::Api => (false, true, false),
    };
    if serves_ws
        && let Some(key) = path.strip_prefix("/app/")
        && !key.is_empty()
        && !key.contains('/')
    {
        let forwarded_tls = forwarded_tls(&state, &req);
        let key = key.to_owned();
        return crate::ws::upgrade(&state, req, &key, tls || forwarded_tls);
    }
    if serves_api && (path.starts_with("/apps/") || path.starts_with("/users/")) {
        return crate::http_api::handle(&state, req).await;
    }
    if path == "/" {
        return text(StatusCode::OK, "OK");
    }
    json_error(
        StatusCode::NOT_FOUND,
        "Not found: WebSocket clients connect to /app/{key}, the HTTP API lives under /apps/{app_id}/",
    )
}

/// `X-Forwarded-Proto: https` from a `trusted_proxies` peer: the client reached that proxy over
/// TLS. From anyone else the header is a claim the client made itself, and is ignored.
fn forwarded_tls(state: &State, req: &Request<hyper::body::Incoming>) -> bool {
    let trusted = req.extensions().get::<crate::Peer>().is_some_and(|p| {
        let ip = p.0.ip().to_canonical();
        state
            .config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    });
    trusted
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}
