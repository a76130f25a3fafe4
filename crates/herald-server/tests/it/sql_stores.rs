//! SQL app stores against real servers: soketi's `apps` table on Postgres and on MariaDB,
//! created with soketi's own DDL. A row is an app; a changed row takes effect within
//! `app_cache_secs`; an unknown key is looked up once (a new row works at once); on Postgres a
//! `NOTIFY herald_apps` applies a change at once; the admin API cannot write (409).

use std::time::Duration;

use serde_json::json;
use sqlx::Executor;

use crate::databases::{MariaDb, Postgres};
use crate::support::*;

/// soketi's table (its documentation's DDL), for either database.
const SOKETI_APPS_PG: &str = "CREATE TABLE apps (
    id varchar(255) NOT NULL,
    key varchar(255) NOT NULL,
    secret varchar(255) NOT NULL,
    max_connections integer NOT NULL,
    enable_client_messages boolean NOT NULL,
    enabled boolean NOT NULL,
    max_backend_events_per_sec integer NOT NULL,
    max_client_events_per_sec integer NOT NULL,
    max_read_req_per_sec integer NOT NULL,
    webhooks json,
    max_presence_members_per_channel integer NULL,
    max_presence_member_size_in_kb integer NULL,
    max_channel_name_length integer NULL,
    max_event_channels_at_once integer NULL,
    max_event_name_length integer NULL,
    max_event_payload_in_kb integer NULL,
    max_event_batch_size integer NULL,
    enable_user_authentication boolean NOT NULL,
    PRIMARY KEY (id)
)";

const SOKETI_APPS_MYSQL: &str = "CREATE TABLE `apps` (
    `id` varchar(255) NOT NULL,
    `key` varchar(255) NOT NULL,
    `secret` varchar(255) NOT NULL,
    `max_connections` integer(10) NOT NULL,
    `enable_client_messages` tinyint(1) NOT NULL,
    `enabled` tinyint(1) NOT NULL,
    `max_backend_events_per_sec` integer(10) NOT NULL,
    `max_client_events_per_sec` integer(10) NOT NULL,
    `max_read_req_per_sec` integer(10) NOT NULL,
    `webhooks` json,
    `max_presence_members_per_channel` tinyint(1) NULL,
    `max_presence_member_size_in_kb` tinyint(1) NULL,
    `max_channel_name_length` tinyint(1) NULL,
    `max_event_channels_at_once` tinyint(1) NULL,
    `max_event_name_length` tinyint(1) NULL,
    `max_event_payload_in_kb` tinyint(1) NULL,
    `max_event_batch_size` tinyint(1) NULL,
    `enable_user_authentication` tinyint(1) NOT NULL,
    PRIMARY KEY (`id`)
)";

/// An INSERT of an app row in soketi's layout (the same text on both databases but for the
/// quoting of `key`, a reserved word on MySQL).
fn insert(mysql: bool, id: &str, key: &str, secret: &str) -> String {
    let k = if mysql { "`key`" } else { "key" };
    format!(
        "INSERT INTO apps (id, {k}, secret, max_connections, enable_client_messages, enabled, \
         max_backend_events_per_sec, max_client_events_per_sec, max_read_req_per_sec, webhooks, \
         enable_user_authentication) \
         VALUES ('{id}', '{key}', '{secret}', -1, true, true, -1, -1, -1, '[]', false)"
    )
}

async fn exec(url: &str, sql: &str) {
    if url.starts_with("postgres") {
        let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        c.execute(sql).await.unwrap();
    } else {
        let mut c = <sqlx::MySqlConnection as sqlx::Connection>::connect(url)
            .await
            .unwrap();
        c.execute(sql).await.unwrap();
    }
}

fn node_toml(kind: &str, url: &str, cache_secs: u64) -> String {
    format!(
        "app_store = \"{kind}\"\napp_store_url = \"{url}\"\napp_cache_secs = {cache_secs}\nadmin_token = \"{ADMIN_TOKEN}\"\n"
    )
}

