//! Failures: a node killed with SIGKILL, and Redis going away and coming back empty.

use serde_json::json;

use crate::cluster::poll_until;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_reaped_and_its_members_removed_once() {
    let redis = herald_redis::test_support::RedisServer::start();
    killed_node_is_reaped(&Topology::plain(&redis)).await;
}

/// Also run on a Redis Cluster (`redis_topologies.rs`): reaping is scripts on the app's slot
/// and the node list on the cluster-wide slot.
pub async fn killed_node_is_reaped(t: &Topology) {
    let cluster = Nodes::start(t, 2, DEFAULT_TOML).await;
    let mut victim_node = NodeProcess::start(&cluster.toml).await;
    let mut watcher = cluster.nodes[0].connect().await;
    watcher
        .subscribe_signed("presence-room", Some(r#"{"user_id":"w"}"#))
        .await;
    let mut victim = Client::connect(&victim_node.ws_url(KEY)).await;
    victim
        .subscribe_signed("presence-room", Some(r#"{"user_id":"v"}"#))
        .await;
    victim.subscribe("only-on-victim").await;
    victim.signin(r#"{"id":"v"}"#).await;
    assert_eq!(
        Client::data(&watcher.expect("pusher_internal:member_added").await),
        json!({"user_id": "v"})
    );
    let api = cluster.nodes[1].api();
    assert_eq!(
        api.get("/channels/only-on-victim", &[]).await.body,
        json!({"occupied": true})
    );

    victim_node.kill9();
    // Dead after node_timeout (3 s) plus up to one heartbeat (1 s); allow 5 s more.
    let removed = watcher
        .expect_within("pusher_internal:member_removed", 9)
        .await;
    assert_eq!(Client::data(&removed), json!({"user_id": "v"}));
    watcher.expect_nothing_queued().await;
    // The reaper undoes memberships first (member_removed goes out as each is undone), then
    // subscriptions: the channel empties a moment after the watcher hears of the member.
    poll_until(|| async {
        api.get("/channels/only-on-victim", &[]).await.body == json!({"occupied": false})
    })
    .await;
    assert_eq!(
        api.get("/channels/presence-room/users", &[]).await.body,
        json!({"users": [{"id": "w"}]})
    );
    let users = api
        .get(
            "/channels/presence-room",
            &[("info", "user_count,subscription_count")],
        )
        .await
        .body;
    assert_eq!(
        users,
        json!({"occupied": true, "user_count": 1, "subscription_count": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_a_redis_outage_and_restore_state_into_an_empty_redis() {
    let mut cluster = TestCluster::start(2).await;
    let mut a = cluster.nodes[0].connect().await;
    let mut b = cluster.nodes[1].connect().await;
    a.subscribe_signed("presence-room", Some(r#"{"user_id":"ann"}"#))
        .await;
    b.subscribe_signed("presence-room", Some(r#"{"user_id":"bob"}"#))
        .await;
    a.expect("pusher_internal:member_added").await;

    // Traffic keeps flowing through the outage: every answer is 200 or a JSON 503.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (api, stop) = (cluster.nodes[0].api(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = api.trigger(&["busy"], "tick", "1").await;
                if r.status == 503 {
                    assert_eq!(r.body["code"], 503, "{}", r.body);
                }
                statuses.insert(r.status);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            statuses
        })
    };
    cluster.redis.kill();
    for node in &cluster.nodes {
        node.wait_ready(false).await;
    }
    let r = cluster.nodes[0]
        .api()
        .trigger(&["presence-room"], "ev", "x")
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["code"], 503);
    assert_eq!(
        cluster.nodes[0].api().get("/channels", &[]).await.status,
        503
    );
    // Local connections stay open and served.
    a.expect_nothing_queued().await;
    b.expect_nothing_queued().await;

    cluster.redis.restart();
    for node in &cluster.nodes {
        node.wait_ready(true).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = traffic.await.unwrap();
    assert!(statuses.is_subset(&[200, 503].into()), "{statuses:?}");
    assert!(statuses.contains(&503), "the outage was never reported");
    let api = cluster.nodes[1].api();
    poll_until(|| async {
        api.get("/channels/presence-room/users", &[]).await.body
            == json!({"users": [{"id": "ann"}, {"id": "bob"}]})
    })
    .await;
    let counts = api
        .get(
            "/channels/presence-room",
            &[("info", "user_count,subscription_count")],
        )
        .await
        .body;
    assert_eq!(
        counts,
        json!({"occupied": true, "user_count": 2, "subscription_count": 2})
    );
    assert_eq!(
        cluster.nodes[1]
            .api()
            .trigger(&["presence-room"], "ev", "back")
            .await
            .status,
        200
    );
    assert_eq!(a.expect("ev").await["data"], "back");
    for node in &cluster.nodes {
        let reconnects = node.metric("herald_backplane_reconnects_total").await;
        assert!(reconnects >= Some(1.0), "{reconnects:?}");
    }
    // The triggers answered 503 during the outage were failed publishes.
    let failed = r#"herald_backplane_errors_total{op="publish"}"#;
    assert!(cluster.nodes[0].metric(failed).await >= Some(1.0));
    assert_eq!(b.expect("ev").await["data"], "back");
}

/// The webhook events received so far, by `name:channel[:user]`, with how often each came.
fn tally(events: &[serde_json::Value]) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for e in events {
        *out.entry(crate::webhooks::label(e)).or_insert(0) += 1;
    }
    out
}

/// A watcher `w` on `watching` and a member `m` on `other`, both in presence-room, the watcher
/// told of the member.
async fn watch_a_member(watching: &NodeProcess, other: &NodeProcess) -> (Client, Client) {
    let mut watcher = Client::connect(&watching.ws_url(KEY)).await;
    watcher
        .subscribe_signed("presence-room", Some(r#"{"user_id":"w"}"#))
        .await;
    let mut member = Client::connect(&other.ws_url(KEY)).await;
    member
        .subscribe_signed("presence-room", Some(r#"{"user_id":"m"}"#))
        .await;
    watcher.expect("pusher_internal:member_added").await;
    (watcher, member)
}

/// `m` rejoins through `node`; the watcher is told, and every node lists both members. The
/// rejoined client is returned: it stays a member while the caller holds it.
async fn rejoin_and_agree(
    node: &NodeProcess,
    watcher: &mut Client,
    nodes: [&NodeProcess; 2],
) -> Client {
    let mut rejoined = Client::connect(&node.ws_url(KEY)).await;
    let reply = rejoined
        .subscribe_signed("presence-room", Some(r#"{"user_id":"m"}"#))
        .await;
    assert_eq!(
        reply["event"], "pusher_internal:subscription_succeeded",
        "{reply}"
    );
    let added = watcher.expect("pusher_internal:member_added").await;
    assert_eq!(Client::data(&added), json!({"user_id": "m"}));
    watcher.expect_nothing_queued().await;
    for n in nodes {
        let users = n.api().get("/channels/presence-room/users", &[]).await;
        assert_eq!(users.body, json!({"users": [{"id": "m"}, {"id": "w"}]}));
    }
    rejoined
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaper_killed_midway_loses_no_removal_webhook_and_sends_none_twice() {
    const MEMBERS: usize = 1000;
    let rx = crate::webhooks::Receiver::start(0).await;
    let redis = herald_redis::test_support::RedisServer::start();
    let apps = format!(
        // Every member on the victim on purpose: rebalancing would move some to the others.
        "webhook_batch_ms = 50\nwebhook_debounce_ms = 300\nrebalance_tolerance_percent = 0\n\
[[apps]]\nid = \"{APP_ID}\"\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\nmax_presence_members = {MEMBERS}\n\
[[apps.webhooks]]\nurl = \"{}\"\nevent_types = [\"member_removed\", \"channel_vacated\"]\n",
        rx.url
    );
    let toml = cluster_toml(&redis.url(), &apps);
    let mut victim = NodeProcess::start(&toml).await;
    let mut reapers = vec![
        NodeProcess::start(&toml).await,
        NodeProcess::start(&toml).await,
    ];
    let node_id = |n: &NodeProcess| {
        let admin = n.admin;
        async move {
            raw_http(admin, "GET", "/usage", "").await.body["node"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let victim_id = node_id(&victim).await;
    let mut clients = Vec::with_capacity(MEMBERS);
    for i in 0..MEMBERS {
        let mut c = Client::connect(&victim.ws_url(KEY)).await;
        let data = format!(r#"{{"user_id":"u{i}"}}"#);
        c.subscribe_signed("presence-big", Some(&data)).await;
        clients.push(c);
    }
    let mut redis_conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let contributions = format!("t:{{{APP_ID}}}:node:{victim_id}");
    let left = |mut c: redis::aio::MultiplexedConnection| {
        let key = contributions.clone();
        async move {
            redis::cmd("SCARD")
                .arg(&key)
                .query_async::<usize>(&mut c)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        left(redis_conn.clone()).await,
        2 * MEMBERS,
        "a subscription and a membership each"
    );

    victim.kill9();
    drop(clients);
    // Wait for a survivor to start reaping, then stop it midway and kill it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let holder = loop {
        let n = left(redis_conn.clone()).await;
        if n < 2 * MEMBERS {
            let lock: Option<String> = redis::cmd("GET")
                .arg(format!("t:reap:{victim_id}"))
                .query_async(&mut redis_conn)
                .await
                .unwrap();
            break lock.expect("the reaper holds the lock");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nobody reaped the dead node"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    };
    let mut index = None;
    for (i, r) in reapers.iter().enumerate() {
        if node_id(r).await == holder {
            index = Some(i);
        }
    }
    let mut reaper = reapers.remove(index.expect("the lock holder is one of the survivors"));
    reaper.signal("STOP");
    let midway = left(redis_conn.clone()).await;
    assert!(
        midway > 0 && midway < 2 * MEMBERS,
        "the reaper was stopped midway ({midway} of {} entries left)",
        2 * MEMBERS
    );
    reaper.kill9();

    // The last survivor resumes once the lock lapses, and every removal is sent exactly once.
    let want = MEMBERS + 1; // every member_removed, and presence-big's channel_vacated
    rx.wait_events_within(want, 40).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let tally = tally(&rx.events());
    assert_eq!(tally.len(), want, "{tally:?}");
    assert!(tally.values().all(|n| *n == 1), "sent twice: {tally:?}");
    assert_eq!(tally.get("channel_vacated:presence-big"), Some(&1));
    assert_eq!(left(redis_conn.clone()).await, 0);
    assert_eq!(
        reapers[0]
            .api()
            .get("/channels/presence-big/users", &[])
            .await
            .body,
        json!({"users": []})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_the_timeout_is_fenced_and_its_clients_rejoin() {
    let rx = crate::webhooks::Receiver::start(0).await;
    let redis = herald_redis::test_support::RedisServer::start();
    let apps = format!(
        // Every member on the victim on purpose: rebalancing would move some to the others.
        "webhook_batch_ms = 50\nwebhook_debounce_ms = 300\nrebalance_tolerance_percent = 0\n\
[[apps]]\nid = \"{APP_ID}\"\nkey = \"{KEY}\"\nsecret = \"{SECRET}\"\n\
[[apps.webhooks]]\nurl = \"{}\"\nevent_types = [\"member_added\", \"member_removed\"]\n",
        rx.url
    );
    let toml = cluster_toml(&redis.url(), &apps);
    let watching = NodeProcess::start(&toml).await;
    let paused = NodeProcess::start(&toml).await;
    let (mut watcher, mut member) = watch_a_member(&watching, &paused).await;
    // No wait for the arrivals' webhooks: a batch the node takes before it is paused is taken
    // over by the survivor, and the resumed node must not send it too.
    // Paused past node_timeout (3 s): the cluster takes it for dead and says so.
    paused.signal("STOP");
    let removed = watcher
        .expect_within("pusher_internal:member_removed", 9)
        .await;
    assert_eq!(Client::data(&removed), json!({"user_id": "m"}));
    let users = watching
        .api()
        .get("/channels/presence-room/users", &[])
        .await;
    assert_eq!(users.body, json!({"users": [{"id": "w"}]}));

    // Past the webhook debounce (300 ms), the removal is a real transition: its webhook goes.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;

    // Resumed: it finds it was reaped and sends its clients away to rejoin.
    paused.signal("CONT");
    // What the node's pub/sub connection held while it was stopped may arrive first (the
    // reaper's member_removed); then the 4200 that sends the client to rejoin.
    let error = loop {
        let frame = member.recv().await;
        if frame["event"] == "pusher:error" {
            break frame;
        }
        assert_eq!(frame["event"], "pusher_internal:member_removed", "{frame}");
    };
    assert_eq!(error["data"]["code"], 4200, "{error}");
    assert_eq!(member.ended().await, Ended::Closed(4200));
    let _rejoined = rejoin_and_agree(&paused, &mut watcher, [&watching, &paused]).await;
    // Webhooks: one per real transition, alternating for m.
    rx.wait_events(4).await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let seen: Vec<String> = rx
        .events()
        .iter()
        .filter(|e| e["user_id"] == "m")
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, ["member_added", "member_removed", "member_added"]);
    assert_eq!(
        tally(&rx.events()).get("member_added:presence-room:w"),
        Some(&1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_answers_503_is_fenced_on_healing_and_its_clients_rejoin() {
    partitioned(TcpProxy::cut).await;
}

/// A silent partition: the node's Redis connections stay open but nothing comes back (a
/// middlebox dropped the flow, packets are lost). The pub/sub PING and the command timeout
/// notice it; nothing waits for the kernel to give up on the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_redis_link_goes_silent_answers_503_is_fenced_on_healing_and_its_clients_rejoin()
 {
    partitioned(TcpProxy::stall).await;
}

/// One node partitioned from Redis by `partition` past the node timeout, then healed.
async fn partitioned(partition: fn(&TcpProxy)) {
    let redis = herald_redis::test_support::RedisServer::start();
    let proxy = TcpProxy::start(format!("127.0.0.1:{}", redis.port).parse().unwrap()).await;
    let watching = NodeProcess::start(&cluster_toml(&redis.url(), DEFAULT_TOML)).await;
    let cut_off = NodeProcess::start(&cluster_toml(&proxy.redis_url(), DEFAULT_TOML)).await;
    let (mut watcher, mut member) = watch_a_member(&watching, &cut_off).await;

    // Cut: the node is not ready and its API answers 503, never silence; its clients stay.
    partition(&proxy);
    cut_off.wait_ready(false).await;
    let r = cut_off.api().trigger(&["news"], "e", "1").await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    let removed = watcher
        .expect_within("pusher_internal:member_removed", 9)
        .await;
    assert_eq!(Client::data(&removed), json!({"user_id": "m"}));
    member
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    assert_eq!(member.expect("pusher:pong").await["event"], "pusher:pong");

    // Healed: the node finds it was reaped and sends its clients away to rejoin. What its
    // pub/sub connection held back may arrive first (the reaper's member_removed).
    proxy.heal();
    let error = loop {
        let frame = member.recv_within(10).await;
        if frame["event"] == "pusher:error" {
            break frame;
        }
        assert_eq!(frame["event"], "pusher_internal:member_removed", "{frame}");
    };
    assert_eq!(error["data"]["code"], 4200, "{error}");
    assert_eq!(member.ended().await, Ended::Closed(4200));
    cut_off.wait_ready(true).await;
    let _rejoined = rejoin_and_agree(&cut_off, &mut watcher, [&watching, &cut_off]).await;
}
