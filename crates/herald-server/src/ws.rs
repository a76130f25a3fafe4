//! The WebSocket transport: upgrade at `/app/{key}`, then one reader (frames in, timers) and one
//! writer (outbox to socket) per connection. Protocol questions are answered by the session.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use herald_core::hub::Handshake;
use herald_core::{CloseReason, ConnHandle, Outbox, Outgoing, Session};
use herald_protocol::ProtocolError;
use hyper::header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::State;
use crate::http::{Body, json_error};

/// How long the writer may spend on the closing frames of a client that does not read.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// WebSocket close code for a message over the size limit (RFC 6455 "message too big").
const MESSAGE_TOO_BIG: u16 = 1009;
/// RFC 6455 close codes for a broken frame and for a text message that is not UTF-8.
const PROTOCOL_ERROR: u16 = 1002;
const INVALID_PAYLOAD: u16 = 1007;

/// Answers an upgrade request on `/app/{key}`; the connection itself runs in a spawned task.
pub fn upgrade(
    state: &Arc<State>,
    mut req: Request<hyper::body::Incoming>,
    app_key: &str,
    secure: bool,
) -> Response<Body> {
    let is_upgrade = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .filter(|_| is_upgrade)
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return json_error(
            StatusCode::UPGRADE_REQUIRED,
            "This endpoint only accepts WebSocket upgrades (pusher-js connects here)",
        );
    };
    let query = req.uri().query().unwrap_or("");
    let (mut protocol, mut version) = (None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "protocol" => protocol = Some(v.into_owned()),
            "version" => version = Some(v.into_owned()),
            _ => {}
        }
    }
    let admission = state.hub.admit(
        app_key,
        Handshake {
            protocol: protocol.as_deref(),
            version: version.as_deref(),
            secure,
        },
    );
    let state = state.clone();
    // Only the upgrade handle goes into the connection's task: a captured request (headers and
    // all) would stay in the task's memory for the connection's lifetime.
    let on_upgrade = hyper::upgrade::on(&mut req);
    drop(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        // A 256-byte read buffer: idle connections dominate memory, and Pusher client frames are
        // small (a larger message is simply read in more steps).
        let config = WebSocketConfig::default()
            .read_buffer_size(256)
            .write_buffer_size(0)
            .max_write_buffer_size(state.config.max_message_bytes * 4 + 64 * 1024)
            .max_message_size(Some(state.config.max_message_bytes))
            .max_frame_size(Some(state.config.max_message_bytes));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        let opened = match admission {
            Ok(app) => Box::pin(Session::open(&state.hub, app)).await,
            Err(e) => Err(e),
        };
        match opened {
            Ok((session, outbox)) => serve(state, ws, session, outbox).await,
            Err(e) => Box::pin(reject(state, ws, e)).await,
        }
    });
    let mut res = Response::new(crate::http::full(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&key).expect("base64 is a valid header value"),
    );
    res
}

/// A handshake refused by the protocol: the error frame as the first message, then the close.
async fn reject<S>(state: Arc<State>, mut ws: S, e: ProtocolError)
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    let code = e.close_code().map_or(4000, |c| c.code());
    state.metrics.connection_refused(code);
    let reason = match &e {
        ProtocolError::Fatal { code, message } => CloseReason::from_error(*code, message),
        _ => CloseReason {
            code,
            reason: String::new(),
            error_frame: Some(Bytes::from(e.frame())),
        },
    };
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write_close(&mut ws, reason)).await;
}

async fn write_close<S>(sink: &mut S, reason: CloseReason) -> Result<(), WsError>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    if let Some(frame) = reason.error_frame {
        sink.feed(text(frame)?).await?;
    }
    let frame = CloseFrame {
        code: CloseCode::from(reason.code),
        reason: Utf8Bytes::from(reason.reason),
    };
    sink.send(Message::Close(Some(frame))).await
}

fn text(frame: Bytes) -> Result<Message, WsError> {
    // Frames are built from Rust strings, so this check cannot fail; it costs one pass over
    // bytes that tungstenite copies into its write buffer right after anyway.
    Utf8Bytes::try_from(frame)
        .map(Message::Text)
        .map_err(|_| WsError::Utf8(String::from("frame is not UTF-8")))
}

/// The close a read error earns under RFC 6455: 1009 for an oversized message, 1007 for a text
/// message that is not UTF-8, 1002 for a broken frame. None: the peer is gone, tell it nothing.
fn close_for(e: &WsError, max_message_bytes: usize) -> Option<CloseReason> {
    let (code, reason) = match e {
        WsError::Capacity(_) => (
            MESSAGE_TOO_BIG,
            format!("Message too big: at most {max_message_bytes} bytes"),
        ),
        WsError::Utf8(_) => (
            INVALID_PAYLOAD,
            "Invalid UTF-8 in a text message".to_owned(),
        ),
        WsError::Protocol(e) => (PROTOCOL_ERROR, format!("WebSocket protocol error: {e}")),
        _ => return None,
    };
    Some(CloseReason {
        code,
        reason,
        error_frame: None,
    })
}

