//! Nodes on one real Redis: every behaviour holds whichever node a client or an API call
//! lands on (PROTOCOL.md §9.2). Each scenario runs as its own test on a fresh plain
//! redis-server, and all of them run in turn on a TLS Redis with a password and on a Sentinel
//! set (`redis_topologies.rs`, through `all`).

use serde_json::json;

use crate::support::*;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        /// Each scenario on its own plain `redis-server`.
        mod plain {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let redis = herald_redis::test_support::RedisServer::start();
                    super::$name(&crate::support::Topology::plain(&redis)).await;
                }
            )*
        }

        /// Every scenario, one after another, on one shared Redis topology.
        pub async fn all(t: &Topology) {
            $(
                eprintln!("cluster scenario {} on {}", stringify!($name), t.name);
                $name(t).await;
            )*
        }
    };
}

scenarios!(
    a_publish_on_any_node_reaches_subscribers_on_every_node,
    socket_id_exclusion_works_across_nodes,
    client_events_cross_nodes_with_user_id_and_no_echo,
    presence_lists_and_counts_agree_on_every_node,
    same_user_joining_on_two_nodes_at_once_is_announced_once,
    channels_are_occupied_once_and_vacated_when_the_last_node_leaves,
    terminate_send_to_user_and_watchlist_work_across_nodes,
    the_app_connection_quota_counts_every_node,
    cache_channels_share_the_last_event,
    members_joining_at_once_on_three_nodes_all_end_with_the_exact_list,
);

