//! A minimal Pusher client over tokio-tungstenite.

use futures_util::{SinkExt, StreamExt};
use herald_protocol::Secret;
use herald_protocol::signature::sign;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct PusherConn {
    pub ws: Socket,
    pub socket_id: String,
}

/// Connects and waits for `pusher:connection_established`.
pub async fn connect(host: &str, port: u16, key: &str) -> anyhow::Result<PusherConn> {
    let url = format!("ws://{host}:{port}/app/{key}?protocol=7&client=herald-bench&version=0.1.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    loop {
        let v = next_json(&mut ws).await?;
        if v["event"] == "pusher:connection_established" {
            let data: Value = match &v["data"] {
                Value::String(s) => serde_json::from_str(s)?,
                other => other.clone(),
            };
            let socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
            return Ok(PusherConn { ws, socket_id });
        }
        anyhow::ensure!(v["event"] != "pusher:error", "refused: {v}");
    }
}

/// The `pusher:subscribe` frame for a channel, signed as the app's auth endpoint would
/// (private and presence channels), with `channel_data` for presence.
pub fn subscribe_frame(
    conn: &PusherConn,
    channel: &str,
    key: &str,
    secret: &Secret,
    channel_data: Option<&str>,
) -> String {
    let mut data = json!({"channel": channel, "auth": ""});
    if channel.starts_with("private-") || channel.starts_with("presence-") {
        let payload = match channel_data {
            Some(cd) => format!("{}:{channel}:{cd}", conn.socket_id),
            None => format!("{}:{channel}", conn.socket_id),
        };
        data["auth"] = json!(format!("{key}:{}", sign(secret, payload.as_bytes())));
    }
    if let Some(cd) = channel_data {
        data["channel_data"] = json!(cd);
    }
    json!({"event": "pusher:subscribe", "data": data}).to_string()
}

/// Subscribes to a public channel and waits for the confirmation.
pub async fn subscribe(conn: &mut PusherConn, channel: &str) -> anyhow::Result<()> {
    let frame = json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": ""}});
    subscribe_with(conn, channel, frame.to_string()).await
}

/// Sends a subscribe frame and waits for the confirmation.
pub async fn subscribe_with(
    conn: &mut PusherConn,
    channel: &str,
    frame: String,
) -> anyhow::Result<()> {
    conn.ws.send(Message::Text(frame.into())).await?;
    loop {
        let v = next_json(&mut conn.ws).await?;
        if v["event"] == "pusher_internal:subscription_succeeded" && v["channel"] == channel {
            return Ok(());
        }
        anyhow::ensure!(
            v["event"] != "pusher:subscription_error",
            "subscription refused: {v}"
        );
    }
}

/// The next text frame as JSON (pings are answered by tungstenite).
pub async fn next_json(ws: &mut Socket) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(next_text(ws).await?.as_str())?)
}

/// The next text message, unparsed (scenarios with a hot receive loop parse only what they
/// need: the bench shares the machine with the server it measures).
pub async fn next_text(ws: &mut Socket) -> anyhow::Result<Utf8Bytes> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(Message::Close(f))) => anyhow::bail!("closed by the server: {f:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("connection ended"),
        }
    }
}