/// Runs an open connection until it closes.
pub async fn serve<T>(state: Arc<State>, ws: T, mut session: Session, outbox: Outbox)
where
    T: Stream<Item = Result<Message, WsError>>
        + Sink<Message, Error = WsError>
        + Unpin
        + Send
        + 'static,
{
    let app_id = session.app().id.clone();
    state.metrics.connection_opened(&app_id);
    let verbose = state.config.verbose || session.app().verbose;
    let sid = session.socket_id().to_string();
    if verbose {
        tracing::info!(target: "herald::frames", app = %app_id, socket_id = %sid, "connection opened");
    }
    let (sink, mut stream) = ws.split();
    let handle = session.handle().clone();
    let writer = tokio::spawn(write_loop(
        sink,
        outbox,
        handle.clone(),
        verbose.then(|| sid.clone()),
    ));

    let activity = state.config.activity_timeout;
    let pong_timeout = state.config.pong_timeout;
    let mut deadline = Instant::now() + activity;
    let mut awaiting_pong = false;
    let app = session.app().clone();
    let mut auth_deadline = app
        .features
        .require_authorized_connection
        .then(|| Instant::now() + app.authorized_connection_timeout);

    loop {
        tokio::select! {
            _ = handle.closed() => break,
            msg = stream.next() => {
                deadline = Instant::now() + activity;
                awaiting_pong = false;
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        state.metrics.message_received(&app_id, t.len());
                        if verbose {
                            tracing::info!(target: "herald::frames", socket_id = %sid, frame = %t.as_str(), "in");
                        }
                        // Boxed: the frame's work (subscribe, presence, …) is a deep future; inline
                        // it would size every idle connection's task for it.
                        Box::pin(session.handle_text(t.as_str())).await;
                    }
                    Some(Ok(Message::Binary(_))) => session.handle_binary(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Ok(Message::Close(_))) | None => {
                        handle.abandon();
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(socket_id = %sid, error = %e, "read failed");
                        if let Some(reason) = close_for(&e, state.config.max_message_bytes) {
                            handle.close(reason);
                        } else {
                            handle.abandon();
                        }
                        break;
                    }
                }
            }
            _ = sleep_until(deadline) => {
                if awaiting_pong {
                    session.pong_timeout();
                } else {
                    session.ping();
                    awaiting_pong = true;
                    deadline = Instant::now() + pong_timeout;
                }
            }
            _ = sleep_until(auth_deadline.unwrap_or_else(Instant::now)), if auth_deadline.is_some() => {
                auth_deadline = None;
                session.authorization_deadline();
            }
        }
    }
    // The writer finishes first (closing frames, bounded by CLOSE_WRITE_TIMEOUT): a connection
    // counts as gone only once the client was told, so a drain that waits for the count to
    // reach zero never exits under a client's last frames.
    let _ = writer.await;
    Box::pin(session.close()).await;
    state
        .metrics
        .connection_closed(&app_id, handle.close_code());
    if verbose {
        tracing::info!(target: "herald::frames", socket_id = %sid, "connection closed");
    }
}

async fn write_loop<S>(mut sink: S, mut outbox: Outbox, handle: ConnHandle, verbose: Option<String>)
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    loop {
        match outbox.next().await {
            Outgoing::Frame(first) => {
                let mut batch = vec![first];
                while batch.len() < 64 {
                    match outbox.try_next() {
                        Some(f) => batch.push(f),
                        None => break,
                    }
                }
                let write = async {
                    for frame in batch {
                        if let Some(sid) = &verbose {
                            tracing::info!(target: "herald::frames", socket_id = %sid, frame = %String::from_utf8_lossy(&frame), "out");
                        }
                        sink.feed(text(frame)?).await?;
                    }
                    sink.flush().await
                };
                // A client that stops reading blocks the write; closing (4100, drain,
                // terminate) must still get through, so the write races the close signal.
                let done = tokio::select! {
                    r = write => r.is_err(),
                    _ = handle.closed() => false,
                };
                if done {
                    handle.abandon();
                    return;
                }
            }
            Outgoing::Close(reason) => {
                if let Some(sid) = &verbose {
                    tracing::info!(target: "herald::frames", socket_id = %sid, code = reason.code, reason = %reason.reason, "closing");
                }
                let _ =
                    tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write_close(&mut sink, reason)).await;
                return;
            }
            Outgoing::Stop => {
                let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, sink.close()).await;
                return;
            }
        }
    }
}
