//! The Pusher HTTP API (PROTOCOL.md §6): authenticate, then trigger, batch, query channels and
//! users, terminate connections. Answers are JSON; errors are `{"error","code"}`.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use herald_core::App;
use herald_core::backplane::{BackplaneError, Control};
use herald_core::rate::RateWindow;
use herald_protocol::api::{
    ApiError, Info, SignedRequest, Trigger, parse_batch, parse_trigger, verify_request,
};
use herald_protocol::{ChannelKind, ChannelName, UserId};
use http_body_util::{BodyExt, Limited};
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use crate::State;
use crate::http::{Body, json, json_error};

/// One HTTP API failure: either a protocol-level rejection or the backplane being down.
enum Failure {
    Api(ApiError),
    Unavailable(BackplaneError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<BackplaneError> for Failure {
    fn from(e: BackplaneError) -> Self {
        Failure::Unavailable(e)
    }
}

fn bad(status: u16, message: impl Into<String>) -> Failure {
    Failure::Api(ApiError::new(status, message))
}

/// The route of a request under `/apps/{id}/`.
enum Endpoint {
    Events,
    BatchEvents,
    Channels,
    Channel(String),
    ChannelUsers(String),
    TerminateUser(String),
}

impl Endpoint {
    fn label(&self) -> &'static str {
        match self {
            Endpoint::Events => "events",
            Endpoint::BatchEvents => "batch_events",
            Endpoint::Channels => "channels",
            Endpoint::Channel(_) => "channel",
            Endpoint::ChannelUsers(_) => "channel_users",
            Endpoint::TerminateUser(_) => "terminate_connections",
        }
    }

    fn method(&self) -> Method {
        match self {
            Endpoint::Events | Endpoint::BatchEvents | Endpoint::TerminateUser(_) => Method::POST,
            _ => Method::GET,
        }
    }

    fn parse(rest: &[&str]) -> Option<Endpoint> {
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        Some(match rest {
            ["events"] => Endpoint::Events,
            ["batch_events"] => Endpoint::BatchEvents,
            ["channels"] => Endpoint::Channels,
            ["channels", name] => Endpoint::Channel(decode(name)?),
            ["channels", name, "users"] => Endpoint::ChannelUsers(decode(name)?),
            ["users", id, "terminate_connections"] => Endpoint::TerminateUser(decode(id)?),
            _ => return None,
        })
    }
}

pub async fn handle(state: &Arc<State>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let started = Instant::now();
    let request_id = request_id(&req);
    let path = req.uri().path().to_owned();
    let (label, mut res) = match route(state, &path, req.uri().query().unwrap_or("")) {
        Ok((app, endpoint)) => (
            endpoint.label(),
            answer(state, &app, endpoint, &path, req, &request_id).await,
        ),
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::NOT_FOUND);
            ("unknown", json_error(status, &e.message))
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    state
        .metrics
        .http_request(label, res.status().as_u16(), started.elapsed());
    res
}

/// The app and endpoint of a request. `/apps/{id}/…` names the app; the Python SDK (3.x) sends
/// `terminate_user_connections` to `/users/{id}/terminate_connections` without the prefix, so
/// there the app is the one whose key signed the request.
fn route(state: &State, path: &str, query: &str) -> Result<(Arc<App>, Endpoint), ApiError> {
    let not_found = || ApiError::new(404, format!("Unknown HTTP API endpoint {path}"));
    if let Some(rest) = path.strip_prefix("/apps/") {
        let segments: Vec<&str> = rest.split('/').collect();
        let Some((app_id, rest)) = segments.split_first() else {
            return Err(not_found());
        };
        let endpoint = Endpoint::parse(rest).ok_or_else(not_found)?;
        let app = state
            .hub
            .apps()
            .by_id(&percent_decode_str(app_id).decode_utf8_lossy())
            .cloned();
        return app
            .map(|a| (a, endpoint))
            .ok_or_else(|| ApiError::new(404, format!("Unknown app id '{app_id}'")));
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match Endpoint::parse(&segments) {
        Some(endpoint @ Endpoint::TerminateUser(_)) => {
            let key = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "auth_key")
                .map(|(_, v)| v.into_owned());
            let app = key.and_then(|k| state.hub.apps().by_key(&k).cloned());
            app.map(|a| (a, endpoint))
                .ok_or_else(|| ApiError::new(401, "Missing or unknown auth_key"))
        }
        _ => Err(not_found()),
    }
}

/// The caller's `X-Request-Id` when it is short and printable, else a fresh one.
fn request_id(req: &Request<hyper::body::Incoming>) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned)
}

