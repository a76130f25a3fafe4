//! Configuration: built-in defaults, then an optional TOML file, then `HERALD_…` environment
//! variables (then command-line flags, applied by `main`). Loaded once, validated into typed
//! values; any bad explicit value fails start-up with the key's name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_core::{App, AppFeatures, Apps, WebhookEndpoint, WebhookTarget};
use herald_protocol::Limits;
use herald_protocol::webhook::WebhookKind;
use hyper::header::HeaderName;
use serde::Deserialize;

/// The development app used when nothing else is configured.
pub const DEV_APP: (&str, &str, &str) = ("app-id", "app-key", "app-secret");

/// A configuration error that names the offending key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// The typed node configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub api_bind: Option<SocketAddr>,
    pub metrics_bind: SocketAddr,
    pub redis_url: Option<String>,
    /// Key prefix in Redis, so several clusters can share one server.
    pub redis_prefix: String,
    pub heartbeat_interval: Duration,
    /// A node whose heartbeat is older than this is dead and gets reaped.
    pub node_timeout: Duration,
    pub pid_file: Option<PathBuf>,
    pub verbose: bool,
    pub log_format: LogFormat,
    pub activity_timeout: Duration,
    pub pong_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_message_bytes: usize,
    pub max_request_body_bytes: usize,
    pub outbox_capacity: usize,
    pub max_connections: Option<usize>,
    pub strict_protocol: bool,
    pub p_compat_errors: bool,
    pub tls: Option<TlsFiles>,
    pub apps: Apps,
    pub webhooks: crate::webhook::WebhookConfig,
    pub webhook_debounce: Duration,
    /// Extra trusted certificates (PEM) for HTTPS webhook endpoints.
    pub webhook_ca_file: Option<PathBuf>,
    /// Shutdown closes connections in paced batches spread over this window.
    pub drain_window: Duration,
    /// `/ready` answers 503 once this share (percent) of `max_connections` is in use.
    pub ready_high_water_percent: u8,
    /// HTTP API signature failures one client address may make per app and minute; further
    /// failures get 429 for the rest of the minute (0: no limit).
    pub api_auth_failures_per_minute: u32,
    /// Pending-connection queue of each listener (`listen(2)` backlog; the kernel caps it at
    /// `net.core.somaxconn`). A connection storm beyond it sees refused or retried SYNs.
    pub listen_backlog: u32,
    /// Unlocks every app in the debug console (`/console` on the admin listener).
    pub console_token: Option<herald_protocol::Secret>,
    /// Header that carries the client's address behind a proxy (e.g. `x-forwarded-for`: its
    /// last entry); None uses the TCP peer.
    pub client_ip_header: Option<String>,
    /// Bearer token of the admin surfaces on the admin listener (dead letters; the apps API).
    /// None: they answer 404.
    pub admin_token: Option<herald_protocol::Secret>,
    /// Peers whose `X-Forwarded-Proto: https` is believed (a TLS-terminating proxy in front):
    /// from anyone else the header is ignored, so `tls_only` cannot be talked around.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// True when no app was configured and the development app is in use.
    pub dev_app: bool,
    /// `HERALD_…` environment variables that are not configuration keys (logged as warnings).
    pub ignored_env: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_bind")]
    bind: String,
    api_bind: Option<String>,
    #[serde(default = "default_metrics_bind")]
    metrics_bind: String,
    redis_url: Option<String>,
    #[serde(default = "default_prefix")]
    redis_prefix: String,
    #[serde(default = "d5")]
    heartbeat_interval_secs: u64,
    #[serde(default = "d15")]
    node_timeout_secs: u64,
    pid_file: Option<PathBuf>,
    #[serde(default)]
    verbose: bool,
    #[serde(default = "default_log_format")]
    log_format: LogFormat,
    #[serde(default = "d120")]
    activity_timeout_secs: u64,
    #[serde(default = "d30")]
    pong_timeout_secs: u64,
    #[serde(default = "d10")]
    handshake_timeout_secs: u64,
    #[serde(default = "d64")]
    max_message_kb: usize,
    #[serde(default = "d1024")]
    max_request_body_kb: usize,
    #[serde(default = "d1024")]
    outbox_capacity: usize,
    max_connections: Option<usize>,
    #[serde(default)]
    strict_protocol: bool,
    #[serde(default)]
    p_compat_errors: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default = "d250")]
    webhook_batch_ms: u64,
    #[serde(default = "d20")]
    webhook_batch_size: usize,
    #[serde(default = "d10")]
    webhook_timeout_secs: u64,
    #[serde(default = "d1000")]
    webhook_retry_first_ms: u64,
    #[serde(default = "d300")]
    webhook_retry_budget_secs: u64,
    #[serde(default = "d3000")]
    webhook_debounce_ms: u64,
    webhook_ca_file: Option<PathBuf>,
    #[serde(default = "d10")]
    drain_secs: u64,
    #[serde(default = "d90")]
    ready_high_water_percent: u8,
    #[serde(default = "d60")]
    api_auth_failures_per_minute: u32,
    #[serde(default = "d4096")]
    listen_backlog: u32,
    client_ip_header: Option<String>,
    console_token: Option<String>,
    admin_token: Option<String>,
    /// A TOML list, or one comma-separated string (environment).
    trusted_proxies: Option<OneOrMany>,
    /// Slanger's `--webhook-url`: one endpoint for every event kind of the environment app.
    webhook_url: Option<String>,
    /// A single app from the environment (12-factor): `HERALD_APP_ID`, `_KEY`, `_SECRET`.
    app_id: Option<String>,
    app_key: Option<String>,
    app_secret: Option<String>,
    #[serde(default)]
    apps: Vec<RawApp>,
}

