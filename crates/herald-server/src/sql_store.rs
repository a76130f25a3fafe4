//! `app_store = "postgres"` / `"mysql"`: apps read from a table the user owns, in soketi's `apps`
//! layout, so a soketi deployment points Herald at the same database unchanged. Read-only: the
//! table is changed with SQL (the admin API answers 409). Each node reads the whole table every
//! `app_cache_secs`, and looks up a key or id it does not know once (a miss is remembered for a
//! while, so a flood of bad keys does not reach the database). On Postgres a
//! `NOTIFY herald_apps` (from a trigger, see README) makes every node read the table at once.
//!
//! Rows are fetched as JSON objects made by the database (`row_to_json`, `JSON_OBJECT`), so the
//! columns' SQL types do not matter (soketi's own schemas differ between versions and drivers),
//! and mapped to a record with the `[[apps]]` keys by `record_of_row`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::BackplaneError;
use herald_core::store::{AppStore, StoredApp, Written};
use serde_json::{Map, Value, json};
use sqlx::Row;
use tokio::sync::watch;

/// The Postgres channel a trigger notifies when the table changes.
pub const NOTIFY_CHANNEL: &str = "herald_apps";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SqlError(String);

fn sql_err(e: impl std::fmt::Display) -> BackplaneError {
    BackplaneError(Box::new(SqlError(e.to_string())))
}

enum Pool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

pub struct SqlAppStore {
    pool: Pool,
    table: String,
    changes: watch::Sender<u64>,
}

/// Which database a URL names: `postgres://` / `postgresql://`, or `mysql://` / `mariadb://`.
pub fn url_kind(url: &str) -> Option<&'static str> {
    let scheme = url.split_once("://")?.0;
    match scheme {
        "postgres" | "postgresql" => Some("postgres"),
        "mysql" | "mariadb" => Some("mysql"),
        _ => None,
    }
}

