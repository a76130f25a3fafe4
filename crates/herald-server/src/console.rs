//! The debug console on the admin listener: `/console` (one embedded page) and its JSON/SSE API
//! under `/console/api/`. Every API call needs `Authorization: Bearer <console_token>` (all apps)
//! or `Authorization: Basic base64(key:secret)` (that app). The page itself holds no data.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::stream;
use herald_core::App;
use herald_protocol::api::parse_trigger;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Frame;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use crate::State;
use crate::http::{Body, json, json_error};

const PAGE: &str = include_str!("console/console.html");
/// SSE comment sent when nothing else was, so proxies and the page see the stream alive.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Presence channels whose members the state lists (the rest show counts only).
const MEMBER_LISTS: usize = 50;

pub async fn route(state: Arc<State>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/console" || path == "/console/" {
        return page();
    }
    let Some(rest) = path.strip_prefix("/console/api/") else {
        return json_error(StatusCode::NOT_FOUND, "Not found");
    };
    let Some(apps) = unlocked(&state, &req) else {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "Sign in with the console token, or with an app's key and secret",
        );
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["apps"]) => {
            let list: Vec<Value> = apps
                .iter()
                .map(|a| json!({"id": a.id.as_str(), "key": a.key, "name": a.id.as_str()}))
                .collect();
            json(StatusCode::OK, json!({ "apps": list }).to_string())
        }
        (method, ["apps", id, what]) => {
            let Some(app) = apps.iter().find(|a| a.id == *id).cloned() else {
                return json_error(StatusCode::NOT_FOUND, &format!("No app '{id}' here"));
            };
            match (method, *what) {
                (&Method::GET, "state") => app_state(&state, &app).await,
                (&Method::GET, "log") => log_stream(&state, &app),
                (&Method::POST, "trigger") => trigger(&state, &app, req).await,
                _ => json_error(StatusCode::NOT_FOUND, "Not found"),
            }
        }
        _ => json_error(StatusCode::NOT_FOUND, "Not found"),
    }
}

fn page() -> Response<Body> {
    let mut res = Response::new(crate::http::full(PAGE));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    res
}

/// The apps the request's credentials unlock; None when they unlock nothing.
fn unlocked(state: &State, req: &Request<hyper::body::Incoming>) -> Option<Vec<Arc<App>>> {
    let auth = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, value) = auth.split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = state.config.console_token.as_ref()?;
        return token
            .matches(value)
            .then(|| state.hub.apps().iter().collect());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()?;
        let (key, secret) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        let app = state.hub.apps().by_key(key)?;
        return app.secret.matches(secret).then(|| vec![app.clone()]);
    }
    None
}

/// Cluster-wide channels (with presence members) and connections per node.
async fn app_state(state: &State, app: &App) -> Response<Body> {
    let hub = &state.hub;
    let channels = match hub.backplane().channels.channels(&app.id, "").await {
        Ok(c) => c,
        Err(e) => {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Backplane unavailable: {e}"),
            );
        }
    };
    let mut list = Vec::with_capacity(channels.len());
    let mut member_lists = 0;
    for c in channels {
        let mut entry = json!({"name": c.name, "subscription_count": c.subscription_count});
        if let Some(users) = c.user_count {
            entry["user_count"] = json!(users);
            if member_lists < MEMBER_LISTS
                && let Ok(name) = herald_protocol::ChannelName::parse(&c.name, usize::MAX)
                && let Ok(members) = hub.backplane().presence.members(&app.id, &name).await
            {
                member_lists += 1;
                let members: Vec<Value> = members
                    .iter()
                    .map(|m| {
                        let info = m
                            .user_info
                            .as_deref()
                            .and_then(|i| serde_json::from_str::<Value>(i).ok());
                        json!({"id": m.user_id.as_str(), "info": info})
                    })
                    .collect();
                entry["members"] = json!(members);
            }
        }
        list.push(entry);
    }
    let connections = hub.app_connection_count(app.id.as_str()) as u64;
    let nodes = hub.console().nodes(&app.id, connections);
    let body = json!({
        "app": app.id.as_str(),
        "connections": nodes.iter().map(|(_, n)| n).sum::<u64>(),
        "node_connections": hub.app_connection_count(app.id.as_str()),
        "node": hub.node_id(),
        "nodes": nodes.len(),
        "channels": list,
    });
    json(StatusCode::OK, body.to_string())
}

fn sse(event: &str, data: &str) -> Frame<Bytes> {
    Frame::data(Bytes::from(format!("event: {event}\ndata: {data}\n\n")))
}

/// The app's live log as Server-Sent Events: `log` lines from every node, `dropped` counts
/// when this viewer or a node skipped lines to stay within its bounds.
fn log_stream(state: &State, app: &App) -> Response<Body> {
    let connections = state.hub.app_connection_count(app.id.as_str()) as u64;
    let rx = state.hub.console().viewer(&app.id, connections);
    let first = Frame::data(Bytes::from_static(b": connected\n\n"));
    let lines = stream::unfold(rx, |mut rx| async move {
        let frame = match tokio::time::timeout(KEEPALIVE, rx.recv()).await {
            Err(_) => Frame::data(Bytes::from_static(b": keep-alive\n\n")),
            Ok(Ok(line)) if herald_core::console::is_dropped_line(&line) => sse("dropped", &line),
            Ok(Ok(line)) => sse("log", &line),
            Ok(Err(RecvError::Lagged(n))) => sse("dropped", &json!({ "count": n }).to_string()),
            Ok(Err(RecvError::Closed)) => return None,
        };
        Some((Ok::<_, Infallible>(frame), rx))
    });
    let body = stream::once(async move { Ok::<_, Infallible>(first) });
    let body = StreamBody::new(futures_util::StreamExt::chain(body, lines));
    let mut res = Response::new(body.boxed_unsync());
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// `{"channel","event","data"}`: published like `POST /events`, with the same checks.
async fn trigger(state: &State, app: &App, req: Request<hyper::body::Incoming>) -> Response<Body> {
    // As the HTTP API answers a disabled app's publish.
    if !app.enabled {
        return json_error(StatusCode::FORBIDDEN, "Application disabled");
    }
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return json_error(StatusCode::PAYLOAD_TOO_LARGE, "Body over 64 KB"),
    };
    let Ok(form) = serde_json::from_slice::<Value>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "Body must be a JSON object");
    };
    let api_body = json!({
        "name": form["event"],
        "channels": [form["channel"]],
        "data": form["data"],
    });
    let t = match parse_trigger(api_body.to_string().as_bytes(), &app.limits) {
        Ok(t) => t,
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return json_error(status, e.message());
        }
    };
    for channel in &t.channels {
        if let Err(e) = state
            .hub
            .trigger(app, channel, &t.name, &t.data, None)
            .await
        {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Backplane unavailable: {e}"),
            );
        }
    }
    tracing::info!(app = %app.id, channel = ?t.channels.first().map(|c| c.as_str()), event = %t.name, "test event sent from the console");
    json(StatusCode::OK, "{}".to_owned())
}
