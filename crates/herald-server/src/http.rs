//! HTTP plumbing shared by the listeners: the body type, JSON responses, the router of the
//! public listener (WebSocket upgrade and HTTP API).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::State;

/// Whole bodies and the console's event stream alike.
pub type Body = UnsyncBoxBody<Bytes, std::convert::Infallible>;

/// A body of known bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// WebSocket `/app/{key}`, plus the HTTP API unless it has its own listener.
    Public { api: bool, tls: bool },
    /// The HTTP API only (`api_bind`).
    Api,
}

pub fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// `{"error": message, "code": status}`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message, "code": status.as_u16() });
    json(status, body.to_string())
}

pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut res = Response::new(full(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
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
