//! The backplane conformance checks of herald-core, run on `RedisBackplane` against a real
//! redis-server.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use herald_redis::test_support::RedisServer;
use herald_redis::{RedisBackplane, RedisConfig};

static N: AtomicU32 = AtomicU32::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backplane_conforms() {
    let redis = RedisServer::start();
    let url = redis.url();
    herald_core::backplane::conformance::run_all(|| {
        let url = url.clone();
        async move {
            // A fresh prefix per check: one Redis, isolated state.
            let config = RedisConfig {
                url,
                prefix: format!("conf{}", N.fetch_add(1, Ordering::Relaxed)),
                heartbeat: Duration::from_secs(1),
                node_timeout: Duration::from_secs(3),
                apps: vec!["a".into(), "b".into()],
            };
            let (bp, inbound) = RedisBackplane::start(config).expect("backplane");
            // The checks read shared state only; nothing needs what other nodes send.
            drop(inbound);
            std::sync::Arc::try_unwrap(bp).ok().expect("sole owner")
        }
    })
    .await;
}
