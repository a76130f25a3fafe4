//! Apps: credentials, feature switches, limits and webhook endpoints, as loaded from config.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::sync::{read, write};

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

/// One tenant, built by the server's config loader or from an app store's record. Immutable: a
/// change to the app is a new `App` in the registry (`Apps`).
#[derive(Clone, Debug, PartialEq)]
pub struct App {
    pub id: AppId,
    pub key: String,
    /// Signs webhooks; verifies signatures (with `previous_secret` during its grace).
    pub secret: Secret,
    /// The secret before the last rotation: it still verifies HTTP API signatures and channel
    /// and user authentication until its time is up, so app servers can roll.
    pub previous_secret: Option<PreviousSecret>,
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

/// A rotated-out secret and until when it is still accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: Secret,
    pub until: SystemTime,
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

    /// The secrets a signature may be made with now: the current one, and the previous one
    /// during its grace.
    pub fn verifying_secrets(&self) -> impl Iterator<Item = &Secret> {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|p| SystemTime::now() < p.until)
            .map(|p| &p.secret);
        std::iter::once(&self.secret).chain(previous)
    }

    /// An app with default switches and limits.
    pub fn new(id: &str, key: &str, secret: &str) -> App {
        App {
            id: AppId::new(id),
            key: key.to_owned(),
            secret: Secret::new(secret),
            previous_secret: None,
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

/// Every app the node serves, looked up by id (HTTP API) and by key (WebSocket): a live
/// registry shared by the hub, admission, webhooks and the backplane. The apps of the config
/// file are fixed; apps of an app store (`app_store`) are replaced as the store changes, in one
/// step (`replace_runtime`), and every holder sees the new set at once. Cheap to clone.
#[derive(Clone)]
pub struct Apps(Arc<Registry>);

struct Registry {
    current: RwLock<Arc<AppSet>>,
    /// Bumped by every change: the backplane subscribes new apps' topics on it.
    changes: watch::Sender<u64>,
}

/// One consistent view of the apps.
#[derive(Debug, Default)]
pub struct AppSet {
    by_id: HashMap<AppId, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
    /// Ids of the apps from the config file (read-only to the admin API).
    fixed: HashSet<AppId>,
}

/// What `replace_runtime` changed.
#[derive(Debug, Default)]
pub struct AppChanges {
    pub added: Vec<Arc<App>>,
    /// (before, after)
    pub changed: Vec<(Arc<App>, Arc<App>)>,
    pub removed: Vec<Arc<App>>,
    /// Store apps not served because their id or key is taken (by a file app or an
    /// earlier store app), with the reason.
    pub refused: Vec<(AppId, String)>,
}

impl AppChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl std::fmt::Debug for Apps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl Default for Apps {
    fn default() -> Self {
        Apps(Arc::new(Registry {
            current: RwLock::new(Arc::default()),
            changes: watch::Sender::new(0),
        }))
    }
}

impl AppSet {
    fn insert(&mut self, app: Arc<App>) -> Result<(), String> {
        if self.by_id.contains_key(&app.id) {
            return Err(format!("duplicate app id '{}'", app.id));
        }
        if self.by_key.contains_key(&app.key) {
            return Err(format!("duplicate app key '{}'", app.key));
        }
        self.by_id.insert(app.id.clone(), app.clone());
        self.by_key.insert(app.key.clone(), app);
        Ok(())
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

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Whether the app comes from the config file.
    pub fn is_fixed(&self, id: &str) -> bool {
        self.fixed.contains(id)
    }
}

impl Apps {
    /// The apps of the config file. Fails on a duplicate id or key, naming it.
    pub fn new(apps: Vec<App>) -> Result<Apps, String> {
        let mut set = AppSet::default();
        for app in apps {
            set.fixed.insert(app.id.clone());
            set.insert(Arc::new(app))?;
        }
        let out = Apps::default();
        *write(&out.0.current) = Arc::new(set);
        Ok(out)
    }

    /// The apps as of now, unchanged by later changes.
    pub fn snapshot(&self) -> Arc<AppSet> {
        read(&self.0.current).clone()
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<App>> {
        read(&self.0.current).by_id(id).cloned()
    }

    pub fn by_key(&self, key: &str) -> Option<Arc<App>> {
        read(&self.0.current).by_key(key).cloned()
    }

    /// The apps as of now.
    pub fn iter(&self) -> impl Iterator<Item = Arc<App>> + use<> {
        let set = self.snapshot();
        set.iter().cloned().collect::<Vec<_>>().into_iter()
    }

    /// Whether the app comes from the config file.
    pub fn is_fixed(&self, id: &str) -> bool {
        read(&self.0.current).is_fixed(id)
    }

    /// Fires whenever the set of apps changed.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.0.changes.subscribe()
    }

    /// Makes `runtime` (an app store's apps) the served apps beside the file's, in one step, and
    /// says what changed. The file's apps win a clash of id or key; apps are compared whole, so
    /// an app whose record did not change keeps its `Arc` (and sessions' views stay current).
    pub fn replace_runtime(&self, runtime: Vec<App>) -> AppChanges {
        let mut changes = AppChanges::default();
        let mut current = write(&self.0.current);
        let mut next = AppSet {
            fixed: current.fixed.clone(),
            ..AppSet::default()
        };
        for id in &current.fixed {
            if let Some(app) = current.by_id.get(id) {
                let _ = next.insert(app.clone());
            }
        }
        let mut runtime = runtime;
        runtime.sort_by(|a, b| a.id.cmp(&b.id));
        for app in runtime {
            let id = app.id.clone();
            let app = match current.by_id.get(&id) {
                Some(old) if !current.fixed.contains(&id) && **old == app => old.clone(),
                _ => Arc::new(app),
            };
            if let Err(why) = next.insert(app) {
                changes.refused.push((id, why));
            }
        }
        for (id, app) in &next.by_id {
            match current.by_id.get(id) {
                None => changes.added.push(app.clone()),
                Some(old) if !Arc::ptr_eq(old, app) => {
                    changes.changed.push((old.clone(), app.clone()))
                }
                Some(_) => {}
            }
        }
        for (id, app) in &current.by_id {
            if !next.by_id.contains_key(id) {
                changes.removed.push(app.clone());
            }
        }
        if !changes.is_empty() {
            *current = Arc::new(next);
            drop(current);
            self.0.changes.send_modify(|n| *n += 1);
        }
        changes
    }
}
