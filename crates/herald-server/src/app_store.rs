//! Apps at runtime: the node's view of its app store (`app_store`). Reads every record, validates
//! it into an `App` and replaces the registry's runtime apps in one step; the hub then closes
//! the connections of apps deleted (4001) or disabled (4003). Reloads when the store announces
//! a change (a write here, or on another node through Redis) and every `app_cache_secs`
//! whatever it heard, so a missed announcement costs at most that long.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use herald_core::sync::lock;

use herald_core::store::AppStore;
use herald_core::{App, AppChanges, Hub};

use crate::config::app_from_record;

pub struct AppStoreHandle {
    pub store: Arc<dyn AppStore>,
    hub: Hub,
    has_redis: bool,
    every: Duration,
    /// One reload at a time, so a later one never applies an older read.
    reloading: tokio::sync::Mutex<()>,
    /// The store was read once: its apps are served (readiness waits for it).
    loaded: AtomicBool,
    /// Keys and ids looked up in vain, until when the answer stands: a flood of bad keys
    /// reaches the store once per key per `every`, and at most `MAX_MISSES` are kept.
    misses: std::sync::Mutex<HashMap<String, Instant>>,
    /// Lookups in flight at once.
    lookups: tokio::sync::Semaphore,
}

/// Most remembered misses; beyond them unknown keys are not looked up until some expire.
const MAX_MISSES: usize = 10_000;

/// What a lookup asks for.
pub enum Lookup<'a> {
    Key(&'a str),
    Id(&'a str),
}

impl AppStoreHandle {
    pub fn new(store: Arc<dyn AppStore>, hub: Hub, has_redis: bool, every: Duration) -> Self {
        AppStoreHandle {
            store,
            hub,
            has_redis,
            every,
            reloading: tokio::sync::Mutex::new(()),
            loaded: AtomicBool::new(false),
            misses: std::sync::Mutex::default(),
            lookups: tokio::sync::Semaphore::new(4),
        }
    }

    /// An app this node does not know was asked for (a handshake's key, an API request's id):
    /// with a store read lazily, one lookup, and a reload when the store has it. True when the
    /// app is served now.
    pub async fn lookup(&self, what: Lookup<'_>) -> bool {
        if !self.store.looks_up() {
            return false;
        }
        let tag = match what {
            Lookup::Key(k) => format!("k:{k}"),
            Lookup::Id(i) => format!("i:{i}"),
        };
        {
            let mut misses = lock(&self.misses);
            let now = Instant::now();
            if misses.get(&tag).is_some_and(|until| *until > now) {
                return false;
            }
            if misses.len() >= MAX_MISSES {
                misses.retain(|_, until| *until > now);
                if misses.len() >= MAX_MISSES {
                    return false;
                }
            }
        }
        let Ok(Ok(_permit)) =
            tokio::time::timeout(Duration::from_secs(2), self.lookups.acquire()).await
        else {
            return false;
        };
        let found = match what {
            Lookup::Key(k) => self.store.find_key(k).await,
            Lookup::Id(i) => self.store.get(i).await,
        };
        match found {
            Ok(Some(_)) => {
                if let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "app store not read after a lookup found an app");
                }
                match what {
                    Lookup::Key(k) => self.hub.apps().by_key(k).is_some(),
                    Lookup::Id(i) => self.hub.apps().by_id(i).is_some(),
                }
            }
            Ok(None) => {
                lock(&self.misses).insert(tag, Instant::now() + self.every);
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "app lookup failed");
                false
            }
        }
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// Reads the store and makes its apps the served ones. On a store error nothing changes.
    pub async fn reload(&self) -> Result<AppChanges, herald_core::BackplaneError> {
        let _one = self.reloading.lock().await;
        let records = self.store.list().await?;
        let mut apps: Vec<App> = Vec::with_capacity(records.len());
        for r in records {
            match app_from_record(&r.record, self.has_redis) {
                Ok(app) if app.id.as_str() == r.id => apps.push(app),
                Ok(_) => {
                    tracing::error!(app = %r.id, "stored app not served: its record names another id")
                }
                Err(e) => {
                    tracing::error!(app = %r.id, error = %e, "stored app not served: invalid record")
                }
            }
        }
        let changes = self.hub.apps().replace_runtime(apps);
        for (id, why) in &changes.refused {
            tracing::error!(app = %id, "stored app not served: {why}");
        }
        for app in &changes.added {
            tracing::info!(app = %app.id, "app added");
        }
        for (_, app) in &changes.changed {
            tracing::info!(app = %app.id, enabled = app.enabled, "app changed");
        }
        for app in &changes.removed {
            tracing::info!(app = %app.id, "app removed");
        }
        self.hub.apply_app_changes(&changes);
        self.loaded.store(true, Ordering::SeqCst);
        Ok(changes)
    }

    /// Keeps the registry in step with the store until the process ends.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let mut changes = self.store.changes();
        tokio::spawn(async move {
            let mut failing = false;
            loop {
                changes.borrow_and_update();
                match this.reload().await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("app store readable again");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "app store unreadable; serving the apps as last read");
                    }
                    Err(_) => {}
                }
                // Not loaded yet (Redis not up at start): try again soon.
                let wait = if this.is_loaded() {
                    this.every
                } else {
                    Duration::from_millis(500)
                };
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }
}