async fn answer(
    state: &State,
    app: &Arc<App>,
    endpoint: Endpoint,
    path: &str,
    req: Request<hyper::body::Incoming>,
    request_id: &str,
) -> Response<Body> {
    if !state.api_rate.allow(app) {
        tracing::info!(app = %app.id, request_id, "HTTP API rate limit reached");
        let mut res = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests for this app; slow down",
        );
        res.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return res;
    }
    match serve(state, app, endpoint, path, req).await {
        Ok(body) => json(StatusCode::OK, body.to_string()),
        Err(Failure::Api(e)) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            if status == StatusCode::UNAUTHORIZED {
                tracing::info!(app = %app.id, path, request_id, reason = %e.message, "HTTP API request refused");
            }
            json_error(status, &e.message)
        }
        Err(Failure::Unavailable(e)) => {
            tracing::error!(app = %app.id, path, request_id, error = %e, "HTTP API request failed: backplane unavailable");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Backplane unavailable, try again shortly",
            )
        }
    }
}

/// Per-app request budget of this node (`api_requests_per_second`).
#[derive(Default)]
pub struct ApiRate {
    windows: std::sync::Mutex<std::collections::HashMap<String, RateWindow>>,
}

impl ApiRate {
    fn allow(&self, app: &App) -> bool {
        let Some(limit) = app.limits.api_requests_per_second else {
            return true;
        };
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows
            .entry(app.id.clone())
            .or_insert_with(|| RateWindow::new(limit))
            .allow(tokio::time::Instant::now())
    }
}

