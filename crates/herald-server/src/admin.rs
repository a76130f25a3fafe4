//! The admin listener (default port 9601). Open to anyone who reaches it: `/metrics`,
//! `/health`, `/ready`, `/usage` (counts, no payloads, no secrets). Behind the console's own
//! credentials: `/console`. Behind `admin_token`: `/webhooks/dead-letters` and its replay, which
//! show event payloads.

use std::sync::Arc;

use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::State;
use crate::http::{Body, json, json_error, text};

pub async fn route(state: Arc<State>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    use hyper::Method;
    let allowed: &[Method] = match req.uri().path() {
        "/metrics" | "/health" | "/ready" | "/usage" | "/webhooks/dead-letters" => {
            &[Method::GET, Method::HEAD]
        }
        p if p.starts_with("/openapi/") => &[Method::GET, Method::HEAD],
        "/webhooks/dead-letters/replay" => &[Method::POST],
        "/admin/rebalance" => &[Method::GET, Method::POST],
        _ => &[],
    };
    if !allowed.is_empty() && !allowed.contains(req.method()) {
        let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        let mut res = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{} takes {}", req.uri().path(), names.join(" or ")),
        );
        if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
            res.headers_mut().insert(hyper::header::ALLOW, v);
        }
        return res;
    }
    match req.uri().path() {
        "/openapi/http-api.json" => openapi(HTTP_API_DOC),
        "/openapi/admin-api.json" => openapi(ADMIN_API_DOC),
        "/metrics" => {
            state.metrics.set_ready(readiness(&state).is_ok());
            let mut res = Response::new(crate::http::full(state.metrics.render(&state.hub)));
            res.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            res
        }
        "/health" => text(StatusCode::OK, "OK"),
        p if p == "/console" || p.starts_with("/console/") => {
            crate::console::route(state, req).await
        }
        "/ready" => match readiness(&state) {
            Ok(()) => text(StatusCode::OK, "OK"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        "/admin/rebalance" => {
            let change = if req.method() == hyper::Method::POST {
                Change::Yes
            } else {
                Change::No
            };
            if let Some(refused) = admin_refusal(&state, &req, change) {
                return refused;
            }
            rebalance(&state, req).await
        }
        "/usage" => {
            let body = json!({
                "node": state.hub.node_id(),
                "connections": state.hub.connection_count(),
                "memory": { "rss_bytes": rss_bytes() },
                // The cluster format version in use (null on a single node).
                "cluster_version": state.hub.backplane().health.cluster_version(),
            });
            json(StatusCode::OK, body.to_string())
        }
        p if p == "/admin/apps" || p.starts_with("/admin/apps/") => {
            // Requests with a body must be JSON; rotation and deletion carry none.
            let m = req.method();
            let segments = req.uri().path().trim_end_matches('/').split('/').count();
            let change = if (m == hyper::Method::PATCH && segments == 4)
                || (m == hyper::Method::POST && segments == 3)
            {
                Change::Yes
            } else {
                Change::No
            };
            if let Some(refused) = admin_refusal(&state, &req, change) {
                return refused;
            }
            crate::admin_apps::route(&state, req).await
        }
        "/webhooks/dead-letters" if req.method() == hyper::Method::GET => {
            if let Some(refused) = admin_refusal(&state, &req, Change::No) {
                return refused;
            }
            dead_letters(&state).await
        }
        "/webhooks/dead-letters/replay" if req.method() == hyper::Method::POST => {
            if let Some(refused) = admin_refusal(&state, &req, Change::Yes) {
                return refused;
            }
            match state.hub.hooks().queue().replay_dead_letters(10_000).await {
                Ok(n) => {
                    tracing::info!(replayed = n, "dead-lettered webhooks queued again");
                    json(StatusCode::OK, json!({ "replayed": n }).to_string())
                }
                Err(e) => json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("replay failed: {e}"),
                ),
            }
        }
        _ => json_error(
            StatusCode::NOT_FOUND,
            "Not found: try /metrics, /health, /ready, /usage, /admin/apps, /webhooks/dead-letters or /openapi/admin-api.json",
        ),
    }
}

/// The OpenAPI documents of the HTTP API and of this listener (crates/herald-server/openapi,
/// generated by its generate.py).
const HTTP_API_DOC: &str = include_str!("../openapi/http-api.json");
const ADMIN_API_DOC: &str = include_str!("../openapi/admin-api.json");