async fn a_publish_on_any_node_reaches_subscribers_on_every_node(t: &Topology) {
    let cluster = Nodes::start(t, 3, DEFAULT_TOML).await;
    let mut clients = Vec::new();
    for node in &cluster.nodes {
        let mut c = node.connect().await;
        c.subscribe("news").await;
        clients.push(c);
    }
    for (i, node) in cluster.nodes.iter().enumerate() {
        assert_eq!(
            node.api()
                .trigger(&["news"], "ev", &i.to_string())
                .await
                .status,
            200
        );
        for c in clients.iter_mut() {
            assert_eq!(
                c.recv_text().await,
                format!(r#"{{"event":"ev","channel":"news","data":"{i}"}}"#)
            );
        }
    }
    // Each node published one event itself and received two from the others.
    for node in &cluster.nodes {
        let local = r#"herald_publish_delivery_seconds_count{origin="local"}"#;
        let remote = r#"herald_publish_delivery_seconds_count{origin="remote"}"#;
        assert_eq!(node.metric(local).await, Some(1.0));
        assert_eq!(node.metric(remote).await, Some(2.0));
    }
}

async fn socket_id_exclusion_works_across_nodes(t: &Topology) {
    let cluster = Nodes::start(t, 2, DEFAULT_TOML).await;
    let mut a = cluster.nodes[0].connect().await;
    let mut b = cluster.nodes[1].connect().await;
    a.subscribe("room").await;
    b.subscribe("room").await;
    let body = json!({"name": "ev", "channels": ["room"], "data": "1", "socket_id": a.socket_id});
    assert_eq!(
        cluster.nodes[1].api().post("/events", body).await.status,
        200
    );
    assert_eq!(b.expect("ev").await["data"], "1");
    let body = json!({"name": "ev2", "channels": ["room"], "data": "2", "socket_id": b.socket_id});
    assert_eq!(
        cluster.nodes[1].api().post("/events", body).await.status,
        200
    );
    assert_eq!(a.expect("ev2").await["data"], "2");
    b.expect_nothing_queued().await;
}

async fn client_events_cross_nodes_with_user_id_and_no_echo(t: &Topology) {
    let cluster = Nodes::start(t, 2, DEFAULT_TOML).await;
    let mut a = cluster.nodes[0].connect().await;
    let mut b = cluster.nodes[1].connect().await;
    a.subscribe_signed("presence-chat", Some(r#"{"user_id":"ann"}"#))
        .await;
    b.subscribe_signed("presence-chat", Some(r#"{"user_id":"bob"}"#))
        .await;
    a.expect("pusher_internal:member_added").await;
    a.send(json!({"event": "client-hi", "channel": "presence-chat", "data": {"x": 1}}))
        .await;
    assert_eq!(
        b.recv().await,
        json!({"event": "client-hi", "channel": "presence-chat", "data": {"x": 1}, "user_id": "ann"})
    );
    a.expect_nothing_queued().await;
}

async fn presence_lists_and_counts_agree_on_every_node(t: &Topology) {
    let cluster = Nodes::start(t, 3, DEFAULT_TOML).await;
    let mut a = cluster.nodes[0].connect().await;
    a.subscribe_signed(
        "presence-room",
        Some(r#"{"user_id":"ann","user_info":{"n":1}}"#),
    )
    .await;
    let mut b = cluster.nodes[1].connect().await;
    let ok = b
        .subscribe_signed("presence-room", Some(r#"{"user_id":"bob"}"#))
        .await;
    assert_eq!(
        Client::data(&ok),
        json!({"presence": {"ids": ["ann", "bob"], "hash": {"ann": {"n": 1}, "bob": null}, "count": 2}})
    );
    assert_eq!(
        Client::data(&a.expect("pusher_internal:member_added").await),
        json!({"user_id": "bob"})
    );
    for node in &cluster.nodes {
        let api = node.api();
        assert_eq!(
            api.get("/channels/presence-room/users", &[]).await.body,
            json!({"users": [{"id": "ann"}, {"id": "bob"}]})
        );
        let info = api
            .get(
                "/channels/presence-room",
                &[("info", "user_count,subscription_count")],
            )
            .await
            .body;
        assert_eq!(
            info,
            json!({"occupied": true, "user_count": 2, "subscription_count": 2})
        );
        let list = api
            .get(
                "/channels",
                &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            )
            .await
            .body;
        assert_eq!(
            list,
            json!({"channels": {"presence-room": {"user_count": 2}}})
        );
    }
    b.close().await;
    assert_eq!(
        Client::data(&a.expect("pusher_internal:member_removed").await),
        json!({"user_id": "bob"})
    );
}

async fn same_user_joining_on_two_nodes_at_once_is_announced_once(t: &Topology) {
    let cluster = Nodes::start(t, 3, DEFAULT_TOML).await;
    let mut watcher = cluster.nodes[2].connect().await;
    watcher
        .subscribe_signed("presence-race", Some(r#"{"user_id":"w"}"#))
        .await;
    for round in 0..5 {
        let mut x = cluster.nodes[0].connect().await;
        let mut y = cluster.nodes[1].connect().await;
        let cd = format!(r#"{{"user_id":"u{round}"}}"#);
        let (rx, ry) = tokio::join!(
            x.subscribe_signed("presence-race", Some(&cd)),
            y.subscribe_signed("presence-race", Some(&cd))
        );
        assert_eq!(rx["event"], "pusher_internal:subscription_succeeded");
        assert_eq!(ry["event"], "pusher_internal:subscription_succeeded");
        let added = watcher.expect("pusher_internal:member_added").await;
        assert_eq!(Client::data(&added)["user_id"], format!("u{round}"));
        watcher.expect_nothing_queued().await;
        x.close().await;
        y.close().await;
        let removed = watcher.expect("pusher_internal:member_removed").await;
        assert_eq!(Client::data(&removed)["user_id"], format!("u{round}"));
    }
}

async fn channels_are_occupied_once_and_vacated_when_the_last_node_leaves(t: &Topology) {
    let cluster = Nodes::start(t, 3, DEFAULT_TOML).await;
    let mut a = cluster.nodes[0].connect().await;
    let mut b = cluster.nodes[1].connect().await;
    a.subscribe("shared").await;
    b.subscribe("shared").await;
    let api = cluster.nodes[2].api();
    assert_eq!(
        api.get("/channels", &[("info", "subscription_count")])
            .await
            .body,
        json!({"channels": {"shared": {"subscription_count": 2}}})
    );
    a.close().await;
    poll_until(|| async {
        api.get("/channels/shared", &[("info", "subscription_count")])
            .await
            .body
            == json!({"occupied": true, "subscription_count": 1})
    })
    .await;
    b.close().await;
    poll_until(|| async { api.get("/channels", &[]).await.body == json!({"channels": {}}) }).await;
}

async fn terminate_send_to_user_and_watchlist_work_across_nodes(t: &Topology) {
    let cluster = Nodes::start(t, 3, DEFAULT_TOML).await;
    let mut watcher = cluster.nodes[2].connect().await;
    watcher.signin(r#"{"id":"w","watchlist":["u1"]}"#).await;
    let v = watcher.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        Client::data(&v),
        json!({"events": [{"name": "offline", "user_ids": ["u1"]}]})
    );
    let mut a = cluster.nodes[0].connect().await;
    let mut b = cluster.nodes[1].connect().await;
    a.signin(r#"{"id":"u1"}"#).await;
    let v = watcher.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        Client::data(&v),
        json!({"events": [{"name": "online", "user_ids": ["u1"]}]})
    );
    b.signin(r#"{"id":"u1"}"#).await;
    cluster.nodes[2]
        .api()
        .trigger(&["#server-to-user-u1"], "note", "hi")
        .await;
    assert_eq!(a.expect("note").await["data"], "hi");
    assert_eq!(b.expect("note").await["data"], "hi");
    let r = cluster.nodes[2]
        .api()
        .post("/users/u1/terminate_connections", json!({}))
        .await;
    assert_eq!(r.status, 200);
    for c in [&mut a, &mut b] {
        assert_eq!(c.expect("pusher:error").await["data"]["code"], 4009);
        assert_eq!(c.ended().await, Ended::Closed(4009));
    }
    let v = watcher.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        Client::data(&v),
        json!({"events": [{"name": "offline", "user_ids": ["u1"]}]})
    );
}

async fn the_app_connection_quota_counts_every_node(t: &Topology) {
    let apps =
        "[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\nmax_connections = 2";
    let cluster = Nodes::start(t, 3, apps).await;
    let _a = cluster.nodes[0].connect().await;
    let _b = cluster.nodes[1].connect().await;
    let mut c = Client::connect_raw(&cluster.nodes[2].ws_url(KEY)).await;
    assert_eq!(c.recv().await["data"]["code"], 4004);
    assert_eq!(c.ended().await, Ended::Closed(4004));
}

async fn cache_channels_share_the_last_event(t: &Topology) {
    let cluster = Nodes::start(t, 2, DEFAULT_TOML).await;
    cluster.nodes[0]
        .api()
        .trigger(&["cache-x"], "price", "42")
        .await;
    let mut c = cluster.nodes[1].connect().await;
    c.subscribe("cache-x").await;
    assert_eq!(
        c.recv_text().await,
        r#"{"event":"price","channel":"cache-x","data":"42"}"#
    );
    let r = cluster.nodes[1]
        .api()
        .get("/channels/cache-x", &[("info", "cache")])
        .await;
    assert_eq!(r.body["cache"]["data"], "42");
}

/// Polls a condition every 50 ms for up to 10 s.
pub async fn poll_until<F, Fut>(mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn members_joining_at_once_on_three_nodes_all_end_with_the_exact_list(t: &Topology) {
    const N: usize = 30;
    let cluster = Nodes::start(t, 3, DEFAULT_TOML).await;
    let mut clients = Vec::new();
    for i in 0..N {
        clients.push(cluster.nodes[i % 3].connect().await);
    }
    let joins = clients.iter_mut().enumerate().map(|(i, c)| async move {
        let cd = format!(r#"{{"user_id":"u{i:02}"}}"#);
        c.subscribe_signed("presence-storm", Some(&cd)).await
    });
    let lists = futures_util::future::join_all(joins).await;
    let everyone: std::collections::BTreeSet<String> = (0..N).map(|i| format!("u{i:02}")).collect();
    for (i, (c, ok)) in clients.iter_mut().zip(lists).enumerate() {
        let data = Client::data(&ok);
        let mut seen: std::collections::BTreeSet<String> = data["presence"]["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        while seen != everyone {
            let v = c.expect("pusher_internal:member_added").await;
            let user = Client::data(&v)["user_id"].as_str().unwrap().to_owned();
            assert!(
                seen.insert(user.clone()),
                "client {i} was told twice about {user}"
            );
        }
        c.expect_nothing_queued().await;
    }
}

/// `api_requests_per_second` is one budget for the whole cluster: two nodes publishing as fast
/// as they can accept about the limit together, not twice it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_rate_limit_holds_for_the_whole_cluster() {
    let redis = herald_redis::test_support::RedisServer::start();
    let apps = "[[apps]]\nid=\"app-1\"\nkey=\"app-key\"\nsecret=\"app-secret\"\napi_requests_per_second = 50";
    let cluster = Nodes::start(&Topology::plain(&redis), 2, apps).await;
    let started = std::time::Instant::now();
    let until = started + std::time::Duration::from_secs(3);
    let publish = |node: &TestServer| {
        let api = node.api();
        async move {
            let (mut ok, mut limited) = (0u32, 0u32);
            while std::time::Instant::now() < until {
                match api.trigger(&["rated"], "e", "x").await.status {
                    200 => ok += 1,
                    429 => limited += 1,
                    other => panic!("publish answered {other}"),
                }
            }
            (ok, limited)
        }
    };
    let ((ok0, lim0), (ok1, lim1)) =
        tokio::join!(publish(&cluster.nodes[0]), publish(&cluster.nodes[1]));
    let seconds = started.elapsed().as_secs_f64();
    let accepted = ok0 + ok1;
    eprintln!(
        "rate limit: {accepted} accepted ({ok0} + {ok1}), {} refused with 429 in {seconds:.2} s",
        lim0 + lim1
    );
    // The window touches at most ceil(seconds) + 1 Redis seconds of 50 each; per-node budgets
    // would have let through about twice that.
    let most = 50 * (seconds.ceil() as u32 + 1);
    assert!(accepted <= most, "{accepted} accepted, more than {most}");
    assert!(
        accepted >= 50,
        "{accepted} accepted: the limit let through less than a second's worth"
    );
    assert!(
        lim0 > 0 && lim1 > 0,
        "both nodes were refused some: they share the budget"
    );
}
