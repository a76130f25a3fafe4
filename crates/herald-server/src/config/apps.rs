//! `[[apps]]` tables and the environment's single app, validated into `App`s; each error names
//! its key (`apps[0].webhooks[1].url`).

use std::time::Duration;

use herald_core::{App, AppFeatures, WebhookEndpoint, WebhookTarget};
use herald_protocol::Limits;
use herald_protocol::webhook::WebhookKind;

use super::raw::{RawApp, RawConfig, RawWebhook};
use super::{ConfigError, err, positive};

pub(super) fn check_credentials(key: &str, a: &App) -> Result<(), ConfigError> {
    for (field, value) in [("id", a.id.as_str()), ("key", a.key.as_str())] {
        if value.is_empty() || value.contains(['/', '?', '#', ' ', ':']) {
            return Err(err(
                format!("{key}.{field}"),
                "must be non-empty, without '/', '?', '#', ':' or spaces",
            ));
        }
        if value.chars().count() > 200 {
            return Err(err(
                format!("{key}.{field}"),
                "must be at most 200 characters",
            ));
        }
    }
    if a.secret == herald_protocol::Secret::new("") {
        return Err(err(format!("{key}.secret"), "must not be empty"));
    }
    Ok(())
}

/// Upper bounds of an app's limits: far above any real need, and low enough that no size,
/// count or clock arithmetic can overflow (the OpenAPI document states the same).
const KB: usize = 10 * 1024;
const COUNT: usize = 1_000_000;
const CONNECTIONS: u64 = 1_000_000_000;
const YEAR: u64 = 365 * 24 * 3600;

/// A positive value no greater than `max`, or an error naming the key.
fn within<T>(key: &str, v: T, max: T) -> Result<T, ConfigError>
where
    T: PartialOrd + Default + std::fmt::Display + Copy,
{
    let v = positive(key, v)?;
    if v > max {
        return Err(err(key, format!("must be at most {max}, got {v}")));
    }
    Ok(v)
}

pub(super) fn webhook_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://")) && url.len() > 8;
    if ok {
        Ok(url.to_owned())
    } else {
        Err(err(
            key,
            format!("expected an http:// or https:// URL, got '{url}'"),
        ))
    }
}

pub(super) fn app(key: &str, a: &RawApp, has_redis: bool) -> Result<App, ConfigError> {
    let mut app = App::new(&a.id, &a.key, &a.secret);
    check_credentials(key, &app)?;
    app.enabled = a.enabled;
    app.verbose = a.verbose;
    app.features = AppFeatures {
        client_events: a.client_events,
        user_authentication: a.user_authentication,
        watchlist_events: a.watchlist_events,
        subscription_count: a.subscription_count,
        require_authorized_connection: a.require_authorized_connection,
        tls_only: a.tls_only,
    };
    let k = |f: &str| format!("{key}.{f}");
    app.limits = Limits {
        max_event_payload_bytes: within(&k("max_event_payload_kb"), a.max_event_payload_kb, KB)?
            * 1024,
        max_event_name_len: within(&k("max_event_name_len"), a.max_event_name_len, COUNT)?,
        max_channel_name_len: within(&k("max_channel_name_len"), a.max_channel_name_len, COUNT)?,
        max_channels_per_trigger: within(
            &k("max_channels_per_trigger"),
            a.max_channels_per_trigger,
            COUNT,
        )?,
        max_batch_events: within(&k("max_batch_events"), a.max_batch_events, COUNT)?,
        max_presence_members: within(&k("max_presence_members"), a.max_presence_members, COUNT)?,
        max_presence_user_info_bytes: within(
            &k("max_presence_user_info_kb"),
            a.max_presence_user_info_kb,
            KB,
        )? * 1024,
        client_events_per_second: positive(
            &k("client_events_per_second"),
            a.client_events_per_second,
        )?,
        api_requests_per_second: a
            .api_requests_per_second
            .map(|n| positive(&k("api_requests_per_second"), n))
            .transpose()?,
        max_channels_per_connection: within(
            &k("max_channels_per_connection"),
            a.max_channels_per_connection,
            COUNT,
        )?,
        ..Limits::default()
    };
    app.max_connections = a
        .max_connections
        .map(|n| within(&k("max_connections"), n, CONNECTIONS))
        .transpose()?;
    app.cache_ttl = Duration::from_secs(within(&k("cache_ttl_secs"), a.cache_ttl_secs, YEAR)?);
    app.authorized_connection_timeout = Duration::from_secs(within(
        &k("authorized_connection_timeout_secs"),
        a.authorized_connection_timeout_secs,
        YEAR,
    )?);
    for (i, w) in a.webhooks.iter().enumerate() {
        let endpoint = webhook_endpoint(&format!("{key}.webhooks[{i}]"), w, has_redis)?;
        app.webhooks.push(endpoint);
    }
    Ok(app)
}

