//! `floor`: the reference server benchmarks measure every real server against. It does the
//! least any Pusher-compatible server must do for a fan-out, on Herald's own stack (tokio,
//! hyper, tokio-tungstenite): accept a WebSocket at `/app/{key}`, confirm subscriptions, answer
//! pings, take `POST /apps/{id}/events` (and `batch_events`), encode each channel's frame once and hand it to every
//! subscriber's socket. No authentication, signatures, limits, metrics, presence or timers: a
//! figure as a ratio to the floor is the price of everything a real server adds.
//!
//! Not a server to run for anything but a benchmark: it trusts every request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::Poll;

use bytes::Bytes;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

#[derive(Args, Debug)]
pub struct FloorArgs {
    /// Address to listen on (WebSocket and HTTP API on one port).
    #[arg(long, default_value = "127.0.0.1:6001")]
    pub bind: SocketAddr,
}

/// One connection's outbox: frames encoded once, shared by reference.
type Outbox = mpsc::UnboundedSender<Utf8Bytes>;

#[derive(Default)]
struct Floor {
    /// Channel name → (connection id, outbox) of every subscriber.
    channels: RwLock<HashMap<String, Vec<(u64, Outbox)>>>,
    next_id: AtomicU64,
}

impl Floor {
    fn subscribe(&self, channel: &str, id: u64, outbox: &Outbox) {
        let mut channels = self.channels.write().expect("not poisoned");
        let subs = channels.entry(channel.to_owned()).or_default();
        if !subs.iter().any(|(s, _)| *s == id) {
            subs.push((id, outbox.clone()));
        }
    }

    fn unsubscribe(&self, channel: &str, id: u64) {
        let mut channels = self.channels.write().expect("not poisoned");
        if let Some(subs) = channels.get_mut(channel) {
            subs.retain(|(s, _)| *s != id);
            if subs.is_empty() {
                channels.remove(channel);
            }
        }
    }

    fn publish(&self, channel: &str, frame: &Utf8Bytes) {
        let channels = self.channels.read().expect("not poisoned");
        for (_, outbox) in channels.get(channel).into_iter().flatten() {
            let _ = outbox.send(frame.clone());
        }
    }
}

pub async fn run(a: FloorArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(a.bind).await?;
    eprintln!(
        "floor: a reference server (no auth, no limits) on {}",
        listener.local_addr()?
    );
    let floor = Arc::new(Floor::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let floor = floor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| route(floor.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn route(
    floor: Arc<Floor>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    Ok(if path.starts_with("/app/") {
        upgrade(floor, req)
    } else if path.starts_with("/apps/") && path.ends_with("/events") {
        match req.into_body().collect().await {
            Ok(body) => events(&floor, &body.to_bytes()),
            Err(_) => status(StatusCode::BAD_REQUEST, "{}"),
        }
    } else if path.starts_with("/apps/") && path.ends_with("/batch_events") {
        match req.into_body().collect().await {
            Ok(body) => batch_events(&floor, &body.to_bytes()),
            Err(_) => status(StatusCode::BAD_REQUEST, "{}"),
        }
    } else {
        status(StatusCode::NOT_FOUND, "{}")
    })
}

fn status(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = code;
    res
}

/// The body of `POST /apps/{id}/events`.
#[derive(Deserialize)]
struct Trigger<'a> {
    #[serde(borrow)]
    name: &'a str,
    #[serde(default)]
    channels: Vec<&'a str>,
    #[serde(default)]
    channel: Option<&'a str>,
    #[serde(borrow)]
    data: std::borrow::Cow<'a, str>,
}

/// An event frame as subscribers receive it.
#[derive(Serialize)]
struct EventFrame<'a> {
    event: &'a str,
    channel: &'a str,
    data: &'a str,
}

/// The body of `POST /apps/{id}/batch_events`.
#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    batch: Vec<Trigger<'a>>,
}

fn events(floor: &Floor, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(t) = serde_json::from_slice::<Trigger>(body) else {
        return status(StatusCode::BAD_REQUEST, "{}");
    };
    publish(floor, &t);
    status(StatusCode::OK, "{}")
}

