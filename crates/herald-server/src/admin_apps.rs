//! `/admin/apps` on the admin listener, behind `admin_token` (checked by `admin::route`): list,
//! create, read, change, delete apps and rotate their secrets in the app store. Apps of the
//! config file are listed but read-only (409). A secret is shown only in the answers to a
//! creation and a rotation. Every change is logged once on target `herald::audit` (who, what,
//! which keys; never a value).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use herald_core::store::{StoredApp, Written};

use crate::State;
use crate::app_store::AppStoreHandle;
use crate::config::{
    PREVIOUS_SECRET, PREVIOUS_SECRET_UNTIL_MS, UNKNOWN_APP_KEY, app_from_record, app_view,
    is_app_key,
};
use crate::http::{Body, json as json_response};

/// Largest request body (an app's record).
const MAX_BODY: usize = 64 * 1024;

/// A refusal: status and message, and for 422 the key at fault.
struct Refusal(StatusCode, String, Option<String>);

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal(status, message.into(), None)
    }

    fn invalid(key: &str, message: impl Into<String>) -> Refusal {
        let message = message.into();
        let message = if key.is_empty() {
            message
        } else {
            format!("{key}: {message}")
        };
        Refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            message,
            Some(key.to_owned()),
        )
    }

    fn response(self) -> Response<Body> {
        let Refusal(status, message, key) = self;
        let mut body = json!({ "error": message, "code": status.as_u16() });
        if let Some(key) = key {
            body["key"] = Value::String(key);
        }
        json_response(status, body.to_string())
    }
}

type Answer = Result<(StatusCode, Value), Refusal>;

pub async fn route(state: &State, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let rest = path.trim_start_matches("/admin/apps").trim_matches('/');
    let segments: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let actor = actor(state, &req);
    let method = req.method().clone();
    let answer = match (&method, segments.as_slice()) {
        (&Method::GET, []) => Ok(list(state)),
        (&Method::POST, []) => match body(req).await {
            Ok(fields) => create(state, fields, &actor).await,
            Err(r) => Err(r),
        },
        (&Method::GET, [id]) => get(state, id),
        (&Method::PATCH, [id]) => match body(req).await {
            Ok(fields) => update(state, id, fields, &actor).await,
            Err(r) => Err(r),
        },
        (&Method::DELETE, [id]) => delete(state, id, &actor).await,
        (&Method::POST, [id, action]) if action == "rotate-secret" => {
            rotate(state, id, &actor).await
        }
        (_, [_, action]) if action == "rotate-secret" => Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}: POST rotates the secret"),
        )),
        (_, [] | [_]) => Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{method} is not allowed on {path}: GET and POST /admin/apps; GET, PATCH and DELETE /admin/apps/{{id}}; POST /admin/apps/{{id}}/rotate-secret"
            ),
        )),
        _ => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("Not found: {path}"),
        )),
    };
    let allow = match segments.len() {
        0 => "GET, POST",
        1 => "GET, PATCH, DELETE",
        _ => "POST",
    };
    if let Err(r) = &answer
        && r.0 == StatusCode::METHOD_NOT_ALLOWED
    {
        let mut res = Refusal(r.0, r.1.clone(), None).response();
        res.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static(allow),
        );
        return res;
    }
    match answer {
        Ok((StatusCode::NO_CONTENT, _)) => {
            let mut res = Response::new(crate::http::full(""));
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        }
        Ok((status, body)) => json_response(status, body.to_string()),
        Err(refusal) => refusal.response(),
    }
}

/// Who made a change, for the audit log: the admin token's holder at this address.
fn actor(state: &State, req: &Request<Incoming>) -> String {
    let addr = crate::http_api::client_addr(state, req).map_or("?".into(), |a| a.to_string());
    format!("admin_token@{addr}")
}

async fn body(req: Request<Incoming>) -> Result<Map<String, Value>, Refusal> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The body must be at most {} KB", MAX_BODY / 1024),
            )
        })?
        .to_bytes();
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(Refusal::invalid(
            "",
            "expected a JSON object with the [[apps]] keys",
        )),
        Err(e) => Err(Refusal::invalid("", format!("not JSON: {e}"))),
    }
}

/// The store the API writes to; refused when apps come from the file only.
fn store(state: &State) -> Result<&AppStoreHandle, Refusal> {
    let store = state.app_store.as_deref().ok_or_else(|| {
        Refusal::new(
            StatusCode::CONFLICT,
            "Apps come from the config file (app_store = \"file\"): set app_store = \"redis\" (or \"memory\" on one node) to manage apps through this API",
        )
    })?;
    if !store.store.writable() {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            format!(
                "Apps come from a database table (app_store = \"{}\"), which is read-only here: change its rows",
                state.config.app_store.name()
            ),
        ));
    }
    Ok(store)
}

