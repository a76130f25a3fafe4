//! Configuration: built-in defaults, then an optional TOML file, then `HERALD_…` environment
//! variables (then command-line flags, applied by `main`). Loaded once, validated into typed
//! values; any bad explicit value fails start-up with the key's name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_core::{App, Apps};
use hyper::header::HeaderName;
use serde::{Deserialize, Serialize};

mod apps;
mod env;
mod raw;

pub use apps::{
    PREVIOUS_SECRET, PREVIOUS_SECRET_UNTIL_MS, UNKNOWN_APP_KEY, app_from_record, app_view,
    is_app_key,
};

use env::{checked_toml, env_config};
use raw::{OneOrMany, RawConfig};

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
    /// The PEM files of `redis_tls_*_file`, read at start-up.
    pub redis_tls: herald_redis::RedisTls,
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
    /// Where apps beside the file's come from (`app_store`).
    pub app_store: AppStoreKind,
    /// How often the node reads the app store again, whatever it was told.
    pub app_cache: Duration,
    /// How long a rotated-out secret still verifies (`secret_grace_secs`).
    pub secret_grace: Duration,
    /// When and how fast connections move to less loaded nodes (`rebalance_*`).
    pub rebalance: herald_core::rebalance::Policy,
    /// Peers whose `X-Forwarded-Proto: https` is believed (a TLS-terminating proxy in front):
    /// from anyone else the header is ignored, so `tls_only` cannot be talked around.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// True when no app was configured and the development app is in use.
    pub dev_app: bool,
    /// `HERALD_…` environment variables that are not configuration keys (logged as warnings).
    pub ignored_env: Vec<String>,
}

/// `app_store`: where apps managed at runtime live.
#[derive(Clone, PartialEq, Eq)]
pub enum AppStoreKind {
    /// Only the file's apps (and the environment's, or the development app).
    File,
    /// Managed through the admin API, kept in this node's memory: lost at restart (one node,
    /// trying things out).
    Memory,
    /// Managed through the admin API, kept in the cluster's Redis and announced to every node.
    Redis,
    /// Read from a table in soketi's `apps` layout (`postgres` or `mysql`); read-only here.
    Sql {
        kind: &'static str,
        url: String,
        table: String,
    },
}

/// The database URL's password never shows.
impl std::fmt::Debug for AppStoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppStoreKind::Sql { kind, url, table } => f
                .debug_struct("Sql")
                .field("kind", kind)
                .field("url", &herald_core::redact::mask_url(url))
                .field("table", table)
                .finish(),
            other => f.write_str(other.name()),
        }
    }
}

