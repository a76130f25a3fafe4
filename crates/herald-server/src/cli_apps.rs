//! `herald apps …`: the admin API's apps endpoints from a terminal. Talks HTTP(S) to a node's
//! admin listener (`--admin-url`, default http://127.0.0.1:9601) with `--token` (or
//! `HERALD_ADMIN_TOKEN`); prints what the API answers, exits 1 on a refusal.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use serde_json::{Map, Value};

/// What `herald apps` was asked to do.
#[derive(Debug)]
pub enum AppsCommand {
    List,
    Get(String),
    Create(Map<String, Value>),
    Update(String, Map<String, Value>),
    Delete(String),
    RotateSecret(String),
}

/// `KEY=VALUE` pairs (the value as JSON when it parses: `enabled=false`, `max_connections=500`,
/// else as a string) over an optional JSON object.
pub fn fields(json: Option<&str>, set: &[String]) -> Result<Map<String, Value>, String> {
    let mut fields = match json {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            _ => return Err("--json must be a JSON object with the [[apps]] keys".into()),
        },
    };
    for pair in set {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--set takes KEY=VALUE, got '{pair}'"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        fields.insert(k.trim().to_owned(), value);
    }
    Ok(fields)
}

/// Runs one command against the admin API; the text to print, or the refusal.
pub async fn run(admin_url: &str, token: &str, command: AppsCommand) -> Result<String, String> {
    let base = admin_url.trim_end_matches('/');
    let enc = |id: &str| {
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (method, path, body) = match &command {
        AppsCommand::List => (Method::GET, "/admin/apps".to_owned(), None),
        AppsCommand::Get(id) => (Method::GET, format!("/admin/apps/{}", enc(id)), None),
        AppsCommand::Create(f) => (Method::POST, "/admin/apps".to_owned(), Some(f.clone())),
        AppsCommand::Update(id, f) => (
            Method::PATCH,
            format!("/admin/apps/{}", enc(id)),
            Some(f.clone()),
        ),
        AppsCommand::Delete(id) => (Method::DELETE, format!("/admin/apps/{}", enc(id)), None),
        AppsCommand::RotateSecret(id) => (
            Method::POST,
            format!("/admin/apps/{}/rotate-secret", enc(id)),
            None,
        ),
    };
    let client = crate::webhook::http_client(None)?;
    let body_bytes = body
        .map(|b| Value::Object(b).to_string())
        .unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body_bytes)))
        .map_err(|e| format!("bad --admin-url '{base}': {e}"))?;
    let res = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| format!("{base} did not answer within 30 s"))?
        .map_err(|e| format!("cannot reach {base}: {e}"))?;
    let status = res.status();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer of {base}: {e}"))?
        .to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = value["error"].as_str().map_or_else(
            || String::from_utf8_lossy(&bytes).into_owned(),
            str::to_owned,
        );
        return Err(format!("{}: {message}", status.as_u16()));
    }
    Ok(match command {
        AppsCommand::List => table(&value),
        AppsCommand::Delete(id) => format!("deleted app {id}"),
        _ => serde_json::to_string_pretty(&value).unwrap_or_default(),
    })
}

/// `GET /admin/apps` as a table.
fn table(list: &Value) -> String {
    let rows: Vec<[String; 4]> = list["apps"]
        .as_array()
        .map(|apps| {
            apps.iter()
                .map(|a| {
                    [
                        a["id"].as_str().unwrap_or("").to_owned(),
                        a["key"].as_str().unwrap_or("").to_owned(),
                        a["enabled"].to_string(),
                        a["source"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    let header = ["ID", "KEY", "ENABLED", "SOURCE"].map(str::to_owned);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    std::iter::once(&header)
        .chain(rows.iter())
        .map(|r| {
            let cells: Vec<String> = (0..4)
                .map(|i| format!("{:w$}", r[i], w = widths[i]))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