fn openapi(doc: &'static str) -> Response<Body> {
    let mut res = Response::new(crate::http::full(doc));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The largest integer every JSON parser reads exactly (2^53 - 1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Whether this node takes new connections (`/ready`), or why not.
pub fn readiness(state: &State) -> Result<(), &'static str> {
    if state.hub.admission().is_draining() {
        Err("DRAINING")
    } else if !state.hub.backplane().health.is_ready() {
        Err("BACKPLANE UNAVAILABLE")
    } else if state.app_store.as_ref().is_some_and(|s| !s.is_loaded()) {
        Err("APPS NOT LOADED")
    } else if state.config.max_connections.is_some_and(|max| {
        // Above the high-water mark the load balancer steers new clients away.
        state.hub.connection_count() * 100 >= max * state.config.ready_high_water_percent as usize
    }) {
        Err("FULL")
    } else {
        Ok(())
    }
}

/// `GET /admin/rebalance`: this node's connections, the cluster mean it sees, what it shed and
/// what is left of a hand-off. `POST` with `{"connections": N}` or `{"percent": P}`: hand that
/// many of this node's connections to other nodes (before maintenance), at the rebalancing pace.
async fn rebalance(state: &State, req: Request<hyper::body::Incoming>) -> Response<Body> {
    use std::sync::atomic::Ordering;
    let own = state.hub.connection_count() as u64;
    if req.method() == hyper::Method::POST {
        use http_body_util::BodyExt;
        let body = match http_body_util::Limited::new(req.into_body(), 4096)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The body must be at most 4 KB",
                );
            }
        };
        let asked: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let one_key = asked.as_object().is_some_and(|o| o.len() == 1);
        let n = match (asked["connections"].as_u64(), asked["percent"].as_f64()) {
            (Some(n), None) if one_key && n <= MAX_SAFE_INTEGER => n,
            (None, Some(p)) if one_key && (0.0..=100.0).contains(&p) => {
                (own as f64 * p / 100.0).round() as u64
            }
            _ => {
                return json_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Send {\"connections\": N} or {\"percent\": P} (0 to 100)",
                );
            }
        };
        state.rebalancer.handoff.store(n.min(own), Ordering::SeqCst);
        tracing::info!(target: "herald::audit", action = "handoff", connections = n.min(own), "hand-off of connections asked through the admin API");
        let body = json!({ "handoff": n.min(own), "connections": own });
        return json(StatusCode::ACCEPTED, body.to_string());
    }
    if req.method() != hyper::Method::GET {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET or POST /admin/rebalance",
        );
    }
    let r = &state.rebalancer;
    let body = json!({
        "node": state.hub.node_id(),
        "connections": own,
        "cluster_mean": r.mean(),
        "shed_total": r.shed.load(Ordering::Relaxed),
        "handoff_pending": r.handoff.load(Ordering::SeqCst),
        "tolerance_percent": state.config.rebalance.tolerance_percent,
    });
    json(StatusCode::OK, body.to_string())
}

/// Whether a request changes state: those must also be ones no browser sends cross-site
/// without a preflight this listener never answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    No,
    Yes,
}

/// The answer refusing a request to an admin surface, or None to admit it. Admitted: `Authorization: Bearer <admin_token>` (constant-time
/// comparison), and for changes a JSON body type. A browser cannot attach either to a
/// cross-site request without a CORS preflight, which fails here, so a page an operator visits
/// cannot replay dead letters. No `admin_token` configured: the surfaces are off (404).
fn admin_refusal(
    state: &State,
    req: &Request<hyper::body::Incoming>,
    change: Change,
) -> Option<Response<Body>> {
    let Some(token) = &state.config.admin_token else {
        return Some(json_error(
            StatusCode::NOT_FOUND,
            "The admin API is off: set admin_token (HERALD_ADMIN_TOKEN) and send Authorization: Bearer <token>",
        ));
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    if !given.is_some_and(|t| token.matches(t)) {
        let mut res = json_error(
            StatusCode::UNAUTHORIZED,
            "Send Authorization: Bearer <admin_token>",
        );
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Some(res);
    }
    let json_body = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    // A request without a body and without a content type (a bare POST, as curl sends it) is
    // fine: what cross-site pages can send without a preflight always carries one.
    let bodiless = req.headers().get(CONTENT_TYPE).is_none()
        && req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
    if change == Change::Yes && !json_body && !bodiless {
        return Some(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Changes need Content-Type: application/json",
        ));
    }
    None
}

/// The most recent webhook deliveries given up on (operators inspect, then fix the endpoint).
async fn dead_letters(state: &State) -> Response<Body> {
    match state.hub.hooks().queue().dead_letters(1000).await {
        Ok(letters) => {
            let items: Vec<serde_json::Value> = letters
                .iter()
                .map(|d| {
                    json!({
                        "id": d.entry.id,
                        "app": d.entry.app.as_str(),
                        "url": herald_core::redact::mask_url(&d.url),
                        "reason": d.reason,
                        "time_ms": d.entry.time_ms,
                        "event": serde_json::from_str::<serde_json::Value>(&d.entry.event.to_json()).unwrap_or_default(),
                    })
                })
                .collect();
            json(StatusCode::OK, json!({ "dead_letters": items }).to_string())
        }
        Err(e) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("dead letters unavailable: {e}"),
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