/// Connects with `key` until it is admitted (a row the node has not read yet); fails after
/// `secs`.
async fn connects_within(node: &TestServer, key: &str, secs: u64) -> Client {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let mut c = Client::connect_raw(&node.ws_url(key)).await;
        let first = c.recv().await;
        if first["event"] == "pusher:connection_established" {
            let data: serde_json::Value =
                serde_json::from_str(first["data"].as_str().unwrap()).unwrap();
            c.socket_id = data["socket_id"].as_str().unwrap().to_owned();
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} not admitted within {secs} s: {first}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first refusal code a connection with `key` gets (None when admitted).
async fn refusal(node: &TestServer, key: &str) -> Option<u16> {
    let mut c = Client::connect_raw(&node.ws_url(key)).await;
    let first = c.recv().await;
    (first["event"] == "pusher:error")
        .then(|| Client::data(&first)["code"].as_u64().unwrap() as u16)
}

async fn sql_store_scenario(kind: &str, url: &str) {
    let mysql = kind == "mysql";
    exec(
        url,
        if mysql {
            SOKETI_APPS_MYSQL
        } else {
            SOKETI_APPS_PG
        },
    )
    .await;
    exec(url, &insert(mysql, "sql-1", "sql-key", "sql-secret")).await;
    // One node reads the table every second; the other only every hour, so what it learns
    // sooner comes from a lookup or (Postgres) a notification.
    let quick = TestServer::with_config(&node_toml(kind, url, 1)).await;
    let slow = TestServer::with_config(&node_toml(kind, url, 3600)).await;
    quick.wait_ready(true).await;
    slow.wait_ready(true).await;

    // The row is an app: connections, signed API calls, client events (enable_client_messages).
    let mut c = connects_within(&quick, "sql-key", 5).await;
    assert_eq!(
        c.subscribe("news").await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let api = Api {
        addr: quick.addr,
        app_id: "sql-1".into(),
        key: "sql-key".into(),
        secret: "sql-secret".into(),
    };
    assert_eq!(api.trigger(&["news"], "hi", "1").await.status, 200);
    assert_eq!(c.expect("hi").await["data"], "1");
    let r = raw_http_with(
        quick.admin,
        "GET",
        "/admin/apps/sql-1",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(r.body["client_events"], true, "{}", r.body);
    assert_eq!(r.body["source"], "store");

    // A new row works at once on the slow node too: its unknown key is looked up.
    exec(url, &insert(mysql, "sql-2", "sql-key-2", "secret-2")).await;
    connects_within(&slow, "sql-key-2", 2).await.close().await;
    let api2 = Api {
        addr: slow.addr,
        app_id: "sql-2".into(),
        key: "sql-key-2".into(),
        secret: "secret-2".into(),
    };
    assert_eq!(api2.trigger(&["news"], "hi", "2").await.status, 200);

    // Unknown keys are refused with 4001, repeatedly, without a restart of anything.
    for i in 0..20 {
        assert_eq!(
            refusal(&slow, &format!("nobody-{}", i % 3)).await,
            Some(4001)
        );
    }

    // A changed row: the quick node applies it within its second; open connections of a
    // disabled app close with 4003.
    exec(url, "UPDATE apps SET enabled = false WHERE id = 'sql-1'").await;
    assert_eq!(c.ended().await, Ended::Closed(4003));
    assert_eq!(refusal(&quick, "sql-key").await, Some(4003));
    exec(url, "DELETE FROM apps WHERE id = 'sql-1'").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while refusal(&quick, "sql-key").await != Some(4001) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a deleted row still admitted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    if !mysql {
        // Postgres: a notification makes even the slow node read the table at once.
        exec(url, "UPDATE apps SET enabled = false WHERE id = 'sql-2'").await;
        exec(url, "NOTIFY herald_apps").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while refusal(&slow, "sql-key-2").await != Some(4003) {
            assert!(tokio::time::Instant::now() < deadline, "NOTIFY not applied");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // The table belongs to its owner: the admin API does not write it.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = raw_http_with(
        quick.admin,
        "POST",
        "/admin/apps",
        &[("Authorization", &auth)],
        &json!({"id": "x"}).to_string(),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains("read-only"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soketis_apps_table_on_postgres() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    sql_store_scenario("postgres", &pg.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soketis_apps_table_on_mariadb() {
    let db = tokio::task::spawn_blocking(MariaDb::start).await.unwrap();
    exec(&db.url("mysql"), "CREATE DATABASE herald").await;
    sql_store_scenario("mysql", &db.url("herald")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_keeps_the_node_unready_not_dead() {
    // Nothing listens on this port: the node starts, says why it is not ready, and serves its
    // file apps' probes.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let node = TestServer::with_config(&format!(
        "{}{DEFAULT_TOML}",
        node_toml(
            "postgres",
            &format!("postgres://herald:pw@127.0.0.1:{port}/x"),
            1
        )
    ))
    .await;
    let r = raw_http(node.admin, "GET", "/ready", "").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body.as_str(), Some("APPS NOT LOADED"), "{}", r.body);
    assert_eq!(raw_http(node.admin, "GET", "/health", "").await.status, 200);
}