async fn serve(
    state: &State,
    app: &App,
    endpoint: Endpoint,
    path: &str,
    req: Request<hyper::body::Incoming>,
) -> Result<Value, Failure> {
    if req.method() != endpoint.method() {
        return Err(bad(405, format!("{} expects {}", path, endpoint.method())));
    }
    let method = req.method().as_str().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let limit = state.config.max_request_body_bytes;
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(bad(
                413,
                format!("Request body over the limit of {limit} bytes"),
            ));
        }
    };
    let signed = SignedRequest {
        method: &method,
        path,
        query: &query,
        body: &body,
    };
    verify_request(
        &signed,
        &app.key,
        &app.secret,
        now_secs(),
        app.limits.max_timestamp_skew_secs,
    )?;
    if !app.enabled {
        return Err(bad(403, "Application disabled"));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let hub = &state.hub;
    match endpoint {
        Endpoint::Events => {
            let t = parse_trigger(&body, &app.limits)?;
            publish(state, app, &t).await?;
            let channels = info_for(state, app, &t).await?;
            Ok(if t.info.is_empty() {
                json!({})
            } else {
                json!({ "channels": channels })
            })
        }
        Endpoint::BatchEvents => {
            let batch = parse_batch(&body, &app.limits)?;
            let mut answers = Vec::with_capacity(batch.len());
            for t in &batch {
                publish(state, app, t).await?;
            }
            for t in &batch {
                let mut info = info_for(state, app, t).await?;
                let entry = t
                    .channels
                    .first()
                    .and_then(|c| info.remove(c.as_str()))
                    .unwrap_or_else(|| json!({}));
                answers.push(entry);
            }
            let any_info = batch.iter().any(|t| !t.info.is_empty());
            Ok(if any_info {
                json!({ "batch": answers })
            } else {
                json!({})
            })
        }
        Endpoint::Channels => {
            let prefix = param("filter_by_prefix").unwrap_or("");
            let info = Info::parse(param("info").unwrap_or(""))?;
            if info.cache {
                return Err(bad(
                    400,
                    "info=cache is only available on GET /channels/{name}",
                ));
            }
            if info.user_count && !prefix.starts_with("presence-") {
                return Err(bad(
                    400,
                    "info=user_count requires filter_by_prefix=presence-…",
                ));
            }
            let mut out = Map::new();
            for c in hub.backplane().channels(&app.id, prefix).await? {
                let mut entry = Map::new();
                if info.user_count {
                    entry.insert("user_count".into(), json!(c.user_count.unwrap_or(0)));
                }
                if info.subscription_count {
                    entry.insert("subscription_count".into(), json!(c.subscription_count));
                }
                out.insert(c.name, Value::Object(entry));
            }
            Ok(json!({ "channels": out }))
        }
        Endpoint::Channel(name) => {
            let channel = channel_name(app, &name)?;
            let info = Info::parse(param("info").unwrap_or(""))?;
            info.check_for_channel(&channel)?;
            let counts = hub.backplane().channel(&app.id, &channel).await?;
            let mut out = Map::new();
            out.insert("occupied".into(), json!(counts.subscription_count > 0));
            if info.user_count {
                out.insert("user_count".into(), json!(counts.user_count.unwrap_or(0)));
            }
            if info.subscription_count {
                out.insert(
                    "subscription_count".into(),
                    json!(counts.subscription_count),
                );
            }
            if info.cache {
                let cache = hub.backplane().cache_get(&app.id, &channel).await?;
                out.insert(
                    "cache".into(),
                    cache.map_or(
                        Value::Null,
                        |c| json!({ "data": c.data, "ttl": c.ttl.as_secs() }),
                    ),
                );
            }
            Ok(Value::Object(out))
        }
        Endpoint::ChannelUsers(name) => {
            let channel = channel_name(app, &name)?;
            if channel.kind() != ChannelKind::Presence {
                return Err(bad(400, "Users can only be listed for presence channels"));
            }
            let members = hub.backplane().members(&app.id, &channel).await?;
            let users: Vec<Value> = members
                .iter()
                .map(|m| json!({ "id": m.user_id.as_str() }))
                .collect();
            Ok(json!({ "users": users }))
        }
        Endpoint::TerminateUser(id) => {
            let user = UserId::parse(&id, app.limits.max_user_id_len)
                .ok_or_else(|| bad(400, "Invalid user id"))?;
            hub.control(&app.id, Control::TerminateUser(user)).await?;
            Ok(json!({}))
        }
    }
}

fn channel_name(app: &App, name: &str) -> Result<ChannelName, Failure> {
    ChannelName::parse(name, app.limits.max_channel_name_len)
        .map_err(|e| bad(400, format!("Invalid channel name '{name}': {e}")))
}

async fn publish(state: &State, app: &App, t: &Trigger) -> Result<(), Failure> {
    for channel in &t.channels {
        state
            .hub
            .trigger(app, channel, &t.name, &t.data, t.socket_id.clone())
            .await?;
    }
    state.metrics.api_event_published(&app.id, t.channels.len());
    Ok(())
}

/// The `info` answer of a trigger: each requested attribute where it applies.
async fn info_for(state: &State, app: &App, t: &Trigger) -> Result<Map<String, Value>, Failure> {
    let mut out = Map::new();
    if t.info.is_empty() {
        return Ok(out);
    }
    for channel in &t.channels {
        let counts = state.hub.backplane().channel(&app.id, channel).await?;
        let mut entry = Map::new();
        if t.info.user_count && channel.kind() == ChannelKind::Presence {
            entry.insert("user_count".into(), json!(counts.user_count.unwrap_or(0)));
        }
        if t.info.subscription_count && channel.kind() != ChannelKind::ServerToUser {
            entry.insert(
                "subscription_count".into(),
                json!(counts.subscription_count),
            );
        }
        out.insert(channel.as_str().to_owned(), Value::Object(entry));
    }
    Ok(out)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
