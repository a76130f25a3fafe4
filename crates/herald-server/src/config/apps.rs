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
    }
    if a.secret == herald_protocol::Secret::new("") {
        return Err(err(format!("{key}.secret"), "must not be empty"));
    }
    Ok(())
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
        max_event_payload_bytes: positive(&k("max_event_payload_kb"), a.max_event_payload_kb)?
            * 1024,
        max_event_name_len: positive(&k("max_event_name_len"), a.max_event_name_len)?,
        max_channel_name_len: positive(&k("max_channel_name_len"), a.max_channel_name_len)?,
        max_channels_per_trigger: positive(
            &k("max_channels_per_trigger"),
            a.max_channels_per_trigger,
        )?,
        max_batch_events: positive(&k("max_batch_events"), a.max_batch_events)?,
        max_presence_members: positive(&k("max_presence_members"), a.max_presence_members)?,
        max_presence_user_info_bytes: positive(
            &k("max_presence_user_info_kb"),
            a.max_presence_user_info_kb,
        )? * 1024,
        client_events_per_second: positive(
            &k("client_events_per_second"),
            a.client_events_per_second,
        )?,
        api_requests_per_second: a
            .api_requests_per_second
            .map(|n| positive(&k("api_requests_per_second"), n))
            .transpose()?,
        max_channels_per_connection: positive(
            &k("max_channels_per_connection"),
            a.max_channels_per_connection,
        )?,
        ..Limits::default()
    };
    app.max_connections = a
        .max_connections
        .map(|n| positive(&k("max_connections"), n))
        .transpose()?;
    app.cache_ttl = Duration::from_secs(positive(&k("cache_ttl_secs"), a.cache_ttl_secs)?);
    app.authorized_connection_timeout = Duration::from_secs(positive(
        &k("authorized_connection_timeout_secs"),
        a.authorized_connection_timeout_secs,
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
