//! Apps: credentials, feature switches, limits and webhook endpoints, as loaded from config.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::webhook::WebhookKind;
use herald_protocol::{Limits, Secret};

/// An app's id, as configured (`[[apps]] id`) and as named in `/apps/{id}/…`. Cheap to clone:
/// the hub, the backplane and every log line carry it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(Arc<str>);

impl AppId {
    /// Any non-empty id; the config loader checks its characters and names the key.
    pub fn new(id: &str) -> AppId {
        AppId(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for AppId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl AsRef<str> for AppId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by `AppId` are looked up with the `&str` of a URL path.
impl std::borrow::Borrow<str> for AppId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for AppId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for AppId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

/// One tenant. Built by the server's config loader; immutable while the node runs.
#[derive(Clone, Debug)]
pub struct App {
    pub id: AppId,
    pub key: String,
    pub secret: Secret,
    pub enabled: bool,
    pub features: AppFeatures,
    pub limits: Limits,
    /// Most connections the app may hold across the cluster (close 4004 beyond it).
    pub max_connections: Option<u64>,
    /// How long a cache channel remembers its last event.
    pub cache_ttl: Duration,
    /// Time a connection has to sign in or subscribe to a private channel when
    /// `features.require_authorized_connection` is on.
    pub authorized_connection_timeout: Duration,
    pub webhooks: Vec<WebhookEndpoint>,
    /// Log every frame of this app's connections (Slanger's verbose mode, per app).
    pub verbose: bool,
}

/// Per-app switches (Pusher dashboard toggles, soketi/sockudo app flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppFeatures {
    /// `client-…` events from connections (Pusher's default: off).
    pub client_events: bool,
    /// `pusher:signin` accepted.
    pub user_authentication: bool,
    /// `pusher_internal:watchlist_events` for signed-in users with a watchlist.
    pub watchlist_events: bool,
    /// `pusher_internal:subscription_count` events to subscribers.
    pub subscription_count: bool,
    /// Connections must sign in or subscribe to a private/presence channel in time (4009).
    pub require_authorized_connection: bool,
    /// Plain (non-TLS) connections are refused with 4000.
    pub tls_only: bool,
}

impl Default for AppFeatures {
    fn default() -> Self {
        AppFeatures {
            client_events: false,
            user_authentication: true,
            watchlist_events: true,
            subscription_count: false,
            require_authorized_connection: false,
            tls_only: false,
        }
    }
}

/// Where an app's webhooks go (delivered by the webhook dispatcher).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub target: WebhookTarget,
    pub event_types: Vec<WebhookKind>,
    pub headers: Vec<(String, String)>,
    pub filter_prefix: Option<String>,
    pub filter_suffix: Option<String>,
}

/// Where an endpoint's batches go.
#[derive(Clone, PartialEq, Eq)]
pub enum WebhookTarget {
    /// POSTed to this URL (Pusher's webhooks).
    Http(String),
    /// Appended to this Redis stream for the app's own consumers (cluster mode only).
    Stream(String),
}

impl std::fmt::Display for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Shown in logs, dead letters and the console: never with its credentials.
            WebhookTarget::Http(url) => f.write_str(&crate::redact::mask_url(url)),
            WebhookTarget::Stream(name) => write!(f, "redis-stream:{name}"),
        }
    }
}

/// Header values may be credentials (`Authorization`): only their names are shown.
impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("target", &self.target)
            .field("event_types", &self.event_types)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("filter_prefix", &self.filter_prefix)
            .field("filter_suffix", &self.filter_suffix)
            .finish()
    }
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl App {
    /// Whether any endpoint takes events of this kind (filters are applied at delivery).
    pub fn wants_webhook(&self, kind: WebhookKind) -> bool {
        self.webhooks.iter().any(|w| w.event_types.contains(&kind))
    }

    /// An app with default switches and limits.
    pub fn new(id: &str, key: &str, secret: &str) -> App {
        App {
            id: AppId::new(id),
            key: key.to_owned(),
            secret: Secret::new(secret),
            enabled: true,
            features: AppFeatures::default(),
            limits: Limits::default(),
            max_connections: None,
            cache_ttl: Duration::from_secs(1800),
            authorized_connection_timeout: Duration::from_secs(30),
            webhooks: Vec::new(),
            verbose: false,
        }
    }
}

/// The configured apps, looked up by id (HTTP API) and by key (WebSocket).
#[derive(Clone, Debug, Default)]
pub struct Apps {
    by_id: HashMap<AppId, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl Apps {
    /// Fails on a duplicate id or key, naming it.
    pub fn new(apps: Vec<App>) -> Result<Apps, String> {
        let mut out = Apps::default();
        for app in apps {
            let app = Arc::new(app);
            if out.by_id.insert(app.id.clone(), app.clone()).is_some() {
                return Err(format!("duplicate app id '{}'", app.id));
            }
            if out.by_key.insert(app.key.clone(), app.clone()).is_some() {
                return Err(format!("duplicate app key '{}'", app.key));
            }
        }
        Ok(out)
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }
}