fn from_file(state: &State, id: &str) -> Result<(), Refusal> {
    if state.hub.apps().is_fixed(id) {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            format!(
                "App '{id}' comes from the config file and is read-only here: change it in the file"
            ),
        ));
    }
    Ok(())
}

fn unavailable(e: herald_core::BackplaneError) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("The app store is unavailable: {e}"),
    )
}

fn view(state: &State, app: &herald_core::App) -> Value {
    let mut v = app_view(app);
    let source = if state.hub.apps().is_fixed(app.id.as_str()) {
        "file"
    } else {
        "store"
    };
    v["source"] = Value::String(source.into());
    if let Some(p) = app.previous_secret.as_ref() {
        v["previous_secret_until_ms"] = json!(ms(p.until));
    }
    v
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn list(state: &State) -> (StatusCode, Value) {
    let mut apps: Vec<Value> = state.hub.apps().iter().map(|a| view(state, &a)).collect();
    apps.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    (StatusCode::OK, json!({ "apps": apps }))
}

fn get(state: &State, id: &str) -> Answer {
    match state.hub.apps().by_id(id) {
        Some(app) => Ok((StatusCode::OK, view(state, &app))),
        None => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("No app '{id}'"),
        )),
    }
}

/// A random lowercase hex string of `bytes` bytes.
fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// The record of `fields`, validated; the answer when not.
fn validated(state: &State, fields: &Map<String, Value>) -> Result<StoredApp, Refusal> {
    let record = Value::Object(fields.clone()).to_string();
    let app = app_from_record(&record, state.config.redis_url.is_some())
        .map_err(|e| Refusal::invalid(&e.key, e.message))?;
    let apps = state.hub.apps().snapshot();
    if let Some(other) = apps
        .by_key(&app.key)
        .filter(|o| o.id != app.id && apps.is_fixed(o.id.as_str()))
    {
        return Err(Refusal::new(
            StatusCode::CONFLICT,
            format!(
                "Key '{}' belongs to app '{}' of the config file",
                app.key, other.id
            ),
        ));
    }
    Ok(StoredApp {
        id: app.id.to_string(),
        key: app.key.clone(),
        record,
    })
}

/// Ok when the write was done, else the answer saying why not.
fn done(written: Written, id: &str) -> Result<(), Refusal> {
    match written {
        Written::Done => Ok(()),
        other => Err(refused(other, id)),
    }
}

/// Answers that depend only on how a write went.
fn refused(written: Written, id: &str) -> Refusal {
    match written {
        Written::IdTaken => Refusal::new(
            StatusCode::CONFLICT,
            format!("An app with id '{id}' exists"),
        ),
        Written::KeyTaken => Refusal::new(StatusCode::CONFLICT, "That key belongs to another app"),
        Written::NotFound => Refusal::new(StatusCode::NOT_FOUND, format!("No app '{id}'")),
        Written::Conflict | Written::Done => Refusal::new(
            StatusCode::CONFLICT,
            format!("App '{id}' was changed by someone else meanwhile; read it again and retry"),
        ),
    }
}

/// Applies the change on this node before answering (other nodes follow the announcement).
async fn reload(store: &AppStoreHandle) {
    if let Err(e) = store.reload().await {
        tracing::warn!(error = %e, "app store not read after a change; the next reload applies it");
    }
}

/// A key set to null (the default) must still be one of the `[[apps]]` keys: dropped unchecked,
/// a misspelt key would be accepted without effect.
fn known_keys(fields: &Map<String, Value>) -> Result<(), Refusal> {
    match fields.iter().find(|(k, v)| v.is_null() && !is_app_key(k)) {
        Some((k, _)) => Err(Refusal::invalid(k, UNKNOWN_APP_KEY)),
        None => Ok(()),
    }
}

