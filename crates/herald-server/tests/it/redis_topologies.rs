//! The Redis that production teams run: TLS with a password (and mutual TLS), and a Sentinel
//! set whose master dies under traffic. Real servers on free ports, started here.

use std::time::Duration;

use herald_redis::test_support::{
    RedisCluster, RedisOptions, RedisServer, SentinelOptions, SentinelSet, TestCa, TlsFiles,
    toml_path,
};
use serde_json::json;

use crate::support::*;

fn tls_redis(ca: &TestCa, password: &str, client_certs: bool) -> RedisServer {
    RedisServer::start_with(RedisOptions {
        password: Some(password.to_owned()),
        tls: Some(TlsFiles::of(ca)),
        client_certs,
        ..RedisOptions::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_behaviour_holds_on_a_tls_redis_with_a_password() {
    let ca = TestCa::new();
    let redis = tls_redis(&ca, "tls-pass-7", false);
    crate::cluster::all(&Topology::tls(&redis, &ca)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_nodes_present_their_client_certificate() {
    let ca = TestCa::new();
    let redis = tls_redis(&ca, "mtls-pass", true);
    let t = Topology {
        name: "a mutual-TLS redis-server",
        url: redis.url(),
        toml: format!(
            "redis_tls_ca_file = {}\nredis_tls_cert_file = {}\nredis_tls_key_file = {}\n",
            toml_path(&ca.ca),
            toml_path(&ca.client_cert),
            toml_path(&ca.client_key)
        ),
    };
    let cluster = Nodes::start(&t, 2, DEFAULT_TOML).await;
    let mut b = cluster.nodes[1].connect().await;
    b.subscribe("news").await;
    let r = cluster.nodes[0].api().trigger(&["news"], "e", "hi").await;
    assert_eq!(r.status, 200);
    assert_eq!(b.expect("e").await["data"], "hi");
}

/// What a node prints when it cannot start; the password must not be in it.
async fn start_failure(toml: &str, secret: &str) -> String {
    let (code, stderr) = run_to_exit(toml).await;
    assert_eq!(code, Some(1), "herald should exit 1; stderr:\n{stderr}");
    assert!(!stderr.contains(secret), "the password leaked:\n{stderr}");
    eprintln!(
        "start-up refused: {}",
        stderr.trim_end().lines().last().unwrap_or_default()
    );
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_or_password_that_cannot_work_stops_start_up_naming_the_key() {
    let ca = TestCa::new();
    let other_ca = TestCa::new();
    let password = "right-pass-93";
    let redis = tls_redis(&ca, password, false);
    let mtls = tls_redis(&ca, password, true);
    let node = |url: &str, extra: &str| {
        format!("redis_url = \"{url}\"\nredis_prefix = \"t\"\n{extra}{DEFAULT_TOML}")
    };
    let ca_line = format!("redis_tls_ca_file = {}\n", toml_path(&ca.ca));

    // No CA: the test CA is not among the web roots.
    let out = start_failure(&node(&redis.url(), ""), password).await;
    assert!(
        out.contains("redis_tls_ca_file") && out.contains("does not verify"),
        "{out}"
    );
    // The wrong CA.
    let wrong = format!("redis_tls_ca_file = {}\n", toml_path(&other_ca.ca));
    let out = start_failure(&node(&redis.url(), &wrong), password).await;
    assert!(out.contains("redis_tls_ca_file"), "{out}");
    // The wrong password, then no password at all.
    let bad_pass = redis.url().replace(password, "wrong-pass-41");
    let out = start_failure(&node(&bad_pass, &ca_line), "wrong-pass-41").await;
    assert!(
        out.contains("redis_url") && out.contains("refused the credentials"),
        "{out}"
    );
    let no_pass = redis.url().replace(&format!(":{password}@"), "");
    let out = start_failure(&node(&no_pass, &ca_line), password).await;
    assert!(out.contains("refused the credentials"), "{out}");
    // A server that wants a client certificate, and none configured.
    let out = start_failure(&node(&mtls.url(), &ca_line), password).await;
    assert!(out.contains("redis_tls_cert_file"), "{out}");
    // TLS files with a plain URL: a configuration error before any connection.
    let plain = format!("redis://127.0.0.1:{}/", redis.port);
    let out = start_failure(&node(&plain, &ca_line), password).await;
    assert!(
        out.contains("redis_tls_ca_file") && out.contains("TLS redis_url only"),
        "{out}"
    );
}

/// On sentinels with a password of their own (`?sentinel_password=`); the failover tests below
/// use sentinels without one, the common setup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_behaviour_holds_on_a_sentinel_set() {
    let sentinel_pw = "sentinel-pw-19d";
    let set = SentinelSet::start_with(SentinelOptions {
        sentinel_password: Some(sentinel_pw.to_owned()),
        tls: None,
    });
    crate::cluster::all(&Topology::sentinel(&set)).await;

    // What cannot work stops start-up, naming what to fix.
    let node = |url: &str| format!("redis_url = \"{url}\"\nredis_prefix = \"t\"\n{DEFAULT_TOML}");
    let url = set.url();
    let out = start_failure(
        &node(&url.replace("/herald-test?", "/no-such-master?")),
        sentinel_pw,
    )
    .await;
    assert!(out.contains("know no master"), "{out}");
    let out = start_failure(&node(&url.replace(&set.password, "wrong-pw")), sentinel_pw).await;
    assert!(out.contains("Redis refused the credentials"), "{out}");
    let out = start_failure(
        &node(&url.replace(sentinel_pw, "wrong-sentinel-pw")),
        sentinel_pw,
    )
    .await;
    assert!(out.contains("a sentinel refused the credentials"), "{out}");
}

/// `rediss+sentinel://`: TLS to the sentinels and to the data nodes they name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_behaviour_holds_on_a_tls_sentinel_set() {
    let ca = TestCa::new();
    let set = SentinelSet::start_with(SentinelOptions {
        sentinel_password: None,
        tls: Some(TlsFiles::of(&ca)),
    });
    crate::cluster::all(&Topology::sentinel(&set)).await;
}

/// A publish on `from` of `seq`, and its status (200 or 503; anything else fails).
async fn publish(from: &TestServer, seq: u32) -> u16 {
    let r = from
        .api()
        .trigger(&["ticks"], "tick", &seq.to_string())
        .await;
    assert!(
        r.status == 200 || r.status == 503,
        "publish {seq}: {} {}",
        r.status,
        r.body
    );
    r.status
}

/// Every `tick` a client has received so far (stops at 300 ms of quiet).
async fn ticks(c: &mut Client) -> Vec<u32> {
    let mut seen = Vec::new();
    while let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(300), c.next_event()).await {
        assert_ne!(
            v["event"], "pusher_internal:member_removed",
            "a member was removed by the failover: {v}"
        );
        if v["event"] == "tick" {
            seen.push(v["data"].as_str().unwrap().parse().unwrap());
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_a_sentinel_failover_under_traffic() {
    let mut set = SentinelSet::start();
    let t = Topology::sentinel(&set);
    let cluster = Nodes::start(&t, 2, DEFAULT_TOML).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut subs = Vec::new();
    let mut members = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut s = node.connect().await;
        s.subscribe("ticks").await;
        subs.push(s);
        for u in 0..3 {
            let mut m = node.connect().await;
            let data = format!(r#"{{"user_id":"u{i}{u}"}}"#);
            m.subscribe_signed("presence-room", Some(&data)).await;
            members.push(m);
        }
    }
    let everyone = json!({"users": [
        {"id": "u00"}, {"id": "u01"}, {"id": "u02"}, {"id": "u10"}, {"id": "u11"}, {"id": "u12"}
    ]});
    for node in &cluster.nodes {
        let users = node.api().get("/channels/presence-room/users", &[]).await;
        assert_eq!(users.body, everyone);
    }

    // One sentinel dies (the first the URL names): nothing changes.
    set.sentinels[0].kill();
    for seq in 0..10 {
        let from = if seq % 2 == 0 { n0 } else { n1 };
        assert_eq!(
            publish(from, seq).await,
            200,
            "publish {seq} with a sentinel down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in &mut subs {
        assert_eq!(ticks(s).await, (0..10).collect::<Vec<_>>());
    }
    assert_eq!(raw_http(n0.admin, "GET", "/ready", "").await.status, 200);

    // The master dies under traffic.
    let old = set.master_port().expect("the sentinels name a master");
    set.master.kill();
    let killed = tokio::time::Instant::now();
    let mut seq = 100;
    let (mut refused, mut not_ready, mut promoted_at) = (0, 0, None);
    // Deliveries resume: a publish accepted on each node reaches the subscriber on the other.
    let resumed_at = loop {
        let elapsed = killed.elapsed();
        assert!(
            elapsed < Duration::from_secs(40),
            "deliveries did not resume within 40 s of the kill"
        );
        if promoted_at.is_none() && set.master_port().is_some_and(|p| p != old) {
            promoted_at = Some(tokio::time::Instant::now());
        }
        for node in [n0, n1] {
            if raw_http(node.admin, "GET", "/ready", "").await.status == 503 {
                not_ready += 1;
            }
        }
        let (a, b) = (publish(n0, seq).await, publish(n1, seq + 1).await);
        refused += usize::from(a == 503) + usize::from(b == 503);
        if a == 200 && b == 200 && promoted_at.is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (got1, got0) = (ticks(&mut subs[1]).await, ticks(&mut subs[0]).await);
            if got1.contains(&seq) && got0.contains(&(seq + 1)) {
                break tokio::time::Instant::now();
            }
        }
        seq += 2;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let promoted_at = promoted_at.expect("promotion seen");
    eprintln!(
        "failover: promoted {:?} after the kill, deliveries resumed {:?} after the promotion; {refused} publishes answered 503, /ready 503 seen {not_ready} times",
        promoted_at - killed,
        resumed_at.saturating_duration_since(promoted_at)
    );
    assert!(
        resumed_at.saturating_duration_since(promoted_at) < Duration::from_secs(10),
        "deliveries resumed more than 10 s after the promotion"
    );
    assert!(
        refused > 0,
        "no publish was refused while there was no master"
    );
    assert!(
        not_ready > 0,
        "/ready never answered 503 while there was no master"
    );

    // Both nodes ready, every publish from now on delivered everywhere.
    n0.wait_ready(true).await;
    n1.wait_ready(true).await;
    for node in [n0, n1] {
        let moves = node.metric("herald_backplane_primary_changes_total").await;
        assert_eq!(moves, Some(1.0), "one move to the new master");
    }
    for s in &mut subs {
        ticks(s).await;
    }
    for seq in 1000..1010 {
        let from = if seq % 2 == 0 { n0 } else { n1 };
        assert_eq!(publish(from, seq).await, 200);
    }
    for s in &mut subs {
        assert_eq!(ticks(s).await, (1000..1010).collect::<Vec<_>>());
    }
    // Presence intact on both nodes, and no member saw anyone leave.
    for node in &cluster.nodes {
        let users = node.api().get("/channels/presence-room/users", &[]).await;
        assert_eq!(users.body, everyone);
        let info = node
            .api()
            .get("/channels/presence-room", &[("info", "user_count")])
            .await;
        assert_eq!(info.body["user_count"], 6);
    }
    for m in &mut members {
        ticks(m).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_a_switch_while_the_old_master_stays_up() {
    let set = SentinelSet::start();
    let t = Topology::sentinel(&set);
    let cluster = Nodes::start(&t, 2, DEFAULT_TOML).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let mut sub = n1.connect().await;
    sub.subscribe("ticks").await;
    let mut member = n0.connect().await;
    member
        .subscribe_signed("presence-room", Some(r#"{"user_id":"ann"}"#))
        .await;
    let old = set.master_port().expect("a master");
    set.failover();
    let switched = tokio::time::Instant::now();
    let mut seq = 0;
    loop {
        assert!(
            switched.elapsed() < Duration::from_secs(30),
            "deliveries did not resume on the new master"
        );
        let moved = set.master_port().is_some_and(|p| p != old);
        if publish(n0, seq).await == 200 && moved {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if ticks(&mut sub).await.contains(&seq) {
                break;
            }
        }
        seq += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "switch: deliveries resumed {:?} after SENTINEL FAILOVER",
        switched.elapsed()
    );
    // The old master is up, a replica now: it refuses writes (the nodes no longer send any).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !set.master.cli(&["SET", "probe", "1"]).contains("READONLY") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old master never became a replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in [n0, n1] {
        node.wait_ready(true).await;
        let users = node.api().get("/channels/presence-room/users", &[]).await;
        assert_eq!(users.body, json!({"users": [{"id": "ann"}]}));
    }
    ticks(&mut member).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_never_leaves_the_node() {
    let password = "redis-pw-5be71c";
    let ca = TestCa::new();
    let mut redis = tls_redis(&ca, password, false);
    let log = std::env::temp_dir().join(format!("herald-redis-pw-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let toml = format!(
        "redis_url = \"{}\"\nredis_tls_ca_file = {}\nredis_prefix = \"t\"\nheartbeat_interval_secs = 1\nnode_timeout_secs = 3\nverbose = true\nadmin_token = \"{ADMIN_TOKEN}\"\n{DEFAULT_TOML}",
        redis.url(),
        toml_path(&ca.ca)
    );
    let mut node = NodeProcess::start_logging(&toml, &log).await;
    let mut seen = Vec::new();
    // Redis goes away and comes back: the errors and reconnections are logged.
    redis.kill();
    node.wait_ready(false).await;
    for path in ["/metrics", "/usage", "/ready", "/console"] {
        seen.push(raw_http(node.admin, "GET", path, "").await.body.to_string());
    }
    let r = node.api().trigger(&["a"], "e", "1").await;
    assert_eq!(r.status, 503);
    seen.push(r.body.to_string());
    redis.restart();
    node.wait_ready(true).await;
    for path in ["/metrics", "/usage"] {
        seen.push(raw_http(node.admin, "GET", path, "").await.body.to_string());
    }
    node.signal("TERM");
    assert_eq!(node.wait_exit(15).await, Some(0));
    let logged = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(logged.contains("rediss://:***@127.0.0.1"), "{logged}");
    assert!(logged.contains("Redis pub/sub lost"), "{logged}");
    assert!(
        !logged.contains(password),
        "the password is in the log:\n{logged}"
    );
    for body in seen {
        assert!(
            !body.contains(password),
            "the password is in a reply: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_behaviour_holds_on_a_redis_cluster() {
    let redis = RedisCluster::start();
    let t = Topology::redis_cluster(&redis);
    crate::cluster::all(&t).await;
    crate::cluster_faults::killed_node_is_reaped(&t).await;

    // Channel traffic is on sharded pub/sub, on the shard that owns the topic's slot, and none
    // of it on classic pub/sub.
    let cluster = Nodes::start(&t, 2, DEFAULT_TOML).await;
    let mut sub = cluster.nodes[1].connect().await;
    sub.subscribe("sharded-news").await;
    let r = cluster.nodes[0]
        .api()
        .trigger(&["sharded-news"], "e", "x")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(sub.expect("e").await["data"], "x");
    let shard_channels: Vec<String> = redis
        .nodes
        .iter()
        .flat_map(|n| {
            n.cli(&["PUBSUB", "SHARDCHANNELS", "*:{app-1/sharded-news}:ch"])
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(shard_channels.len(), 1, "{shard_channels:?}");
    let topic = &shard_channels[0];
    let owner = redis
        .master_of(redis.slot(topic))
        .expect("the topic's master");
    assert!(
        owner
            .cli(&["PUBSUB", "SHARDCHANNELS", topic])
            .contains(topic.as_str())
    );
    for n in &redis.nodes {
        let classic = n.cli(&["PUBSUB", "CHANNELS", "*"]);
        assert!(
            classic.trim().is_empty(),
            "classic pub/sub in use on {}: {classic}",
            n.port
        );
    }
}

/// `rediss+cluster://`: TLS to every node of the cluster (its bus and replication too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_behaviour_holds_on_a_tls_redis_cluster() {
    let ca = TestCa::new();
    let redis = RedisCluster::start_with(Some(TlsFiles::of(&ca)));
    crate::cluster::all(&Topology::redis_cluster(&redis)).await;
}

/// Publishes `round` on every channel from alternating nodes; the statuses.
async fn publish_round(nodes: &[TestServer], channels: &[String], round: u32) -> Vec<u16> {
    let mut statuses = Vec::new();
    for (i, ch) in channels.iter().enumerate() {
        let r = nodes[i % nodes.len()]
            .api()
            .trigger(&[ch.as_str()], "tick", &round.to_string())
            .await;
        assert!(
            r.status == 200 || r.status == 503,
            "{ch}: {} {}",
            r.status,
            r.body
        );
        statuses.push(r.status);
    }
    statuses
}

/// Every (channel, round) a client subscribed to several channels received so far.
async fn rounds(c: &mut Client) -> std::collections::HashSet<(String, u32)> {
    let mut seen = std::collections::HashSet::new();
    while let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(300), c.next_event()).await {
        assert_ne!(v["event"], "pusher_internal:member_removed", "{v}");
        if v["event"] == "tick" {
            seen.insert((
                v["channel"].as_str().unwrap().to_owned(),
                v["data"].as_str().unwrap().parse().unwrap(),
            ));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_a_shard_failover_and_a_resharding_of_a_redis_cluster() {
    let mut redis = RedisCluster::start();
    let t = Topology::redis_cluster(&redis);
    let cluster = Nodes::start(&t, 2, DEFAULT_TOML).await;
    let nodes = &cluster.nodes;
    // Channels spread over the three shards; one subscriber per node holds them all.
    let channels: Vec<String> = (0..12).map(|i| format!("ch-{i}")).collect();
    let mut subs = Vec::new();
    for node in nodes {
        let mut s = node.connect().await;
        for ch in &channels {
            s.subscribe(ch).await;
        }
        subs.push(s);
    }
    let mut members = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut m = node.connect().await;
        let data = format!(r#"{{"user_id":"u{i}"}}"#);
        m.subscribe_signed("presence-room", Some(&data)).await;
        members.push(m);
    }
    let everyone = json!({"users": [{"id": "u0"}, {"id": "u1"}]});
    let all_delivered = |got: &std::collections::HashSet<(String, u32)>, round: u32| {
        channels.iter().all(|c| got.contains(&(c.clone(), round)))
    };

    // The master holding the app's state (presence, counts) dies.
    let app_slot = redis.slot("{app-1}");
    let victim = redis.master_of(app_slot).expect("a master").port;
    redis.node_mut(victim).kill();
    let killed = tokio::time::Instant::now();
    let (mut round, mut refused, mut promoted_at) = (100, 0, None);
    let resumed_at = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "deliveries did not resume within 40 s of the kill"
        );
        if promoted_at.is_none() && redis.master_of(app_slot).is_some_and(|m| m.port != victim) {
            promoted_at = Some(tokio::time::Instant::now());
        }
        let statuses = publish_round(nodes, &channels, round).await;
        refused += statuses.iter().filter(|s| **s == 503).count();
        if statuses.iter().all(|s| *s == 200) && promoted_at.is_some() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (a, b) = (rounds(&mut subs[0]).await, rounds(&mut subs[1]).await);
            if all_delivered(&a, round) && all_delivered(&b, round) {
                break tokio::time::Instant::now();
            }
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let promoted_at = promoted_at.expect("promotion seen");
    eprintln!(
        "shard failover: promoted {:?} after the kill, deliveries resumed {:?} after; {refused} publishes answered 503",
        promoted_at - killed,
        resumed_at.saturating_duration_since(promoted_at)
    );
    assert!(resumed_at.saturating_duration_since(promoted_at) < Duration::from_secs(10));
    assert!(
        refused > 0,
        "no publish was refused while a shard had no master"
    );
    for node in nodes {
        node.wait_ready(true).await;
        let users = node.api().get("/channels/presence-room/users", &[]).await;
        assert_eq!(users.body, everyone, "presence after the failover");
        let info = node
            .api()
            .get("/channels/ch-0", &[("info", "subscription_count")])
            .await;
        assert_eq!(
            info.body["subscription_count"], 2,
            "counts after the failover"
        );
    }

    // A resharding while publishing: every slot of the master that owns ch-0's topic moves to
    // another master.
    let topic_slot = redis.slot("{app-1/ch-0}");
    let from = redis.master_of(topic_slot).expect("ch-0's master").port;
    let to = redis
        .nodes
        .iter()
        .filter(|n| n.port != from && n.port != victim)
        .find(|n| redis.is_master(n))
        .expect("another master")
        .port;
    let count = redis.slot_count(redis.node(from));
    let publishing = async {
        let mut r = 1000;
        let mut refused = 0;
        while r < 1000 + 400 {
            let statuses = publish_round(nodes, &channels[..4], r).await;
            refused += statuses.iter().filter(|s| **s == 503).count();
            r += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        refused
    };
    let moving = tokio::task::spawn_blocking({
        let (from_id, to_addr) = (redis.id_of(redis.node(from)), to);
        move || herald_redis::test_support::reshard(to_addr, &from_id, count)
    });
    let (refused, moved) = tokio::join!(publishing, moving);
    moved.expect("the reshard ran");
    assert_eq!(redis.slot_count(redis.node(from)), 0, "every slot moved");
    assert_eq!(redis.master_of(topic_slot).map(|m| m.port), Some(to));
    eprintln!("resharding: {count} slots moved while publishing; {refused} publishes answered 503");
    for s in &mut subs {
        rounds(s).await;
    }
    // After the move: nothing lost.
    for r in 5000..5005 {
        assert!(
            publish_round(nodes, &channels, r)
                .await
                .iter()
                .all(|s| *s == 200)
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for s in &mut subs {
        let got = rounds(s).await;
        for r in 5000..5005 {
            assert!(
                all_delivered(&got, r),
                "round {r} incomplete after the resharding: {got:?}"
            );
        }
    }
    for node in nodes {
        let users = node.api().get("/channels/presence-room/users", &[]).await;
        assert_eq!(users.body, everyone, "presence after the resharding");
    }
    for m in &mut members {
        rounds(m).await;
    }
}
