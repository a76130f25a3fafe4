//! The configuration as written: every key, its default and what it means, in one place.
//! `impl Default` below is the only source of a default; the README's configuration reference
//! mirrors it, and the `HERALD_…` environment keys are derived from these fields
//! (`env_keys`), so a new key needs no second list.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::LogFormat;

/// Top-level keys (TOML file, `HERALD_{KEY}` variables, flags).
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawConfig {
    /// WebSocket `/app/{key}` and the HTTP API.
    pub bind: String,
    /// Optional separate HTTP API listener; the API then leaves `bind`.
    pub api_bind: Option<String>,
    /// `/metrics`, `/health`, `/ready`, `/usage`, the console and the admin surfaces.
    pub metrics_bind: String,
    /// The cluster backplane; absent = a single node in memory.
    pub redis_url: Option<String>,
    /// TLS to Redis (`rediss://`, `rediss+sentinel://`): a PEM CA trusted beside Mozilla's
    /// roots, and a PEM client certificate and key for mutual TLS.
    pub redis_tls_ca_file: Option<PathBuf>,
    pub redis_tls_cert_file: Option<PathBuf>,
    pub redis_tls_key_file: Option<PathBuf>,
    /// Key prefix, so several clusters can share one Redis.
    pub redis_prefix: String,
    /// Each node writes a heartbeat this often.
    pub heartbeat_interval_secs: u64,
    /// A node silent this long is dead: a survivor reaps its state.
    pub node_timeout_secs: u64,
    pub pid_file: Option<PathBuf>,
    /// Log every frame in and out.
    pub verbose: bool,
    pub log_format: LogFormat,
    /// Sent to clients; the server pings after this much silence.
    pub activity_timeout_secs: u64,
    /// Then closes with 4201 if nothing arrives.
    pub pong_timeout_secs: u64,
    /// TLS, HTTP head and HTTP body must arrive within this (slowloris).
    pub handshake_timeout_secs: u64,
    /// Largest client WebSocket message; larger closes with 1009.
    pub max_message_kb: usize,
    /// Largest HTTP API body (413 beyond).
    pub max_request_body_kb: usize,
    /// Frames queued per connection before it is cut off with 4100.
    pub outbox_capacity: usize,
    /// Per node: 4100 beyond it, `/ready` answers 503 when full.
    pub max_connections: Option<usize>,
    /// Missing `protocol` → 4008, malformed `version` → 4006.
    pub strict_protocol: bool,
    /// Also send subscription errors as `pusher:error` (hosted Pusher does).
    pub p_compat_errors: bool,
    /// Native TLS on `bind`: PEM chain and PEM key.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A webhook batch leaves this long after its first event…
    pub webhook_batch_ms: u64,
    /// …or when it holds this many.
    pub webhook_batch_size: usize,
    /// A POST not answered 2xx in time failed.
    pub webhook_timeout_secs: u64,
    /// First retry; doubles up to 60 s.
    pub webhook_retry_first_ms: u64,
    /// Then the batch is dead-lettered.
    pub webhook_retry_budget_secs: u64,
    /// `channel_vacated` / `member_removed` wait this long for a re-join.
    pub webhook_debounce_ms: u64,
    /// Extra trusted CAs for https:// webhook endpoints.
    pub webhook_ca_file: Option<PathBuf>,
    /// Shutdown closes connections in paced batches over this window.
    pub drain_secs: u64,
    /// `/ready` answers 503 above this share of `max_connections`.
    pub ready_high_water_percent: u8,
    /// HTTP API bad signatures per app and client address per minute before 429.
    pub api_auth_failures_per_minute: u32,
    /// Pending-connection queue of each listener.
    pub listen_backlog: u32,
    /// Behind a proxy: the client address is this header's last entry.
    pub client_ip_header: Option<String>,
    /// Unlocks every app in the debug console.
    pub console_token: Option<String>,
    /// `Authorization: Bearer …` for the admin surfaces; absent = they answer 404.
    pub admin_token: Option<String>,
    /// Where apps beside the file's come from: "file" (none), "memory", "redis".
    pub app_store: String,
    /// The database of a SQL app store.
    pub app_store_url: Option<String>,
    /// Its table (soketi's layout).
    pub app_store_table: String,
    /// A cached app store is read again this often.
    pub app_cache_secs: u64,
    /// A rotated-out secret still verifies this long.
    pub secret_grace_secs: u64,
    /// Shed connections when above the cluster mean by more than this (percent; 0: off).
    pub rebalance_tolerance_percent: u32,
    /// A node holding fewer connections never sheds.
    pub rebalance_min_connections: u64,
    /// Most connections shed per second (absent: 2 % of the node's).
    pub rebalance_max_per_second: Option<u64>,
    /// Peers whose `X-Forwarded-Proto: https` is believed: a TOML list, or one
    /// comma-separated string (environment).
    pub trusted_proxies: Option<OneOrMany>,
    /// Slanger's `--webhook-url`: one endpoint for every event kind of the environment app.
    pub webhook_url: Option<String>,
    /// A single app from the environment (12-factor): `HERALD_APP_ID`, `_KEY`, `_SECRET`.
    pub app_id: Option<String>,
    pub app_key: Option<String>,
    pub app_secret: Option<String>,
    pub apps: Vec<RawApp>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            bind: "0.0.0.0:6001".into(),
            api_bind: None,
            metrics_bind: "0.0.0.0:9601".into(),
            redis_url: None,
            redis_tls_ca_file: None,
            redis_tls_cert_file: None,
            redis_tls_key_file: None,
            redis_prefix: "herald".into(),
            heartbeat_interval_secs: 5,
            node_timeout_secs: 15,
            pid_file: None,
            verbose: false,
            log_format: LogFormat::Text,
            activity_timeout_secs: 120,
            pong_timeout_secs: 30,
            handshake_timeout_secs: 10,
            max_message_kb: 64,
            max_request_body_kb: 1024,
            outbox_capacity: 1024,
            max_connections: None,
            strict_protocol: false,
            p_compat_errors: false,
            tls_cert: None,
            tls_key: None,
            webhook_batch_ms: 250,
            webhook_batch_size: 20,
            webhook_timeout_secs: 10,
            webhook_retry_first_ms: 1000,
            webhook_retry_budget_secs: 300,
            webhook_debounce_ms: 3000,
            webhook_ca_file: None,
            drain_secs: 10,
            ready_high_water_percent: 90,
            api_auth_failures_per_minute: 60,
            listen_backlog: 4096,
            client_ip_header: None,
            console_token: None,
            admin_token: None,
            app_store: "file".into(),
            app_store_url: None,
            app_store_table: "apps".into(),
            app_cache_secs: 10,
            secret_grace_secs: 3600,
            rebalance_tolerance_percent: 20,
            rebalance_min_connections: 100,
            rebalance_max_per_second: None,
            trusted_proxies: None,
            webhook_url: None,
            app_id: None,
            app_key: None,
            app_secret: None,
            apps: Vec::new(),
        }
    }
}