/// The single app of `HERALD_APP_ID`, `_KEY`, `_SECRET` (and Slanger's `webhook_url`), if given.
pub(super) fn env_app(raw: &RawConfig) -> Result<Option<App>, ConfigError> {
    match (&raw.app_id, &raw.app_key, &raw.app_secret) {
        (Some(id), Some(key), Some(secret)) => {
            let mut a = App::new(id, key, secret);
            check_credentials("app_id", &a)?;
            if let Some(url) = &raw.webhook_url {
                a.webhooks.push(WebhookEndpoint {
                    target: WebhookTarget::Http(webhook_url("webhook_url", url)?),
                    event_types: WebhookKind::ALL.to_vec(),
                    headers: Vec::new(),
                    filter_prefix: None,
                    filter_suffix: None,
                });
            }
            Ok(Some(a))
        }
        (None, None, None) if raw.webhook_url.is_some() => Err(err(
            "webhook_url",
            "needs the app_id, app_key and app_secret of the app it belongs to; use [[apps.webhooks]] for apps in the file",
        )),
        (None, None, None) => Ok(None),
        _ => Err(err(
            "app_id",
            "HERALD_APP_ID, HERALD_APP_KEY and HERALD_APP_SECRET must be given together",
        )),
    }
}

/// One `[[apps.webhooks]]` endpoint (`wk` names it in errors).
fn webhook_endpoint(
    wk: &str,
    w: &RawWebhook,
    has_redis: bool,
) -> Result<WebhookEndpoint, ConfigError> {
    let event_types = if w.event_types.is_empty() {
        WebhookKind::ALL.to_vec()
    } else {
        w.event_types
            .iter()
            .map(|t| t.parse().map_err(|m| err(format!("{wk}.event_types"), m)))
            .collect::<Result<_, _>>()?
    };
    let mut headers: Vec<(String, String)> = w
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    headers.sort();
    // What goes on the wire must be a valid header: checked now, not at the first delivery.
    for (name, value) in &headers {
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(err(
                format!("{wk}.headers"),
                format!("'{}' is not a valid HTTP header name", name.escape_debug()),
            ));
        }
        if hyper::header::HeaderValue::from_str(value).is_err() {
            return Err(err(
                format!("{wk}.headers"),
                format!("the value of '{name}' is not a valid HTTP header value (visible ASCII)"),
            ));
        }
    }
    if let Some((h, _)) = headers.iter().find(|(h, _)| {
        let h = h.to_ascii_lowercase();
        h == "x-pusher-key" || h == "x-pusher-signature" || h == "content-type"
    }) {
        return Err(err(
            format!("{wk}.headers"),
            format!("'{h}' is set by Herald and cannot be overridden"),
        ));
    }
    let target = match (&w.url, &w.stream) {
        (Some(url), None) => WebhookTarget::Http(webhook_url(&format!("{wk}.url"), url)?),
        (None, Some(stream)) if !has_redis => {
            return Err(err(
                format!("{wk}.stream"),
                format!("appending to the Redis stream '{stream}' needs redis_url"),
            ));
        }
        (None, Some(stream)) if !stream.is_empty() && !stream.contains(' ') => {
            WebhookTarget::Stream(stream.clone())
        }
        (None, Some(_)) => {
            return Err(err(
                format!("{wk}.stream"),
                "must be a non-empty stream name without spaces",
            ));
        }
        _ => {
            return Err(err(
                format!("{wk}.url"),
                "give exactly one of url or stream",
            ));
        }
    };
    Ok(WebhookEndpoint {
        target,
        event_types,
        headers,
        filter_prefix: w.filter.prefix.clone(),
        filter_suffix: w.filter.suffix.clone(),
    })
}

/// Keys of a stored record beside the `[[apps]]` ones: the secret a rotation replaced and until
/// when (ms since the epoch) it still verifies.
pub const PREVIOUS_SECRET: &str = "previous_secret";
pub const PREVIOUS_SECRET_UNTIL_MS: &str = "previous_secret_until_ms";