/// A list of strings, given as a list (TOML) or as one comma-separated string (`HERALD_…`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
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

/// `10.0.0.0/8`, `fd00::/8` or a single address.
fn trusted_proxies(raw: Option<OneOrMany>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    raw.map(OneOrMany::into_vec)
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    err(
                        "trusted_proxies",
                        format!(
                            "expected an address or a CIDR range such as 10.0.0.0/8, got '{entry}'"
                        ),
                    )
                })
        })
        .collect()
}

/// A bearer token that unlocks something for everyone who holds it: long enough not to guess.
fn token(
    key: &str,
    raw: Option<String>,
    unlocks: &str,
) -> Result<Option<herald_protocol::Secret>, ConfigError> {
    match raw {
        Some(t) if t.chars().count() < 12 => Err(err(
            key,
            format!("must be at least 12 characters (it unlocks {unlocks})"),
        )),
        t => Ok(t.map(herald_protocol::Secret::new)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    id: String,
    key: String,
    secret: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    client_events: bool,
    #[serde(default = "yes")]
    user_authentication: bool,
    #[serde(default = "yes")]
    watchlist_events: bool,
    #[serde(default)]
    subscription_count: bool,
    #[serde(default)]
    require_authorized_connection: bool,
    #[serde(default = "d30")]
    authorized_connection_timeout_secs: u64,
    #[serde(default)]
    tls_only: bool,
    max_connections: Option<u64>,
    #[serde(default = "d10")]
    max_event_payload_kb: usize,
    #[serde(default = "d200")]
    max_event_name_len: usize,
    #[serde(default = "d164")]
    max_channel_name_len: usize,
    #[serde(default = "d100")]
    max_channels_per_trigger: usize,
    #[serde(default = "d10")]
    max_batch_events: usize,
    #[serde(default = "d100")]
    max_presence_members: usize,
    #[serde(default = "d1")]
    max_presence_user_info_kb: usize,
    #[serde(default = "d10")]
    client_events_per_second: u32,
    #[serde(default = "d10000")]
    max_channels_per_connection: usize,
    #[serde(default = "d1800")]
    cache_ttl_secs: u64,
    api_requests_per_second: Option<u32>,
    #[serde(default)]
    verbose: bool,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
    /// A Redis stream to append batches to instead of POSTing them.
    stream: Option<String>,
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    filter: RawFilter,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    prefix: Option<String>,
    suffix: Option<String>,
}

fn default_bind() -> String {
    "0.0.0.0:6001".into()
}
fn default_metrics_bind() -> String {
    "0.0.0.0:9601".into()
}
fn d60() -> u32 {
    60
}

fn d90() -> u8 {
    90
}
fn d20() -> usize {
    20
}
fn d250() -> u64 {
    250
}
fn d300() -> u64 {
    300
}
fn d1000() -> u64 {
    1000
}
fn d3000() -> u64 {
    3000
}
fn default_prefix() -> String {
    "herald".into()
}
fn d5() -> u64 {
    5
}
fn d15() -> u64 {
    15
}
fn default_log_format() -> LogFormat {
    LogFormat::Text
}
fn yes() -> bool {
    true
}
fn d1() -> usize {
    1
}
fn d10<T: From<u8>>() -> T {
    T::from(10)
}
fn d30() -> u64 {
    30
}
fn d64() -> usize {
    64
}
fn d100() -> usize {
    100
}
fn d120() -> u64 {
    120
}
fn d164() -> usize {
    164
}
fn d200() -> usize {
    200
}
fn d1024() -> usize {
    1024
}
fn d4096() -> u32 {
    4096
}
fn d1800() -> u64 {
    1800
}
fn d10000() -> usize {
    10_000
}

/// Where configuration comes from. `main` passes the process environment; tests pass a map
/// (never `std::env::set_var`).
#[derive(Default)]
pub struct Sources<'a> {
    pub file: Option<&'a Path>,
    /// TOML text used instead of a file (tests).
    pub toml: Option<&'a str>,
    /// Environment variables (only `HERALD_…` ones are read).
    pub env: HashMap<String, String>,
    /// Command-line overrides as `(key, value)`, applied last.
    pub overrides: Vec<(&'static str, String)>,
}

/// Top-level keys that may come from `HERALD_{KEY}` environment variables.
const ENV_KEYS: [&str; 41] = [
    "listen_backlog",
    "console_token",
    "admin_token",
    "trusted_proxies",
    "api_auth_failures_per_minute",
    "client_ip_header",
    "webhook_ca_file",
    "drain_secs",
    "ready_high_water_percent",
    "webhook_batch_ms",
    "webhook_batch_size",
    "webhook_timeout_secs",
    "webhook_retry_first_ms",
    "webhook_retry_budget_secs",
    "webhook_debounce_ms",
    "redis_prefix",
    "heartbeat_interval_secs",
    "node_timeout_secs",
    "bind",
    "api_bind",
    "metrics_bind",
    "redis_url",
    "pid_file",
    "verbose",
    "log_format",
    "activity_timeout_secs",
    "pong_timeout_secs",
    "handshake_timeout_secs",
    "max_message_kb",
    "max_request_body_kb",
    "outbox_capacity",
    "max_connections",
    "strict_protocol",
    "p_compat_errors",
    "tls_cert",
    "tls_key",
    "webhook_url",
    "app_id",
    "app_key",
    "app_secret",
    "apps",
];

/// Splits `HERALD_…` variables into configuration and ignored names. Unknown names are not
/// fatal: Kubernetes injects `HERALD_PORT`, `HERALD_SERVICE_HOST`… for a Service named `herald`.
fn env_config(env: HashMap<String, String>) -> (HashMap<String, String>, Vec<String>) {
    let mut used = HashMap::new();
    let mut ignored = Vec::new();
    for (name, value) in env {
        let Some(key) = name.strip_prefix("HERALD_") else {
            continue;
        };
        let top = key
            .split("__")
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if top == "log" {
            continue; // HERALD_LOG is the log filter, read by the logger.
        }
        // Only plain names reach the config crate (see `plain_key`).
        if ENV_KEYS.contains(&top.as_str()) && key.split("__").all(plain_key) {
            used.insert(name, value);
        } else if !is_service_link(key) {
            ignored.push(name);
        }
    }
    ignored.sort();
    (used, ignored)
}

/// `PORT`, `SERVICE_HOST`, `PORT_6001_TCP_ADDR`…: Kubernetes service-link variables.
/// `PORT`, `SERVICE_HOST`, `METRICS_PORT_9601_TCP_ADDR`…: what Kubernetes injects for a
/// Service named `herald` or `herald-…`.
fn is_service_link(key: &str) -> bool {
    key == "PORT"
        || key.starts_with("SERVICE_")
        || key.starts_with("PORT_")
        || key.ends_with("_SERVICE_HOST")
        || key.contains("_SERVICE_PORT")
        || key.ends_with("_PORT")
        || key.contains("_PORT_")
}

/// Keys are plain names: the `config` crate reads `name[N]` in a key as a list index and
/// allocates N elements, so `'a[66666660]' = 0` took 6 GB before any check could refuse the
/// unknown key (found by fuzzing). Every key is checked first.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_keys(table: &toml::Table, at: &str) -> Result<(), ConfigError> {
    for (key, value) in table {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        if !plain_key(key) {
            return Err(err(path, "not a configuration key"));
        }
        match value {
            toml::Value::Table(t) => check_keys(t, &path)?,
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(t) = item {
                        check_keys(t, &format!("{path}[{i}]"))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses TOML text (for its key check); the message names the file.
fn checked_toml(text: &str, origin: &str) -> Result<(), ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(origin, format!("invalid TOML: {}", e.message())))?;
    check_keys(&table, "")
}

impl Config {
    pub fn load(src: Sources<'_>) -> Result<Config, ConfigError> {
        let mut b = config::Config::builder();
        if let Some(path) = src.file {
            if !path.exists() {
                return Err(err(
                    "--config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
            checked_toml(&text, &path.display().to_string())?;
            b = b.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        if let Some(text) = src.toml {
            checked_toml(text, "config")?;
            b = b.add_source(config::File::from_str(text, config::FileFormat::Toml));
        }
        let (env, ignored_env) = env_config(src.env);
        b = b.add_source(
            config::Environment::with_prefix("HERALD")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        for (key, value) in src.overrides {
            b = b
                .set_override(key, value)
                .map_err(|e| err(key, e.to_string()))?;
        }
        let raw: RawConfig = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| err(config_error_key(&e), e.to_string()))?;
        let mut config = Config::try_from(raw)?;
        config.ignored_env = ignored_env;
        Ok(config)
    }
}

/// The config crate puts the key in its message; pull it out for the `key:` prefix.
fn config_error_key(e: &config::ConfigError) -> String {
    let text = e.to_string();
    if let Some(start) = text.find("for key `") {
        let rest = &text[start + 9..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_owned();
        }
    }
    if let Some(start) = text.find("unknown field `") {
        let rest = &text[start + 15..];
        if let Some(end) = rest.find('`') {
            return rest[..end].to_owned();
        }
    }
    "config".to_owned()
}

fn addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        err(
            key,
            format!("expected HOST:PORT such as 0.0.0.0:6001, got '{value}'"),
        )
    })
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(
    key: &str,
    v: T,
) -> Result<T, ConfigError> {
    if v > T::default() {
        Ok(v)
    } else {
        Err(err(key, format!("must be greater than 0, got {v}")))
    }
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Config, ConfigError> {
        let mut apps = Vec::new();
        for (i, a) in raw.apps.into_iter().enumerate() {
            apps.push(app(&format!("apps[{i}]"), a, raw.redis_url.is_some())?);
        }
        match (raw.app_id, raw.app_key, raw.app_secret) {
            (Some(id), Some(key), Some(secret)) => {
                let mut a = App::new(&id, &key, &secret);
                check_credentials("app_id", &a)?;
                if let Some(url) = &raw.webhook_url {
                    a.webhooks.push(WebhookEndpoint {
                        target: WebhookTarget::Http(webhook_url("webhook_url", url)?),
                        event_types: WebhookKind::ALL.to_vec(),
                        headers: Vec::new(),
                        filter_prefix: None,
                        filter_suffix: None,
                    });
                }
                apps.push(a);
            }
            (None, None, None) => {
                if raw.webhook_url.is_some() {
                    return Err(err(
                        "webhook_url",
                        "needs the app_id, app_key and app_secret of the app it belongs to; use [[apps.webhooks]] for apps in the file",
                    ));
                }
            }
            _ => {
                return Err(err(
                    "app_id",
                    "HERALD_APP_ID, HERALD_APP_KEY and HERALD_APP_SECRET must be given together",
                ));
            }
        }
        let dev_app = apps.is_empty();
        if dev_app {
            let (id, key, secret) = DEV_APP;
            let mut a = App::new(id, key, secret);
            a.features.client_events = true;
            a.features.subscription_count = true;
            apps.push(a);
        }
        let apps = Apps::new(apps).map_err(|m| err("apps", m))?;
        if let Some(url) = &raw.redis_url
            && url.starts_with("rediss://")
        {
            return Err(err(
                "redis_url",
                "TLS connections to Redis (rediss://) are not built in yet; use redis:// on a private network or a TLS sidecar",
            ));
        }
        if let Some(url) = &raw.redis_url
            && !(url.starts_with("redis://") || url.starts_with("unix://"))
        {
            return Err(err(
                "redis_url",
                format!("expected redis://HOST:PORT/DB, got '{url}'"),
            ));
        }
        if raw.redis_prefix.is_empty() || raw.redis_prefix.contains(['{', '}', ' ']) {
            return Err(err(
                "redis_prefix",
                "must be non-empty, without braces or spaces",
            ));
        }
        let heartbeat = positive("heartbeat_interval_secs", raw.heartbeat_interval_secs)?;
        let node_timeout = positive("node_timeout_secs", raw.node_timeout_secs)?;
        if node_timeout <= heartbeat {
            return Err(err(
                "node_timeout_secs",
                format!(
                    "must be longer than heartbeat_interval_secs ({heartbeat}), got {node_timeout}"
                ),
            ));
        }
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(err(
                    "tls_cert",
                    "tls_cert and tls_key must be given together",
                ));
            }
        };
        Ok(Config {
            bind: addr("bind", &raw.bind)?,
            api_bind: raw
                .api_bind
                .as_deref()
                .map(|v| addr("api_bind", v))
                .transpose()?,
            metrics_bind: addr("metrics_bind", &raw.metrics_bind)?,
            redis_url: raw.redis_url,
            redis_prefix: raw.redis_prefix,
            heartbeat_interval: Duration::from_secs(heartbeat),
            node_timeout: Duration::from_secs(node_timeout),
            pid_file: raw.pid_file,
            verbose: raw.verbose,
            log_format: raw.log_format,
            activity_timeout: Duration::from_secs(positive(
                "activity_timeout_secs",
                raw.activity_timeout_secs,
            )?),
            pong_timeout: Duration::from_secs(positive(
                "pong_timeout_secs",
                raw.pong_timeout_secs,
            )?),
            handshake_timeout: Duration::from_secs(positive(
                "handshake_timeout_secs",
                raw.handshake_timeout_secs,
            )?),
            max_message_bytes: positive("max_message_kb", raw.max_message_kb)? * 1024,
            max_request_body_bytes: positive("max_request_body_kb", raw.max_request_body_kb)?
                * 1024,
            outbox_capacity: positive("outbox_capacity", raw.outbox_capacity)?,
            max_connections: raw
                .max_connections
                .map(|n| positive("max_connections", n))
                .transpose()?,
            strict_protocol: raw.strict_protocol,
            p_compat_errors: raw.p_compat_errors,
            tls,
            webhooks: crate::webhook::WebhookConfig {
                batch_window: Duration::from_millis(positive(
                    "webhook_batch_ms",
                    raw.webhook_batch_ms,
                )?),
                batch_size: positive("webhook_batch_size", raw.webhook_batch_size)?,
                timeout: Duration::from_secs(positive(
                    "webhook_timeout_secs",
                    raw.webhook_timeout_secs,
                )?),
                first_backoff: Duration::from_millis(positive(
                    "webhook_retry_first_ms",
                    raw.webhook_retry_first_ms,
                )?),
                max_backoff: Duration::from_secs(60),
                retry_budget: Duration::from_secs(positive(
                    "webhook_retry_budget_secs",
                    raw.webhook_retry_budget_secs,
                )?),
            },
            webhook_debounce: Duration::from_millis(raw.webhook_debounce_ms),
            webhook_ca_file: raw.webhook_ca_file,
            drain_window: Duration::from_secs(raw.drain_secs),
            ready_high_water_percent: match raw.ready_high_water_percent {
                p @ 1..=100 => p,
                p => {
                    return Err(err(
                        "ready_high_water_percent",
                        format!("must be 1 to 100, got {p}"),
                    ));
                }
            },
            api_auth_failures_per_minute: raw.api_auth_failures_per_minute,
            listen_backlog: positive("listen_backlog", raw.listen_backlog)?,
            console_token: token(
                "console_token",
                raw.console_token,
                "every app in the console",
            )?,
            admin_token: token(
                "admin_token",
                raw.admin_token,
                "the admin API and the dead letters",
            )?,
            trusted_proxies: trusted_proxies(raw.trusted_proxies)?,
            client_ip_header: match raw.client_ip_header {
                Some(h) if HeaderName::from_bytes(h.as_bytes()).is_err() => {
                    return Err(err(
                        "client_ip_header",
                        format!("{h:?} is not a header name"),
                    ));
                }
                h => h.map(|h| h.to_ascii_lowercase()),
            },
            apps,
            dev_app,
            ignored_env: Vec::new(),
        })
    }
}

fn check_credentials(key: &str, a: &App) -> Result<(), ConfigError> {
    for (field, value) in [("id", a.id.as_str()), ("key", a.key.as_str())] {
        if value.is_empty() || value.contains(['/', '?', '#', ' ', ':']) {
            return Err(err(
                format!("{key}.{field}"),
                "must be non-empty, without '/', '?', '#', ':' or spaces",
            ));
        }
    }
    if a.secret == herald_protocol::Secret::new("") {
        return Err(err(format!("{key}.secret"), "must not be empty"));
    }
    Ok(())
}

fn webhook_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://")) && url.len() > 8;
    if ok {
        Ok(url.to_owned())
    } else {
        Err(err(
            key,
            format!("expected an http:// or https:// URL, got '{url}'"),
        ))
    }
}

fn app(key: &str, a: RawApp, has_redis: bool) -> Result<App, ConfigError> {
    let mut app = App::new(&a.id, &a.key, &a.secret);
    check_credentials(key, &app)?;
    app.enabled = a.enabled;
    app.verbose = a.verbose;
    app.features = AppFeatures {
        client_events: a.client_events,
        user_authentication: a.user_authentication,
        watchlist_events: a.watchlist_events,
        subscription_count: a.subscription_count,
        require_authorized_connection: a.require_authorized_connection,
        tls_only: a.tls_only,
    };
    let k = |f: &str| format!("{key}.{f}");
    app.limits = Limits {
        max_event_payload_bytes: positive(&k("max_event_payload_kb"), a.max_event_payload_kb)?
            * 1024,
        max_event_name_len: positive(&k("max_event_name_len"), a.max_event_name_len)?,
        max_channel_name_len: positive(&k("max_channel_name_len"), a.max_channel_name_len)?,
        max_channels_per_trigger: positive(
            &k("max_channels_per_trigger"),
            a.max_channels_per_trigger,
        )?,
        max_batch_events: positive(&k("max_batch_events"), a.max_batch_events)?,
        max_presence_members: positive(&k("max_presence_members"), a.max_presence_members)?,
        max_presence_user_info_bytes: positive(
            &k("max_presence_user_info_kb"),
            a.max_presence_user_info_kb,
        )? * 1024,
        client_events_per_second: positive(
            &k("client_events_per_second"),
            a.client_events_per_second,
        )?,
        api_requests_per_second: a
            .api_requests_per_second
            .map(|n| positive(&k("api_requests_per_second"), n))
            .transpose()?,
        max_channels_per_connection: positive(
            &k("max_channels_per_connection"),
            a.max_channels_per_connection,
        )?,
        ..Limits::default()
    };
    app.max_connections = a
        .max_connections
        .map(|n| positive(&k("max_connections"), n))
        .transpose()?;
    app.cache_ttl = Duration::from_secs(positive(&k("cache_ttl_secs"), a.cache_ttl_secs)?);
    app.authorized_connection_timeout = Duration::from_secs(positive(
        &k("authorized_connection_timeout_secs"),
        a.authorized_connection_timeout_secs,
    )?);
    for (i, w) in a.webhooks.into_iter().enumerate() {
        let wk = format!("{key}.webhooks[{i}]");
        let event_types = if w.event_types.is_empty() {
            WebhookKind::ALL.to_vec()
        } else {
            w.event_types
                .iter()
                .map(|t| t.parse().map_err(|m| err(format!("{wk}.event_types"), m)))
                .collect::<Result<_, _>>()?
        };
        let mut headers: Vec<(String, String)> = w.headers.into_iter().collect();
        headers.sort();
        if let Some((h, _)) = headers.iter().find(|(h, _)| {
            let h = h.to_ascii_lowercase();
            h == "x-pusher-key" || h == "x-pusher-signature" || h == "content-type"
        }) {
            return Err(err(
                format!("{wk}.headers"),
                format!("'{h}' is set by Herald and cannot be overridden"),
            ));
        }
        let target = match (&w.url, &w.stream) {
            (Some(url), None) => WebhookTarget::Http(webhook_url(&format!("{wk}.url"), url)?),
            (None, Some(stream)) if !has_redis => {
                return Err(err(
                    format!("{wk}.stream"),
                    format!("appending to the Redis stream '{stream}' needs redis_url"),
                ));
            }
            (None, Some(stream)) if !stream.is_empty() && !stream.contains(' ') => {
                WebhookTarget::Stream(stream.clone())
            }
            (None, Some(_)) => {
                return Err(err(
                    format!("{wk}.stream"),
                    "must be a non-empty stream name without spaces",
                ));
            }
            _ => {
                return Err(err(
                    format!("{wk}.url"),
                    "give exactly one of url or stream",
                ));
            }
        };
        app.webhooks.push(WebhookEndpoint {
            target,
            event_types,
            headers,
            filter_prefix: w.filter.prefix,
            filter_suffix: w.filter.suffix,
        });
    }
    Ok(app)
}

#[cfg(test)]
mod tests;