async fn create(state: &State, mut fields: Map<String, Value>, actor: &str) -> Answer {
    let store = store(state)?;
    known_keys(&fields)?;
    // null: the default, as if absent.
    fields.retain(|_, v| !v.is_null());
    for reserved in [PREVIOUS_SECRET, PREVIOUS_SECRET_UNTIL_MS] {
        if fields.contains_key(reserved) {
            return Err(Refusal::invalid(reserved, "is set by rotate-secret"));
        }
    }
    // Pusher's dashboard makes these up; so does this API when they are not given.
    let id = match fields.get("id") {
        None => {
            let id = (1_000_000 + rand::random::<u32>() % 9_000_000).to_string();
            fields.insert("id".into(), Value::String(id.clone()));
            id
        }
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(Refusal::invalid("id", "must be a string")),
    };
    fields
        .entry("key")
        .or_insert_with(|| Value::String(random_hex(10)));
    fields
        .entry("secret")
        .or_insert_with(|| Value::String(random_hex(16)));
    from_file(state, &id)?;
    let stored = validated(state, &fields)?;
    done(store.store.create(&stored).await.map_err(unavailable)?, &id)?;
    tracing::info!(target: "herald::audit", actor, action = "create", app = %id, "app created through the admin API");
    reload(store).await;
    let secret = fields.get("secret").cloned().unwrap_or_default();
    let mut body = match app_from_record(&stored.record, state.config.redis_url.is_some()) {
        Ok(app) => view(state, &app),
        Err(_) => json!({ "id": id }),
    };
    body["source"] = Value::String("store".into());
    body["secret"] = secret;
    Ok((StatusCode::CREATED, body))
}

/// The stored app, or why there is none to change.
async fn stored(state: &State, store: &AppStoreHandle, id: &str) -> Result<StoredApp, Refusal> {
    from_file(state, id)?;
    store
        .store
        .get(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, format!("No app '{id}'")))
}

fn record_fields(app: &StoredApp) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_str(&app.record) {
        Ok(Value::Object(fields)) => Ok(fields),
        _ => Err(Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("The stored record of app '{}' is not a JSON object", app.id),
        )),
    }
}

async fn update(state: &State, id: &str, patch: Map<String, Value>, actor: &str) -> Answer {
    let store = store(state)?;
    if patch.get("id").is_some_and(|v| v.as_str() != Some(id)) {
        return Err(Refusal::invalid(
            "id",
            "cannot change; create a new app instead",
        ));
    }
    for secret in ["secret", PREVIOUS_SECRET, PREVIOUS_SECRET_UNTIL_MS] {
        if patch.contains_key(secret) {
            return Err(Refusal::invalid(
                secret,
                format!("cannot be set; rotate it with POST /admin/apps/{id}/rotate-secret"),
            ));
        }
    }
    known_keys(&patch)?;
    let current = stored(state, store, id).await?;
    let mut fields = record_fields(&current)?;
    for (k, v) in &patch {
        // null: back to the default.
        if v.is_null() {
            fields.remove(k);
        } else {
            fields.insert(k.clone(), v.clone());
        }
    }
    let next = validated(state, &fields)?;
    done(
        store
            .store
            .update(&current, &next)
            .await
            .map_err(unavailable)?,
        id,
    )?;
    let keys: Vec<&str> = patch.keys().map(String::as_str).collect();
    tracing::info!(target: "herald::audit", actor, action = "update", app = %id, keys = %keys.join(","), "app changed through the admin API");
    reload(store).await;
    get(state, id)
}

async fn delete(state: &State, id: &str, actor: &str) -> Answer {
    let store = store(state)?;
    from_file(state, id)?;
    done(store.store.delete(id).await.map_err(unavailable)?, id)?;
    tracing::info!(target: "herald::audit", actor, action = "delete", app = %id, "app deleted through the admin API");
    reload(store).await;
    Ok((StatusCode::NO_CONTENT, Value::Null))
}

async fn rotate(state: &State, id: &str, actor: &str) -> Answer {
    let store = store(state)?;
    let current = stored(state, store, id).await?;
    let mut fields = record_fields(&current)?;
    let secret = random_hex(16);
    let old = fields.insert("secret".into(), Value::String(secret.clone()));
    let grace = state.config.secret_grace;
    let until = SystemTime::now() + grace;
    match old {
        Some(old) if grace > Duration::ZERO => {
            fields.insert(PREVIOUS_SECRET.into(), old);
            fields.insert(PREVIOUS_SECRET_UNTIL_MS.into(), json!(ms(until)));
        }
        _ => {
            fields.remove(PREVIOUS_SECRET);
            fields.remove(PREVIOUS_SECRET_UNTIL_MS);
        }
    }
    let next = validated(state, &fields)?;
    done(
        store
            .store
            .update(&current, &next)
            .await
            .map_err(unavailable)?,
        id,
    )?;
    tracing::info!(target: "herald::audit", actor, action = "rotate-secret", app = %id, grace_secs = grace.as_secs(), "app secret rotated through the admin API");
    reload(store).await;
    let mut body = json!({ "id": id, "secret": secret });
    if grace > Duration::ZERO {
        body["previous_secret_until_ms"] = json!(ms(until));
    }
    Ok((StatusCode::OK, body))
}
