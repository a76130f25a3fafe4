//! The Pusher HTTP API (PROTOCOL.md §6): authenticate, then trigger, batch, query channels and
//! users, terminate connections. Answers are JSON; errors are `{"error","code"}`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_core::backplane::{BackplaneError, Control};
use herald_core::rate::RateWindow;
use herald_core::{App, AppId};
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

impl Failure {
    /// The answer: the status the refusal's variant decides, or 503 when the backplane is down.
    fn response(&self) -> Response<Body> {
        match self {
            Failure::Api(ApiError::TooManyRequests(message)) => too_many(message, 1),
            Failure::Api(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
                json_error(status, e.message())
            }
            Failure::Unavailable(_) => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Backplane unavailable, try again shortly",
            ),
        }
    }
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
    let query = req.uri().query().unwrap_or("").to_owned();
    let mut routed = route(state, &path, &query);
    // An app this node does not know may be one just added to a SQL store: looked up once.
    if let (Err(_), Some(store)) = (&routed, &state.app_store)
        && store.store.looks_up()
    {
        let found = match path
            .strip_prefix("/apps/")
            .and_then(|r| r.split('/').next())
        {
            Some(id) => {
                let id = percent_decode_str(id).decode_utf8_lossy();
                state.hub.apps().by_id(&id).is_none()
                    && store.lookup(crate::app_store::Lookup::Id(&id)).await
            }
            None => {
                let key = form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == "auth_key")
                    .map(|(_, v)| v.into_owned());
                match key {
                    Some(k) => store.lookup(crate::app_store::Lookup::Key(&k)).await,
                    None => false,
                }
            }
        };
        if found {
            routed = route(state, &path, &query);
        }
    }
    let (label, mut res) = match routed {
        Ok((app, endpoint)) => (
            endpoint.label(),
            answer(state, &app, endpoint, &path, req, &request_id).await,
        ),
        Err(e) => ("unknown", Failure::Api(e).response()),
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
    let not_found = || ApiError::NotFound(format!("Unknown HTTP API endpoint {path}"));
    if let Some(rest) = path.strip_prefix("/apps/") {
        let segments: Vec<&str> = rest.split('/').collect();
        let Some((app_id, rest)) = segments.split_first() else {
            return Err(not_found());
        };
        let endpoint = Endpoint::parse(rest).ok_or_else(not_found)?;
        let app = state
            .hub
            .apps()
            .by_id(&percent_decode_str(app_id).decode_utf8_lossy());
        return app
            .map(|a| (a, endpoint))
            .ok_or_else(|| ApiError::NotFound(format!("Unknown app id '{app_id}'")));
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match Endpoint::parse(&segments) {
        Some(endpoint @ Endpoint::TerminateUser(_)) => {
            let key = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "auth_key")
                .map(|(_, v)| v.into_owned());
            let app = key.and_then(|k| state.hub.apps().by_key(&k));
            app.map(|a| (a, endpoint))
                .ok_or_else(|| ApiError::Unauthorized("Missing or unknown auth_key".into()))
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
    let addr = client_addr(state, &req);
    match serve(state, app, endpoint, path, req).await {
        Ok(body) => json(StatusCode::OK, body.to_string()),
        Err(Failure::Api(ApiError::Unauthorized(message))) => {
            let limit = state.config.api_auth_failures_per_minute;
            let failures = addr.map(|addr| {
                let n = state.auth_failures.record(&app.id, addr, Instant::now());
                (addr, n)
            });
            match failures {
                Some((addr, n)) if limit > 0 && n > limit => {
                    if n == limit + 1 {
                        tracing::warn!(app = %app.id, client = %addr, limit, "HTTP API signature failures over the limit; further ones from this address get 429 for the rest of the minute");
                    }
                    let retry = state
                        .auth_failures
                        .retry_after(&app.id, addr, Instant::now());
                    too_many(
                        &format!(
                            "Too many requests with a bad signature from {addr}; retry in {retry} s with a correct one"
                        ),
                        retry,
                    )
                }
                _ => {
                    tracing::info!(app = %app.id, path, request_id, client = ?addr, reason = %message, "HTTP API request refused");
                    json_error(StatusCode::UNAUTHORIZED, &message)
                }
            }
        }
        Err(failure) => {
            match &failure {
                Failure::Api(ApiError::TooManyRequests(_)) => {
                    tracing::info!(app = %app.id, request_id, "HTTP API rate limit reached");
                }
                Failure::Unavailable(e) => {
                    tracing::error!(app = %app.id, path, request_id, error = %e, "HTTP API request failed: backplane unavailable");
                }
                Failure::Api(_) => {}
            }
            failure.response()
        }
    }
}

/// Per-app request budget (`api_requests_per_second`): one budget for the whole cluster, kept
/// by the backplane (one Redis round trip per request; per node on the in-memory backplane).
/// While the backplane cannot answer, this node keeps the budget by itself.
#[derive(Default)]
pub struct ApiRate {
    windows: std::sync::Mutex<std::collections::HashMap<AppId, RateWindow>>,
}

impl ApiRate {
    async fn allow(&self, state: &State, app: &App) -> bool {
        let Some(limit) = app.limits.api_requests_per_second else {
            return true;
        };
        match state
            .hub
            .backplane()
            .quota
            .api_request(&app.id, limit)
            .await
        {
            Ok(fits) => fits,
            Err(_) => {
                let mut windows = herald_core::sync::lock(&self.windows);
                windows
                    .entry(app.id.clone())
                    .or_insert_with(|| RateWindow::new(limit))
                    .allow_at_most(limit, tokio::time::Instant::now())
            }
        }
    }
}

/// HTTP API signature failures per (app, client address) over a minute. Past
/// `api_auth_failures_per_minute`, further failures from that address get 429 instead of 401
/// (and no log line each) until the minute ends. Correctly signed requests always pass, so
/// nobody can lock an app server out by failing from its address.
#[derive(Default)]
pub struct AuthFailures {
    windows: std::sync::Mutex<std::collections::HashMap<(AppId, IpAddr), (Instant, u32)>>,
}

const AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Entries kept at most; beyond, expired windows are swept (and if all are live, the older
/// half goes): a flood of addresses cannot grow memory without bound.
const AUTH_ENTRIES: usize = 100_000;

impl AuthFailures {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(AppId, IpAddr), (Instant, u32)>> {
        herald_core::sync::lock(&self.windows)
    }

    /// Counts a failure; the failures of this window so far, this one included.
    fn record(&self, app: &AppId, addr: IpAddr, now: Instant) -> u32 {
        let mut windows = self.lock();
        if windows.len() >= AUTH_ENTRIES {
            windows.retain(|_, (start, _)| now.duration_since(*start) < AUTH_WINDOW);
            if windows.len() >= AUTH_ENTRIES {
                let mut starts: Vec<Instant> = windows.values().map(|(s, _)| *s).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                windows.retain(|_, (start, _)| *start > cut);
            }
        }
        let entry = windows.entry((app.to_owned(), addr)).or_insert((now, 0));
        if now.duration_since(entry.0) >= AUTH_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }

    /// Whole seconds (at least 1) until the address's window ends.
    fn retry_after(&self, app: &AppId, addr: IpAddr, now: Instant) -> u64 {
        let windows = self.lock();
        windows
            .get(&(app.to_owned(), addr))
            .and_then(|(start, _)| AUTH_WINDOW.checked_sub(now.duration_since(*start)))
            .map_or(1, |left| left.as_secs().max(1))
    }
}

fn too_many(message: &str, retry_secs: u64) -> Response<Body> {
    let mut res = json_error(StatusCode::TOO_MANY_REQUESTS, message);
    if let Ok(v) = HeaderValue::from_str(&retry_secs.to_string()) {
        res.headers_mut().insert("retry-after", v);
    }
    res
}

/// The caller's address: the configured proxy header's last entry (the one the proxy added;
/// earlier entries come from the client and may be forged), else the TCP peer.
pub(crate) fn client_addr(state: &State, req: &Request<hyper::body::Incoming>) -> Option<IpAddr> {
    let from_header = state.config.client_ip_header.as_ref().and_then(|h| {
        let value = req.headers().get(h.as_str())?.to_str().ok()?;
        value.rsplit(',').next()?.trim().parse().ok()
    });
    from_header.or_else(|| req.extensions().get::<crate::Peer>().map(|p| p.0.ip()))
}

async fn serve(
    state: &State,
    app: &App,
    endpoint: Endpoint,
    path: &str,
    req: Request<hyper::body::Incoming>,
) -> Result<Value, Failure> {
    if req.method() != endpoint.method() {
        return Err(Failure::from(ApiError::MethodNotAllowed(format!(
            "{} expects {}",
            path,
            endpoint.method()
        ))));
    }
    let method = req.method().as_str().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = read_body(state, req).await?;
    let signed = SignedRequest {
        method: &method,
        path,
        query: &query,
        body: &body,
    };
    admit(app, &signed)?;
    // Only signed requests of an enabled app count against its budget: strangers cannot
    // spend it.
    if !state.api_rate.allow(state, app).await {
        return Err(Failure::from(ApiError::TooManyRequests(
            "Too many requests for this app; slow down".into(),
        )));
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
    match endpoint {
        Endpoint::Events => events(state, app, &body).await,
        Endpoint::BatchEvents => batch_events(state, app, &body).await,
        Endpoint::Channels => {
            let prefix = param("filter_by_prefix").unwrap_or("");
            channels(state, app, prefix, param("info").unwrap_or("")).await
        }
        Endpoint::Channel(name) => channel(state, app, &name, param("info").unwrap_or("")).await,
        Endpoint::ChannelUsers(name) => channel_users(state, app, &name).await,
        Endpoint::TerminateUser(id) => {
            let user = UserId::parse(&id, app.limits.max_user_id_len)
                .ok_or_else(|| Failure::from(ApiError::BadRequest("Invalid user id".into())))?;
            state
                .hub
                .control(&app.id, Control::TerminateUser(user))
                .await?;
            Ok(json!({}))
        }
    }
}

/// The request body, within `max_request_body_kb` (an announced length over it is refused
/// before anything is read) and within the handshake timeout (a trickle is cut off).
async fn read_body(
    state: &State,
    req: Request<hyper::body::Incoming>,
) -> Result<bytes::Bytes, Failure> {
    let limit = state.config.max_request_body_bytes;
    let too_large = || {
        Failure::from(ApiError::TooLarge(format!(
            "Request body over the limit of {limit} bytes"
        )))
    };
    let announced = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(state.config.handshake_timeout, collect).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(_)) => Err(too_large()),
        Err(_) => Err(Failure::from(ApiError::Timeout(format!(
            "Request body not received within {} s",
            state.config.handshake_timeout.as_secs()
        )))),
    }
}

/// A correctly signed request of an enabled app.
/// During a rotation's grace the previous secret verifies too.
fn admit(app: &App, signed: &SignedRequest<'_>) -> Result<(), Failure> {
    let now = now_secs();
    let skew = app.limits.max_timestamp_skew_secs;
    let verified = |secret| verify_request(signed, &app.key, secret, now, skew);
    // The current secret's refusal is the one a caller sees.
    let current = verified(&app.secret);
    if current.is_err() && !app.verifying_secrets().skip(1).any(|s| verified(s).is_ok()) {
        current?;
    }
    if !app.enabled {
        return Err(Failure::from(ApiError::Forbidden(
            "Application disabled".into(),
        )));
    }
    Ok(())
}

/// `POST /events`.
async fn events(state: &State, app: &App, body: &[u8]) -> Result<Value, Failure> {
    let t = parse_trigger(body, &app.limits)?;
    publish(state, app, &t).await?;
    let channels = info_for(state, app, &t).await?;
    Ok(if t.info.is_empty() {
        json!({})
    } else {
        json!({ "channels": channels })
    })
}

/// `POST /batch_events`: all published, then the info each asked for.
async fn batch_events(state: &State, app: &App, body: &[u8]) -> Result<Value, Failure> {
    let batch = parse_batch(body, &app.limits)?;
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

/// `GET /channels`.
async fn channels(state: &State, app: &App, prefix: &str, info: &str) -> Result<Value, Failure> {
    let info = Info::parse(info)?;
    if info.cache {
        return Err(Failure::from(ApiError::BadRequest(
            "info=cache is only available on GET /channels/{name}".into(),
        )));
    }
    if info.user_count && !ChannelKind::prefix_selects_presence_only(prefix) {
        return Err(Failure::from(ApiError::BadRequest(
            "info=user_count requires filter_by_prefix=presence-…".into(),
        )));
    }
    let mut out = Map::new();
    let listed = state
        .hub
        .backplane()
        .channels
        .channels(&app.id, prefix)
        .await?;
    for c in listed {
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

/// `GET /channels/{name}`.
async fn channel(state: &State, app: &App, name: &str, info: &str) -> Result<Value, Failure> {
    let bp = state.hub.backplane();
    let channel = channel_name(app, name)?;
    let info = Info::parse(info)?;
    info.check_for_channel(&channel)?;
    let counts = bp.channels.channel(&app.id, &channel).await?;
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
        let cache = bp.cache.get(&app.id, &channel).await?;
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

/// `GET /channels/{name}/users`.
async fn channel_users(state: &State, app: &App, name: &str) -> Result<Value, Failure> {
    let channel = channel_name(app, name)?;
    if channel.kind() != ChannelKind::Presence {
        return Err(Failure::from(ApiError::BadRequest(
            "Users can only be listed for presence channels".into(),
        )));
    }
    let members = state
        .hub
        .backplane()
        .presence
        .members(&app.id, &channel)
        .await?;
    let users: Vec<Value> = members
        .iter()
        .map(|m| json!({ "id": m.user_id.as_str() }))
        .collect();
    Ok(json!({ "users": users }))
}

fn channel_name(app: &App, name: &str) -> Result<ChannelName, Failure> {
    ChannelName::parse(name, app.limits.max_channel_name_len).map_err(|e| {
        Failure::from(ApiError::BadRequest(format!(
            "Invalid channel name '{name}': {e}"
        )))
    })
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
        let counts = state
            .hub
            .backplane()
            .channels
            .channel(&app.id, channel)
            .await?;
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