/// An app store's record (a JSON object with the `[[apps]]` keys, and the previous secret
/// during a rotation's grace) validated into an `App`; an error names the key as written
/// (`max_connections`, `webhooks[0].url`).
pub fn app_from_record(record: &str, has_redis: bool) -> Result<App, ConfigError> {
    let value: serde_json::Value =
        serde_json::from_str(record).map_err(|e| err("", format!("not JSON: {e}")))?;
    let serde_json::Value::Object(mut fields) = value else {
        return Err(err("", "expected a JSON object with the [[apps]] keys"));
    };
    let previous = fields.remove(PREVIOUS_SECRET);
    let until = fields.remove(PREVIOUS_SECRET_UNTIL_MS);
    for required in ["id", "key", "secret"] {
        if !fields.get(required).is_some_and(|v| v.is_string()) {
            return Err(err(required, "required, a string"));
        }
    }
    let raw: RawApp = serde_json::from_value(serde_json::Value::Object(fields.clone()))
        .map_err(|e| record_error(&fields, &e.to_string()))?;
    let mut app = app("", &raw, has_redis).map_err(|mut e| {
        e.key = e.key.trim_start_matches('.').to_owned();
        e
    })?;
    if let (Some(serde_json::Value::String(secret)), Some(until)) = (previous, until) {
        let until_ms = until.as_u64().unwrap_or(0);
        app.previous_secret = Some(herald_core::PreviousSecret {
            secret: herald_protocol::Secret::new(secret),
            until: std::time::UNIX_EPOCH + Duration::from_millis(until_ms),
        });
    }
    Ok(app)
}

/// What a key that is not one of the `[[apps]]` keys is told.
pub const UNKNOWN_APP_KEY: &str = "unknown key (the [[apps]] keys are accepted)";

/// Whether `name` is one of the `[[apps]]` keys (a body's `"name": null` must still be one).
pub fn is_app_key(name: &str) -> bool {
    let mut one = serde_json::Map::new();
    one.insert(name.to_owned(), serde_json::Value::Null);
    match serde_json::from_value::<RawApp>(serde_json::Value::Object(one)) {
        Ok(_) => true,
        Err(e) => !e.to_string().starts_with("unknown field"),
    }
}

/// serde's message, naming the key at fault: the one an `unknown field` message names, else the
/// one that fails on its own (serde's type errors do not say which key they are about).
fn record_error(fields: &serde_json::Map<String, serde_json::Value>, message: &str) -> ConfigError {
    if let Some(unknown) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
    {
        return err(unknown, UNKNOWN_APP_KEY);
    }
    let failing = fields.iter().find(|(name, value)| {
        let mut one = serde_json::Map::new();
        one.insert((*name).clone(), (*value).clone());
        serde_json::from_value::<RawApp>(serde_json::Value::Object(one)).is_err()
    });
    match failing {
        Some((name, _)) => err(name.as_str(), message.to_owned()),
        None => err("", message.to_owned()),
    }
}

/// An app as the admin API shows it: the `[[apps]]` keys without the secret, webhook header
/// values masked.
pub fn app_view(app: &App) -> serde_json::Value {
    let raw = RawApp {
        id: app.id.to_string(),
        key: app.key.clone(),
        secret: String::new(),
        enabled: app.enabled,
        client_events: app.features.client_events,
        user_authentication: app.features.user_authentication,
        watchlist_events: app.features.watchlist_events,
        subscription_count: app.features.subscription_count,
        require_authorized_connection: app.features.require_authorized_connection,
        authorized_connection_timeout_secs: app.authorized_connection_timeout.as_secs(),
        tls_only: app.features.tls_only,
        max_connections: app.max_connections,
        max_event_payload_kb: app.limits.max_event_payload_bytes / 1024,
        max_event_name_len: app.limits.max_event_name_len,
        max_channel_name_len: app.limits.max_channel_name_len,
        max_channels_per_trigger: app.limits.max_channels_per_trigger,
        max_batch_events: app.limits.max_batch_events,
        max_presence_members: app.limits.max_presence_members,
        max_presence_user_info_kb: app.limits.max_presence_user_info_bytes / 1024,
        client_events_per_second: app.limits.client_events_per_second,
        max_channels_per_connection: app.limits.max_channels_per_connection,
        cache_ttl_secs: app.cache_ttl.as_secs(),
        api_requests_per_second: app.limits.api_requests_per_second,
        verbose: app.verbose,
        webhooks: app
            .webhooks
            .iter()
            .map(|w| RawWebhook {
                url: match &w.target {
                    WebhookTarget::Http(url) => Some(herald_core::redact::mask_url(url)),
                    WebhookTarget::Stream(_) => None,
                },
                stream: match &w.target {
                    WebhookTarget::Stream(s) => Some(s.clone()),
                    WebhookTarget::Http(_) => None,
                },
                event_types: w.event_types.iter().map(|k| k.to_string()).collect(),
                headers: w
                    .headers
                    .iter()
                    .map(|(n, _)| (n.clone(), "***".to_owned()))
                    .collect(),
                filter: super::raw::RawFilter {
                    prefix: w.filter_prefix.clone(),
                    suffix: w.filter_suffix.clone(),
                },
            })
            .collect(),
    };
    let mut view = serde_json::to_value(raw).unwrap_or_default();
    if let Some(fields) = view.as_object_mut() {
        fields.remove("secret");
    }
    // An unset limit or webhook field is absent, as in the file.
    super::drop_nulls(&mut view);
    view
}
