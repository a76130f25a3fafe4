//! Behaviour every writable app store must show; `herald-core` runs it on `MemoryAppStore`,
//! `herald-redis` on `RedisAppStore` against a real redis-server (two handles of one store
//! stand for two nodes).

#![allow(clippy::unwrap_used)] // Test code: a panic is how a check reports failure.

use std::time::Duration;

use super::*;

fn app(id: &str, key: &str, secret: &str) -> StoredApp {
    StoredApp {
        id: id.to_owned(),
        key: key.to_owned(),
        record: format!(r#"{{"id":"{id}","key":"{key}","secret":"{secret}"}}"#),
    }
}

/// Waits (bounded) for `rx` to see a change after the one it last saw.
async fn announced(rx: &mut watch::Receiver<u64>, what: &str) {
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .unwrap_or_else(|_| panic!("{what}: no change announced within 5 s"))
        .unwrap();
}

/// Creates, reads, updates and deletes; ids and keys stay unique; a stale update is refused;
/// every write is announced to `other` (another node's handle of the same store, or the same).
pub async fn writes_are_unique_checked_and_announced(store: &dyn AppStore, other: &dyn AppStore) {
    let mut seen = other.changes();
    seen.borrow_and_update();
    assert!(
        store.list().await.unwrap().is_empty(),
        "a fresh store is empty"
    );
    let a = app("a", "key-a", "s1");
    assert_eq!(store.create(&a).await.unwrap(), Written::Done);
    announced(&mut seen, "create").await;
    assert_eq!(other.get("a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.create(&a).await.unwrap(), Written::IdTaken);
    assert_eq!(
        store.create(&app("b", "key-a", "s")).await.unwrap(),
        Written::KeyTaken,
        "a key is unique across apps"
    );
    let b = app("b", "key-b", "s2");
    assert_eq!(store.create(&b).await.unwrap(), Written::Done);
    let mut listed = other.list().await.unwrap();
    listed.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(listed, vec![a.clone(), b.clone()]);

    // Update: the key may change (the old one is free again), not to another app's.
    let a2 = app("a", "key-a2", "s3");
    assert_eq!(store.update(&a, &a2).await.unwrap(), Written::Done);
    assert_eq!(other.get("a").await.unwrap(), Some(a2.clone()));
    assert_eq!(
        store.update(&a, &app("a", "key-a", "s4")).await.unwrap(),
        Written::Conflict,
        "an update of a stale read is refused"
    );
    assert_eq!(
        store.update(&a2, &app("a", "key-b", "s4")).await.unwrap(),
        Written::KeyTaken
    );
    assert_eq!(
        store.create(&app("c", "key-a", "s")).await.unwrap(),
        Written::Done,
        "a key given up is free"
    );
    assert_eq!(
        store
            .update(&app("zz", "k", "s"), &app("zz", "k", "t"))
            .await
            .unwrap(),
        Written::NotFound
    );

    // Delete frees the id and the key.
    seen.borrow_and_update();
    assert_eq!(store.delete("a").await.unwrap(), Written::Done);
    announced(&mut seen, "delete").await;
    assert_eq!(store.delete("a").await.unwrap(), Written::NotFound);
    assert_eq!(other.get("a").await.unwrap(), None);
    assert_eq!(
        store.create(&app("a", "key-a2", "s5")).await.unwrap(),
        Written::Done,
        "a deleted app's id and key are free"
    );
}

#[cfg(test)]
mod memory {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_conforms() {
        let store = MemoryAppStore::default();
        writes_are_unique_checked_and_announced(&store, &store).await;
    }
}