impl AppStoreKind {
    pub fn name(&self) -> &'static str {
        match self {
            AppStoreKind::File => "file",
            AppStoreKind::Memory => "memory",
            AppStoreKind::Redis => "redis",
            AppStoreKind::Sql { kind, .. } => kind,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
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

impl Config {
    pub fn load(src: Sources<'_>) -> Result<Config, ConfigError> {
        let (raw, ignored_env) = Config::layered(src)?;
        let mut config = Config::try_from(raw)?;
        config.ignored_env = ignored_env;
        Ok(config)
    }

    /// `herald check-config`: validates the configuration from `src` as `load` does and
    /// returns the effective settings (defaults, file, environment and flags layered) as TOML,
    /// with every secret masked: tokens and app secrets as `***`, passwords in URLs masked,
    /// webhook header values hidden.
    pub fn effective(src: Sources<'_>) -> Result<String, ConfigError> {
        let (raw, _) = Config::layered(src)?;
        let mut value = serde_json::to_value(&raw).map_err(|e| err("", e.to_string()))?;
        Config::try_from(raw)?;
        mask_secrets(&mut value);
        drop_nulls(&mut value);
        toml::to_string(&value).map_err(|e| err("", e.to_string()))
    }

    /// The raw keys after layering every source, and the ignored `HERALD_…` variables.
    fn layered(src: Sources<'_>) -> Result<(RawConfig, Vec<String>), ConfigError> {
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
        Ok((raw, ignored_env))
    }
}

/// Secrets in the effective settings: replaced, or masked where a URL carries them.
fn mask_secrets(v: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(fields) = v else { return };
    for (key, value) in fields.iter_mut() {
        match (key.as_str(), &mut *value) {
            ("secret" | "app_secret" | "admin_token" | "console_token", Value::String(s)) => {
                *s = "***".to_owned();
            }
            ("redis_url" | "app_store_url" | "webhook_url" | "url", Value::String(s)) => {
                *s = herald_core::redact::mask_url(s);
            }
            ("headers", Value::Object(h)) => {
                for header in h.values_mut() {
                    *header = Value::String("***".to_owned());
                }
            }
            (_, Value::Array(items)) => items.iter_mut().for_each(mask_secrets),
            (_, Value::Object(_)) => mask_secrets(value),
            _ => {}
        }
    }
}

/// TOML has no null: unset keys are left out.
fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(fields) => {
            fields.retain(|_, f| !f.is_null());
            fields.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
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
        let (apps, dev_app) = all_apps(&raw)?;
        let (heartbeat_interval, node_timeout) = liveness(&raw)?;
        check_redis(&raw)?;
        let redis_tls = redis_tls(&raw)?;
        Ok(Config {
            bind: addr("bind", &raw.bind)?,
            api_bind: raw
                .api_bind
                .as_deref()
                .map(|v| addr("api_bind", v))
                .transpose()?,
            metrics_bind: addr("metrics_bind", &raw.metrics_bind)?,
            heartbeat_interval,
            node_timeout,
            activity_timeout: secs("activity_timeout_secs", raw.activity_timeout_secs)?,
            pong_timeout: secs("pong_timeout_secs", raw.pong_timeout_secs)?,
            handshake_timeout: secs("handshake_timeout_secs", raw.handshake_timeout_secs)?,
            max_message_bytes: positive("max_message_kb", raw.max_message_kb)? * 1024,
            max_request_body_bytes: positive("max_request_body_kb", raw.max_request_body_kb)?
                * 1024,
            outbox_capacity: positive("outbox_capacity", raw.outbox_capacity)?,
            max_connections: raw
                .max_connections
                .map(|n| positive("max_connections", n))
                .transpose()?,
            tls: tls_files(&raw)?,
            webhooks: webhook_delivery(&raw)?,
            webhook_debounce: Duration::from_millis(raw.webhook_debounce_ms),
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
            listen_backlog: positive("listen_backlog", raw.listen_backlog)?,
            console_token: token(
                "console_token",
                &raw.console_token,
                "every app in the console",
            )?,
            admin_token: token(
                "admin_token",
                &raw.admin_token,
                "the admin API and the dead letters",
            )?,
            app_store: app_store(&raw)?,
            app_cache: secs("app_cache_secs", raw.app_cache_secs)?,
            secret_grace: Duration::from_secs(raw.secret_grace_secs),
            rebalance: herald_core::rebalance::Policy {
                tolerance_percent: raw.rebalance_tolerance_percent,
                min_connections: raw.rebalance_min_connections,
                max_per_second: raw
                    .rebalance_max_per_second
                    .map(|n| positive("rebalance_max_per_second", n))
                    .transpose()?,
            },
            client_ip_header: client_ip_header(&raw)?,
            api_auth_failures_per_minute: raw.api_auth_failures_per_minute,
            strict_protocol: raw.strict_protocol,
            p_compat_errors: raw.p_compat_errors,
            pid_file: raw.pid_file,
            verbose: raw.verbose,
            log_format: raw.log_format,
            webhook_ca_file: raw.webhook_ca_file,
            trusted_proxies: trusted_proxies(raw.trusted_proxies)?,
            redis_url: raw.redis_url,
            redis_tls,
            redis_prefix: raw.redis_prefix,
            apps,
            dev_app,
            ignored_env: Vec::new(),
        })
    }
}

fn secs(key: &str, v: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(positive(key, v)?))
}

