//! The admin listener (default port 9601): `/metrics`, `/health`, `/ready`, `/usage`.

use std::sync::Arc;

use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::State;
use crate::http::{Body, json, json_error, text};

pub async fn route(state: Arc<State>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/metrics" => {
            let mut res = Response::new(Body::new(state.metrics.render(&state.hub).into()));
            res.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            res
        }
        "/health" => text(StatusCode::OK, "OK"),
        "/ready" => {
            if state.hub.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING")
            } else if !state.hub.backplane().is_ready() {
                text(StatusCode::SERVICE_UNAVAILABLE, "BACKPLANE UNAVAILABLE")
            } else if state
                .config
                .max_connections
                .is_some_and(|max| state.hub.connection_count() >= max)
            {
                text(StatusCode::SERVICE_UNAVAILABLE, "FULL")
            } else {
                text(StatusCode::OK, "OK")
            }
        }
        "/usage" => {
            let body = json!({
                "connections": state.hub.connection_count(),
                "memory": { "rss_bytes": rss_bytes() },
            });
            json(StatusCode::OK, body.to_string())
        }
        _ => json_error(
            StatusCode::NOT_FOUND,
            "Not found: try /metrics, /health, /ready or /usage",
        ),
    }
}

/// Resident memory of this process, from /proc (Linux); 0 elsewhere.
pub fn rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