/// One `[[apps]]` table. Its defaults are hosted Pusher's.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawApp {
    pub id: String,
    pub key: String,
    pub secret: String,
    /// false: WebSocket 4003, HTTP API 403.
    pub enabled: bool,
    /// Pusher's default is off.
    pub client_events: bool,
    /// `pusher:signin` accepted.
    pub user_authentication: bool,
    /// Online/offline events for watchlists.
    pub watchlist_events: bool,
    /// `pusher_internal:subscription_count` events to subscribers.
    pub subscription_count: bool,
    /// Sign in or subscribe privately within the timeout, else 4009.
    pub require_authorized_connection: bool,
    pub authorized_connection_timeout_secs: u64,
    /// Plain connections get 4000.
    pub tls_only: bool,
    /// Cluster-wide connections of the app (4004 beyond it).
    pub max_connections: Option<u64>,
    pub max_event_payload_kb: usize,
    pub max_event_name_len: usize,
    pub max_channel_name_len: usize,
    pub max_channels_per_trigger: usize,
    pub max_batch_events: usize,
    pub max_presence_members: usize,
    pub max_presence_user_info_kb: usize,
    /// Per connection; beyond it `pusher:error` 4301, the socket stays open.
    pub client_events_per_second: u32,
    pub max_channels_per_connection: usize,
    /// Cache channels remember their last event this long.
    pub cache_ttl_secs: u64,
    /// HTTP API requests per second (429 beyond; absent: unlimited).
    pub api_requests_per_second: Option<u32>,
    /// Log every frame of this app's connections.
    pub verbose: bool,
    pub webhooks: Vec<RawWebhook>,
}

impl Default for RawApp {
    fn default() -> Self {
        RawApp {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            enabled: true,
            client_events: false,
            user_authentication: true,
            watchlist_events: true,
            subscription_count: false,
            require_authorized_connection: false,
            authorized_connection_timeout_secs: 30,
            tls_only: false,
            max_connections: None,
            max_event_payload_kb: 10,
            max_event_name_len: 200,
            max_channel_name_len: 164,
            max_channels_per_trigger: 100,
            max_batch_events: 10,
            max_presence_members: 100,
            max_presence_user_info_kb: 1,
            client_events_per_second: 10,
            max_channels_per_connection: 10_000,
            cache_ttl_secs: 1800,
            api_requests_per_second: None,
            verbose: false,
            webhooks: Vec::new(),
        }
    }
}

/// One `[[apps.webhooks]]` endpoint.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub url: Option<String>,
    /// A Redis stream to append batches to instead of POSTing them.
    pub stream: Option<String>,
    /// Empty: every kind.
    pub event_types: Vec<String>,
    pub headers: HashMap<String, String>,
    pub filter: RawFilter,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawFilter {
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// A list of strings, given as a list (TOML) or as one comma-separated string (`HERALD_…`).
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

/// The top-level keys, as `HERALD_{KEY}` variables may set them: the fields of `RawConfig`.
pub(super) fn env_keys() -> Vec<String> {
    match serde_json::to_value(RawConfig::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Vec::new(),
    }
}