/// A table name as given (`apps`, `herald.apps`): letters, digits, `_` and one `.`.
pub fn valid_table(table: &str) -> bool {
    !table.is_empty()
        && table.split('.').count() <= 2
        && table
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

impl SqlAppStore {
    /// Connects lazily: the pool opens connections on first use, so a database that is down
    /// at start-up delays the apps (readiness waits), not the node.
    pub fn new(url: &str, table: &str) -> Result<Arc<SqlAppStore>, String> {
        let pool = match url_kind(url) {
            Some("postgres") => Pool::Postgres(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_lazy(url)
                    .map_err(|e| e.to_string())?,
            ),
            Some(_) => {
                // mariadb:// is a name for the same protocol.
                let url = url.replacen("mariadb://", "mysql://", 1);
                Pool::MySql(
                    sqlx::mysql::MySqlPoolOptions::new()
                        .max_connections(2)
                        .acquire_timeout(Duration::from_secs(5))
                        .connect_lazy(&url)
                        .map_err(|e| e.to_string())?,
                )
            }
            None => return Err("expected postgres://… or mysql://…".into()),
        };
        let store = Arc::new(SqlAppStore {
            pool,
            table: table.to_owned(),
            changes: watch::Sender::new(0),
        });
        if let Pool::Postgres(pool) = &store.pool {
            tokio::spawn(listen(pool.clone(), store.changes.clone()));
        }
        Ok(store)
    }

    /// The table's rows as JSON objects, optionally only those whose `column` is `value`.
    async fn rows(&self, filter: Option<(&str, &str)>) -> Result<Vec<Value>, BackplaneError> {
        let texts: Vec<String> = match &self.pool {
            Pool::Postgres(pool) => {
                let table = quote_pg(&self.table);
                let sql = match filter {
                    None => format!("SELECT row_to_json(t)::text FROM {table} t"),
                    Some((column, _)) => {
                        format!(
                            "SELECT row_to_json(t)::text FROM {table} t WHERE t.\"{column}\" = $1"
                        )
                    }
                };
                let mut q = sqlx::query(&sql);
                if let Some((_, v)) = filter {
                    q = q.bind(v.to_owned());
                }
                first_texts(q.fetch_all(pool).await.map_err(sql_err)?)?
            }
            Pool::MySql(pool) => {
                // MySQL has no row_to_json: the object is built from the table's columns.
                let (schema, name) = match self.table.split_once('.') {
                    Some((s, n)) => (Some(s), n),
                    None => (None, self.table.as_str()),
                };
                let columns = sqlx::query(
                    "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                     WHERE TABLE_NAME = ? AND TABLE_SCHEMA = COALESCE(?, DATABASE()) \
                     ORDER BY ORDINAL_POSITION",
                )
                .bind(name)
                .bind(schema)
                .fetch_all(pool)
                .await
                .map_err(sql_err)?;
                let columns = first_texts(columns)?;
                if columns.is_empty() {
                    return Err(sql_err(format!("table {} not found", self.table)));
                }
                let pairs: Vec<String> = columns
                    .iter()
                    .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                    .map(|c| format!("'{c}', `{c}`"))
                    .collect();
                let table = quote_mysql(&self.table);
                let mut sql = format!(
                    "SELECT CAST(JSON_OBJECT({}) AS CHAR) FROM {table}",
                    pairs.join(", ")
                );
                if let Some((column, _)) = filter {
                    sql.push_str(&format!(" WHERE `{column}` = ?"));
                }
                let mut q = sqlx::query(&sql);
                if let Some((_, v)) = filter {
                    q = q.bind(v.to_owned());
                }
                first_texts(q.fetch_all(pool).await.map_err(sql_err)?)?
            }
        };
        Ok(texts
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    fn stored(row: &Value) -> Option<StoredApp> {
        let record = record_of_row(row)?;
        Some(StoredApp {
            id: record["id"].as_str()?.to_owned(),
            key: record["key"].as_str()?.to_owned(),
            record: record.to_string(),
        })
    }
}

/// Each row's first column, as text (the queries above select one text column).
fn first_texts<R>(rows: Vec<R>) -> Result<Vec<String>, BackplaneError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(sql_err)
}

fn quote_pg(table: &str) -> String {
    table
        .split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

fn quote_mysql(table: &str) -> String {
    table
        .split('.')
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(".")
}

/// LISTEN herald_apps for as long as the process runs (reconnecting), bumping `changes` on
/// every notification and after every reconnection (a notification may have been missed).
async fn listen(pool: sqlx::PgPool, changes: watch::Sender<u64>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        let mut l = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "LISTEN {NOTIFY_CHANNEL} not established; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        changes.send_modify(|n| *n += 1);
        loop {
            match l.try_recv().await {
                Ok(Some(_)) => changes.send_modify(|n| *n += 1),
                // The connection was lost and is re-established by the listener itself.
                Ok(None) => changes.send_modify(|n| *n += 1),
                Err(e) => {
                    tracing::debug!(error = %e, "LISTEN {NOTIFY_CHANNEL} lost");
                    break;
                }
            }
        }
    }
}

/// A soketi `apps` row (any of soketi's column spellings, numbers or strings, 0/1 or booleans)
/// as a record with the `[[apps]]` keys; None without an id, key and secret. soketi's -1 (and
/// 0) mean "no limit" and leave Herald's default.
pub fn record_of_row(row: &Value) -> Option<Value> {
    let get = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| row.get(*n).filter(|v| !v.is_null()))
    };
    let text = |names: &[&str]| {
        get(names).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let number = |names: &[&str]| {
        get(names).and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    };
    let flag = |names: &[&str]| {
        get(names).and_then(|v| match v {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => Some(n.as_f64() != Some(0.0)),
            Value::String(s) => match s.as_str() {
                "1" | "true" | "t" => Some(true),
                "0" | "false" | "f" => Some(false),
                _ => None,
            },
            _ => None,
        })
    };
    let mut r = Map::new();
    r.insert("id".into(), json!(text(&["id", "app_id", "AppId"])?));
    r.insert("key".into(), json!(text(&["key", "app_key", "AppKey"])?));
    r.insert(
        "secret".into(),
        json!(text(&["secret", "app_secret", "AppSecret"])?),
    );
    if let Some(b) = flag(&["enabled", "Enabled"]) {
        r.insert("enabled".into(), json!(b));
    }
    if let Some(b) = flag(&["enable_client_messages", "enableClientMessages"]) {
        r.insert("client_events".into(), json!(b));
    }
    // soketi's enable_user_authentication makes connections sign in within a timeout.
    if let Some(b) = flag(&["enable_user_authentication", "enableUserAuthentication"]) {
        r.insert("require_authorized_connection".into(), json!(b));
    }
    let limits: [(&[&str], &str); 10] = [
        (&["max_connections", "maxConnections"], "max_connections"),
        (
            &[
                "max_client_events_per_sec",
                "max_client_events_per_second",
                "maxClientEventsPerSecond",
            ],
            "client_events_per_second",
        ),
        (
            &[
                "max_backend_events_per_sec",
                "max_backend_events_per_second",
                "maxBackendEventsPerSecond",
            ],
            "api_requests_per_second",
        ),
        (
            &["max_presence_members_per_channel"],
            "max_presence_members",
        ),
        (
            &["max_presence_member_size_in_kb"],
            "max_presence_user_info_kb",
        ),
        (&["max_channel_name_length"], "max_channel_name_len"),
        (&["max_event_channels_at_once"], "max_channels_per_trigger"),
        (&["max_event_name_length"], "max_event_name_len"),
        (&["max_event_payload_in_kb"], "max_event_payload_kb"),
        (&["max_event_batch_size"], "max_batch_events"),
    ];
    for (names, key) in limits {
        if let Some(n) = number(names).filter(|n| *n >= 1.0) {
            r.insert(key.into(), json!(n.ceil() as u64));
        }
    }
    let webhooks = match get(&["webhooks", "Webhooks"]) {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    let hooks: Vec<Value> = webhooks
        .as_array()
        .map(|list| list.iter().filter_map(webhook_of).collect())
        .unwrap_or_default();
    if !hooks.is_empty() {
        r.insert("webhooks".into(), Value::Array(hooks));
    }
    Some(Value::Object(r))
}

/// A soketi webhook (`url`, `event_types`, `headers`, `filter.channel_name_starts_with` /
/// `_ends_with`) as an `[[apps.webhooks]]` table; Lambda targets are not supported (skipped).
fn webhook_of(w: &Value) -> Option<Value> {
    let url = w.get("url")?.as_str()?;
    let mut out = json!({ "url": url });
    if let Some(types) = w.get("event_types").filter(|t| t.is_array()) {
        out["event_types"] = types.clone();
    }
    if let Some(headers) = w.get("headers").filter(|h| h.is_object()) {
        out["headers"] = headers.clone();
    }
    if let Some(filter) = w.get("filter") {
        let mut f = Map::new();
        if let Some(p) = filter
            .get("channel_name_starts_with")
            .and_then(Value::as_str)
        {
            f.insert("prefix".into(), json!(p));
        }
        if let Some(s) = filter.get("channel_name_ends_with").and_then(Value::as_str) {
            f.insert("suffix".into(), json!(s));
        }
        if !f.is_empty() {
            out["filter"] = Value::Object(f);
        }
    }
    Some(out)
}

fn read_only() -> BackplaneError {
    sql_err("a SQL app store is read-only")
}

#[async_trait]
impl AppStore for SqlAppStore {
    async fn list(&self) -> Result<Vec<StoredApp>, BackplaneError> {
        Ok(self
            .rows(None)
            .await?
            .iter()
            .filter_map(Self::stored)
            .collect())
    }

    async fn get(&self, id: &str) -> Result<Option<StoredApp>, BackplaneError> {
        Ok(self
            .rows(Some(("id", id)))
            .await?
            .iter()
            .find_map(Self::stored))
    }

    async fn find_key(&self, key: &str) -> Result<Option<StoredApp>, BackplaneError> {
        Ok(self
            .rows(Some(("key", key)))
            .await?
            .iter()
            .find_map(Self::stored))
    }

    fn writable(&self) -> bool {
        false
    }

    fn looks_up(&self) -> bool {
        true
    }

    async fn create(&self, _: &StoredApp) -> Result<Written, BackplaneError> {
        Err(read_only())
    }

    async fn update(&self, _: &StoredApp, _: &StoredApp) -> Result<Written, BackplaneError> {
        Err(read_only())
    }

    async fn delete(&self, _: &str) -> Result<Written, BackplaneError> {
        Err(read_only())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soketi_rows_map_to_app_records() {
        // As Postgres's row_to_json gives a soketi row.
        let row = json!({
            "id": "app-1", "key": "k", "secret": "s", "max_connections": -1,
            "enable_client_messages": true, "enabled": true,
            "max_backend_events_per_sec": 50, "max_client_events_per_sec": -1,
            "max_read_req_per_sec": -1,
            "webhooks": [{"url": "https://example.test/h", "event_types": ["channel_occupied"],
                          "filter": {"channel_name_starts_with": "pre-"}},
                         {"lambda_function": "f", "event_types": ["member_added"]}],
            "max_presence_members_per_channel": null, "max_presence_member_size_in_kb": 2,
            "max_channel_name_length": null, "max_event_channels_at_once": 20,
            "max_event_name_length": null, "max_event_payload_in_kb": 100,
            "max_event_batch_size": null, "enable_user_authentication": false
        });
        let r = record_of_row(&row).unwrap();
        assert_eq!(
            r,
            json!({
                "id": "app-1", "key": "k", "secret": "s", "enabled": true,
                "client_events": true, "require_authorized_connection": false,
                "api_requests_per_second": 50, "max_presence_user_info_kb": 2,
                "max_channels_per_trigger": 20, "max_event_payload_kb": 100,
                "webhooks": [{"url": "https://example.test/h", "event_types": ["channel_occupied"],
                              "filter": {"prefix": "pre-"}}]
            })
        );
        // As MySQL's JSON_OBJECT gives one (tinyint flags, webhooks as text on MariaDB).
        let row = json!({"id": 7, "key": "k", "secret": "s", "enabled": 0,
                         "enable_client_messages": 1, "webhooks": "[{\"url\":\"http://h.test/x\"}]",
                         "max_connections": "100"});
        let r = record_of_row(&row).unwrap();
        assert_eq!(r["id"], "7");
        assert_eq!(r["enabled"], false);
        assert_eq!(r["client_events"], true);
        assert_eq!(r["max_connections"], 100);
        assert_eq!(r["webhooks"][0]["url"], "http://h.test/x");
        assert!(
            record_of_row(&json!({"id": "x", "key": "k"})).is_none(),
            "no secret"
        );
    }

    #[test]
    fn urls_and_tables() {
        assert_eq!(url_kind("postgres://u:p@h/db"), Some("postgres"));
        assert_eq!(url_kind("postgresql://h/db"), Some("postgres"));
        assert_eq!(url_kind("mysql://h/db"), Some("mysql"));
        assert_eq!(url_kind("mariadb://h/db"), Some("mysql"));
        assert_eq!(url_kind("redis://h"), None);
        assert!(valid_table("apps") && valid_table("herald.apps"));
        assert!(!valid_table("apps; DROP TABLE x") && !valid_table("a.b.c") && !valid_table(""));
    }
}