/// The apps of the file, the environment's app, or else the development app (true).
fn all_apps(raw: &RawConfig) -> Result<(Apps, bool), ConfigError> {
    let mut apps = Vec::new();
    for (i, a) in raw.apps.iter().enumerate() {
        apps.push(apps::app(
            &format!("apps[{i}]"),
            a,
            raw.redis_url.is_some(),
        )?);
    }
    if let Some(a) = apps::env_app(raw)? {
        apps.push(a);
    }
    // Apps from a store are enough: the development app is for a node with none at all.
    let dev_app = apps.is_empty() && raw.app_store == "file";
    if dev_app {
        let (id, key, secret) = DEV_APP;
        let mut a = App::new(id, key, secret);
        a.features.client_events = true;
        a.features.subscription_count = true;
        apps.push(a);
    }
    let apps = Apps::new(apps).map_err(|m| err("apps", m))?;
    Ok((apps, dev_app))
}

fn app_store(raw: &RawConfig) -> Result<AppStoreKind, ConfigError> {
    let kind = match raw.app_store.as_str() {
        "file" => AppStoreKind::File,
        "memory" if raw.redis_url.is_some() => {
            return Err(err(
                "app_store",
                "\"memory\" keeps apps in this node only, so the nodes of a cluster would disagree: use \"redis\" with redis_url",
            ));
        }
        "memory" => AppStoreKind::Memory,
        "redis" if raw.redis_url.is_none() => {
            return Err(err(
                "app_store",
                "\"redis\" keeps apps in the cluster's Redis: set redis_url too (or use \"memory\" on a single node)",
            ));
        }
        "redis" => AppStoreKind::Redis,
        sql @ ("postgres" | "mysql") => {
            let Some(url) = &raw.app_store_url else {
                return Err(err(
                    "app_store_url",
                    format!(
                        "app_store = \"{sql}\" reads apps from a database: set app_store_url ({sql}://USER:PASSWORD@HOST:PORT/DB)"
                    ),
                ));
            };
            let kind = crate::sql_store::url_kind(url)
                .filter(|k| *k == sql)
                .ok_or_else(|| {
                    err(
                        "app_store_url",
                        format!(
                            "expected a {sql}:// URL for app_store = \"{sql}\", got '{}'",
                            herald_core::redact::mask_url(url)
                        ),
                    )
                })?;
            if !crate::sql_store::valid_table(&raw.app_store_table) {
                return Err(err(
                    "app_store_table",
                    "a table name (letters, digits, _), optionally schema.table",
                ));
            }
            return Ok(AppStoreKind::Sql {
                kind,
                url: url.clone(),
                table: raw.app_store_table.clone(),
            });
        }
        other => {
            return Err(err(
                "app_store",
                format!(
                    "expected \"file\", \"memory\", \"redis\", \"postgres\" or \"mysql\", got '{other}'"
                ),
            ));
        }
    };
    if raw.app_store_url.is_some() {
        return Err(err(
            "app_store_url",
            format!(
                "is for a SQL app store (\"postgres\" or \"mysql\"); app_store = \"{}\" takes no URL",
                kind.name()
            ),
        ));
    }
    Ok(kind)
}

/// The Redis URL's form and the key prefix.
fn check_redis(raw: &RawConfig) -> Result<(), ConfigError> {
    if let Some(url) = &raw.redis_url
        && let Err(why) = herald_redis::check_url(url)
    {
        return Err(err(
            "redis_url",
            format!(
                "{why}: expected redis://[USER:PASSWORD@]HOST:PORT[/DB], rediss://… (TLS), redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER[/DB], redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…] or their rediss+ forms; got '{}'",
                herald_core::redact::mask_url(url)
            ),
        ));
    }
    if raw.redis_prefix.is_empty() || raw.redis_prefix.contains(['{', '}', ' ']) {
        return Err(err(
            "redis_prefix",
            "must be non-empty, without braces or spaces",
        ));
    }
    Ok(())
}

