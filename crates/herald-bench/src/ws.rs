//! A minimal Pusher client over tokio-tungstenite.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct PusherConn {
    pub ws: Socket,
}

/// Connects and waits for `pusher:connection_established`.
pub async fn connect(host: &str, port: u16, key: &str) -> anyhow::Result<PusherConn> {
    let url = format!("ws://{host}:{port}/app/{key}?protocol=7&client=herald-bench&version=0.1.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    loop {
        let v = next_json(&mut ws).await?;
        if v["event"] == "pusher:connection_established" {
            return Ok(PusherConn { ws });
        }
        anyhow::ensure!(v["event"] != "pusher:error", "refused: {v}");
    }
}

/// Subscribes to a public channel and waits for the confirmation.
pub async fn subscribe(conn: &mut PusherConn, channel: &str) -> anyhow::Result<()> {
    let frame = json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": ""}});
    conn.ws
        .send(Message::Text(frame.to_string().into()))
        .await?;
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
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str())?),
            Some(Ok(Message::Close(f))) => anyhow::bail!("closed by the server: {f:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("connection ended"),
        }
    }
}
