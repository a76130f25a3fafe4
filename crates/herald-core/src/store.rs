//! App stores: where apps managed at runtime live (`app_store`). A store keeps each app as a
//! record, a JSON object with the `[[apps]]` keys, under its id and key (both unique in the
//! store); the server validates records into `App`s and puts them in the registry (`Apps`).
//! `MemoryAppStore` serves one node (apps lost at restart); `RedisAppStore` (crate
//! `herald-redis`) keeps them in the cluster's Redis and announces every change to every node.
//! Both pass the checks in `conformance`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::backplane::BackplaneError;
use crate::sync::lock;

/// An app as a store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredApp {
    pub id: String,
    pub key: String,
    /// A JSON object with the `[[apps]]` keys (and the previous secret during its grace). It
    /// holds the secret: never log it.
    pub record: String,
}

/// How a write went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Done,
    /// Another app has this id (create).
    IdTaken,
    /// Another app has this key (create, update).
    KeyTaken,
    /// No app has this id (update, delete).
    NotFound,
    /// The app changed since it was read (update): read it again and retry.
    Conflict,
}

/// A store of apps that the admin API can change.
#[async_trait]
pub trait AppStore: Send + Sync + 'static {
    /// Every app in the store.
    async fn list(&self) -> Result<Vec<StoredApp>, BackplaneError>;
    /// One app, by id.
    async fn get(&self, id: &str) -> Result<Option<StoredApp>, BackplaneError>;
    /// Adds an app whose id and key nobody has.
    async fn create(&self, app: &StoredApp) -> Result<Written, BackplaneError>;
    /// Replaces `expected` (as read) with `app` (same id), unless it changed meanwhile.
    async fn update(
        &self,
        expected: &StoredApp,
        app: &StoredApp,
    ) -> Result<Written, BackplaneError>;
    /// Removes an app.
    async fn delete(&self, id: &str) -> Result<Written, BackplaneError>;
    /// Bumped when the store's apps may have changed: a write through this store, or one
    /// another node announced. The server reloads the apps on it.
    fn changes(&self) -> watch::Receiver<u64>;
    /// One app, by key (stores that are read lazily answer it; others have listed everything).
    async fn find_key(&self, _key: &str) -> Result<Option<StoredApp>, BackplaneError> {
        Ok(None)
    }
    /// Whether the admin API may write (a SQL table belongs to its owner: read-only).
    fn writable(&self) -> bool {
        true
    }
    /// Whether an unknown key or id is worth one lookup (the store may have changed since
    /// the last full read, and says nothing when it does).
    fn looks_up(&self) -> bool {
        false
    }
}

/// The apps of one node, in its memory.
pub struct MemoryAppStore {
    apps: Mutex<BTreeMap<String, StoredApp>>,
    changes: watch::Sender<u64>,
}

impl Default for MemoryAppStore {
    fn default() -> Self {
        MemoryAppStore {
            apps: Mutex::default(),
            changes: watch::Sender::new(0),
        }
    }
}

impl MemoryAppStore {
    fn changed(&self) -> Written {
        self.changes.send_modify(|n| *n += 1);
        Written::Done
    }
}

#[async_trait]
impl AppStore for MemoryAppStore {
    async fn list(&self) -> Result<Vec<StoredApp>, BackplaneError> {
        Ok(lock(&self.apps).values().cloned().collect())
    }

    async fn get(&self, id: &str) -> Result<Option<StoredApp>, BackplaneError> {
        Ok(lock(&self.apps).get(id).cloned())
    }

    async fn create(&self, app: &StoredApp) -> Result<Written, BackplaneError> {
        {
            let mut apps = lock(&self.apps);
            if apps.contains_key(&app.id) {
                return Ok(Written::IdTaken);
            }
            if apps.values().any(|a| a.key == app.key) {
                return Ok(Written::KeyTaken);
            }
            apps.insert(app.id.clone(), app.clone());
        }
        Ok(self.changed())
    }

    async fn update(
        &self,
        expected: &StoredApp,
        app: &StoredApp,
    ) -> Result<Written, BackplaneError> {
        {
            let mut apps = lock(&self.apps);
            match apps.get(&expected.id) {
                None => return Ok(Written::NotFound),
                Some(current) if current != expected => return Ok(Written::Conflict),
                Some(_) => {}
            }
            if apps.values().any(|a| a.key == app.key && a.id != app.id) {
                return Ok(Written::KeyTaken);
            }
            apps.insert(app.id.clone(), app.clone());
        }
        Ok(self.changed())
    }

    async fn delete(&self, id: &str) -> Result<Written, BackplaneError> {
        if lock(&self.apps).remove(id).is_none() {
            return Ok(Written::NotFound);
        }
        Ok(self.changed())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