/// The heartbeat interval and the dead-node timeout, which must be longer.
fn liveness(raw: &RawConfig) -> Result<(Duration, Duration), ConfigError> {
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
    Ok((
        Duration::from_secs(heartbeat),
        Duration::from_secs(node_timeout),
    ))
}

fn tls_files(raw: &RawConfig) -> Result<Option<TlsFiles>, ConfigError> {
    match (&raw.tls_cert, &raw.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })),
        (None, None) => Ok(None),
        _ => Err(err(
            "tls_cert",
            "tls_cert and tls_key must be given together",
        )),
    }
}

/// The `redis_tls_*_file` PEMs: only with a TLS `redis_url`, certificate and key together.
fn redis_tls(raw: &RawConfig) -> Result<herald_redis::RedisTls, ConfigError> {
    let files = [
        ("redis_tls_ca_file", &raw.redis_tls_ca_file),
        ("redis_tls_cert_file", &raw.redis_tls_cert_file),
        ("redis_tls_key_file", &raw.redis_tls_key_file),
    ];
    let tls_url = raw.redis_url.as_deref().is_some_and(|u| {
        ["rediss://", "rediss+sentinel://", "rediss+cluster://"]
            .iter()
            .any(|p| u.starts_with(p))
    });
    if let Some((key, _)) = files.iter().find(|(_, f)| f.is_some())
        && !tls_url
    {
        return Err(err(
            *key,
            "applies to a TLS redis_url only (rediss://, rediss+sentinel:// or rediss+cluster://)",
        ));
    }
    if raw.redis_tls_cert_file.is_some() != raw.redis_tls_key_file.is_some() {
        return Err(err(
            "redis_tls_cert_file",
            "redis_tls_cert_file and redis_tls_key_file must be given together",
        ));
    }
    let read = |key: &str, path: &Option<PathBuf>| -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(path) = path else { return Ok(None) };
        let pem = std::fs::read(path)
            .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))?;
        if !pem.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(err(key, format!("{} holds no PEM block", path.display())));
        }
        Ok(Some(pem))
    };
    Ok(herald_redis::RedisTls {
        ca: read("redis_tls_ca_file", &raw.redis_tls_ca_file)?,
        cert: read("redis_tls_cert_file", &raw.redis_tls_cert_file)?,
        key: read("redis_tls_key_file", &raw.redis_tls_key_file)?,
    })
}

fn webhook_delivery(raw: &RawConfig) -> Result<crate::webhook::WebhookConfig, ConfigError> {
    Ok(crate::webhook::WebhookConfig {
        batch_window: Duration::from_millis(positive("webhook_batch_ms", raw.webhook_batch_ms)?),
        batch_size: positive("webhook_batch_size", raw.webhook_batch_size)?,
        timeout: secs("webhook_timeout_secs", raw.webhook_timeout_secs)?,
        first_backoff: Duration::from_millis(positive(
            "webhook_retry_first_ms",
            raw.webhook_retry_first_ms,
        )?),
        max_backoff: Duration::from_secs(60),
        retry_budget: secs("webhook_retry_budget_secs", raw.webhook_retry_budget_secs)?,
    })
}

fn client_ip_header(raw: &RawConfig) -> Result<Option<String>, ConfigError> {
    match &raw.client_ip_header {
        Some(h) if HeaderName::from_bytes(h.as_bytes()).is_err() => Err(err(
            "client_ip_header",
            format!("{h:?} is not a header name"),
        )),
        h => Ok(h.as_ref().map(|h| h.to_ascii_lowercase())),
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
    raw: &Option<String>,
    unlocks: &str,
) -> Result<Option<herald_protocol::Secret>, ConfigError> {
    match raw {
        Some(t) if t.chars().count() < 12 => Err(err(
            key,
            format!("must be at least 12 characters (it unlocks {unlocks})"),
        )),
        t => Ok(t.clone().map(herald_protocol::Secret::new)),
    }
}

#[cfg(test)]
mod tests;