fn batch_events(floor: &Floor, body: &[u8]) -> Response<Full<Bytes>> {
    let Ok(b) = serde_json::from_slice::<Batch>(body) else {
        return status(StatusCode::BAD_REQUEST, "{}");
    };
    for t in &b.batch {
        publish(floor, t);
    }
    status(StatusCode::OK, r#"{"batch":[]}"#)
}

fn publish(floor: &Floor, t: &Trigger) {
    for channel in t.channels.iter().copied().chain(t.channel) {
        let frame = EventFrame {
            event: t.name,
            channel,
            data: &t.data,
        };
        let text = serde_json::to_string(&frame).expect("strings serialize");
        floor.publish(channel, &Utf8Bytes::from(text));
    }
}

fn upgrade(floor: Arc<Floor>, mut req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return status(StatusCode::BAD_REQUEST, "{}");
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(256)
            .write_buffer_size(0);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        serve(floor, ws).await;
    });
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(UPGRADE, "websocket".parse().expect("valid"));
    h.insert(CONNECTION, "Upgrade".parse().expect("valid"));
    h.insert(SEC_WEBSOCKET_ACCEPT, accept.parse().expect("base64"));
    res
}

/// A client frame the floor understands.
#[derive(Deserialize)]
struct ClientFrame<'a> {
    #[serde(borrow)]
    event: &'a str,
    #[serde(default)]
    data: Option<ClientData<'a>>,
}

#[derive(Deserialize)]
struct ClientData<'a> {
    #[serde(borrow, default)]
    channel: Option<&'a str>,
}

/// Most frames written before a flush (one write for all that waited).
const WRITE_BATCH: usize = 64;

/// One connection: a single task reads frames and writes the outbox, flushing once per batch.
async fn serve<S>(floor: Arc<Floor>, mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let id = floor.next_id.fetch_add(1, Ordering::Relaxed);
    let (outbox, mut inbox) = mpsc::unbounded_channel::<Utf8Bytes>();
    let established = format!(
        r#"{{"event":"pusher:connection_established","data":"{{\"socket_id\":\"{}.{}\",\"activity_timeout\":120}}"}}"#,
        id / 1_000_000 + 1,
        id % 1_000_000
    );
    if ws.send(Message::Text(established.into())).await.is_err() {
        return;
    }
    let mut subscribed: Vec<String> = Vec::new();
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    loop {
        enum Woke {
            Frames,
            Read(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
        }
        let woke = poll_fn(|cx| {
            if let Poll::Ready(n) = inbox.poll_recv_many(cx, &mut buf, WRITE_BATCH)
                && n > 0
            {
                return Poll::Ready(Woke::Frames);
            }
            if let Poll::Ready(m) = ws.poll_next_unpin(cx) {
                return Poll::Ready(Woke::Read(m));
            }
            Poll::Pending
        })
        .await;
        match woke {
            Woke::Frames => {
                let mut failed = false;
                for frame in buf.drain(..) {
                    failed |= ws.feed(Message::Text(frame)).await.is_err();
                }
                if failed || ws.flush().await.is_err() {
                    break;
                }
            }
            Woke::Read(Some(Ok(Message::Text(t)))) => {
                let Ok(frame) = serde_json::from_str::<ClientFrame>(t.as_str()) else {
                    continue;
                };
                let channel = frame.data.and_then(|d| d.channel);
                let reply = match (frame.event, channel) {
                    ("pusher:subscribe", Some(c)) => {
                        floor.subscribe(c, id, &outbox);
                        subscribed.push(c.to_owned());
                        let c = serde_json::to_string(c).expect("a string serializes");
                        format!(
                            r#"{{"event":"pusher_internal:subscription_succeeded","channel":{c},"data":"{{}}"}}"#
                        )
                    }
                    ("pusher:unsubscribe", Some(c)) => {
                        floor.unsubscribe(c, id);
                        subscribed.retain(|s| s != c);
                        continue;
                    }
                    ("pusher:ping", _) => r#"{"event":"pusher:pong","data":"{}"}"#.to_owned(),
                    _ => continue,
                };
                if ws.send(Message::Text(reply.into())).await.is_err() {
                    break;
                }
            }
            Woke::Read(Some(Ok(_))) => {}
            Woke::Read(Some(Err(_)) | None) => break,
        }
    }
    for c in &subscribed {
        floor.unsubscribe(c, id);
    }
}
