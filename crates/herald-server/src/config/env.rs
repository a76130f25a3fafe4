//! Where configuration text comes from, checked before the `config` crate sees it: `HERALD_…`
//! variables split into keys and names to ignore, and TOML keys that must be plain names.

use std::collections::HashMap;

use super::{ConfigError, err};

/// Splits `HERALD_…` variables into configuration and ignored names. Unknown names are not
/// fatal: Kubernetes injects `HERALD_PORT`, `HERALD_SERVICE_HOST`… for a Service named `herald`.
pub(super) fn env_config(env: HashMap<String, String>) -> (HashMap<String, String>, Vec<String>) {
    let keys = super::raw::env_keys();
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
        if keys.contains(&top) && key.split("__").all(plain_key) {
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
pub(super) fn plain_key(key: &str) -> bool {
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
pub(super) fn checked_toml(text: &str, origin: &str) -> Result<(), ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(origin, format!("invalid TOML: {}", e.message())))?;
    check_keys(&table, "")
}
