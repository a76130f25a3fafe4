//! The WebSocket transport: upgrade at `/app/{key}`, then one task per connection that reads
//! frames, writes its outbox and keeps its timers. Protocol questions are answered by the
//! session.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use herald_core::hub::Handshake;
use herald_core::{CloseReason, Outbox, Outgoing, Session};
use herald_protocol::ErrorCode;
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
    let owned_key = app_key.to_owned();
    let admit = move |state: &State| {
        state.hub.admission().admit(
            &owned_key,
            Handshake {
                protocol: protocol.as_deref(),
                version: version.as_deref(),
                secure,
            },
        )
    };
    let admission = admit(state);
    // A key this node does not know may be an app just added to a SQL store: looked up once
    // (in the connection's task; the upgrade is answered at once).
    let lookup = match (&admission, &state.app_store) {
        (Err(e), Some(store))
            if e.close_code() == Some(ErrorCode::AppNotFound) && store.store.looks_up() =>
        {
            Some((store.clone(), app_key.to_owned()))
        }
        _ => None,
    };
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
        // The session opens before the WebSocket is built: nothing then holds the socket across
        // an await but `serve`, so the task's future does not store it twice.
        let mut admission = admission;
        if let Some((store, key)) = lookup
            && store.lookup(crate::app_store::Lookup::Key(&key)).await
        {
            admission = admit(&state);
        }
        let opened = match admission {
            Ok(app) => Box::pin(Session::open(&state.hub, app)).await,
            Err(e) => Err(e),
        };
        // A 256-byte read buffer: idle connections dominate memory, and Pusher client frames are
        // small (a larger message is simply read in more steps).
        let config = WebSocketConfig::default()
            .read_buffer_size(256)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(state.config.max_message_bytes * 4 + 64 * 1024)
            .max_message_size(Some(state.config.max_message_bytes))
            .max_frame_size(Some(state.config.max_message_bytes));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
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

/// Runs an open connection until it closes: one task reads frames, writes the outbox and keeps
/// the timers. Idle connections dominate a node's memory, and a second task per connection (a
/// writer) would cost its own task cell and a lock around the socket.
///
/// Not an `async fn`: its arguments would be stored twice in the future (rust-lang/rust#62958);
/// the `async move` block uses them in place.
#[allow(clippy::manual_async_fn)]
pub fn serve<T>(
    state: Arc<State>,
    mut ws: T,
    mut session: Session,
    mut outbox: Outbox,
) -> impl Future<Output = ()> + Send
where
    T: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin + Send,
{
    async move {
        let app_id = session.app().id.clone();
        state.metrics.connection_opened(&app_id);
        let verbose = state.config.verbose || session.app().verbose;
        let sid = verbose.then(|| session.socket_id().to_string());
        if let Some(sid) = &sid {
            tracing::info!(target: "herald::frames", app = %app_id, socket_id = %sid, "connection opened");
        }
        let handle = session.handle().clone();
        let mut writer = Writer {
            frame: None,
            unflushed: false,
            verbose: sid.clone(),
        };
        let mut clock = Clock::new(&state, &session);
        let timer = sleep_until(clock.next());
        tokio::pin!(timer);
        let max_message_bytes = state.config.max_message_bytes;

        let end = loop {
            let event = poll_fn(|cx| {
                if let Poll::Ready(end) = writer.poll(cx, &mut ws, &mut outbox) {
                    return Poll::Ready(Event::End(end));
                }
                if let Poll::Ready(msg) = ws.poll_next_unpin(cx) {
                    return Poll::Ready(Event::read(msg, max_message_bytes));
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Timer);
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::End(end) => break end,
                Event::Timer => {
                    clock.fired(&session);
                    timer.as_mut().reset(clock.next());
                    continue;
                }
                Event::Text(t) => {
                    clock.read();
                    state.metrics.message_received(&app_id, t.len());
                    if let Some(sid) = &sid {
                        tracing::info!(target: "herald::frames", socket_id = %sid, frame = %t.as_str(), "in");
                    }
                    // Boxed: the frame's work (subscribe, presence, …) is a deep future; inline
                    // it would size every idle connection's task for it. The outbox keeps
                    // draining meanwhile (a subscribe may wait on Redis).
                    let mut work = Box::pin(session.handle_text(t.as_str()));
                    let mut ended = None;
                    poll_fn(|cx| {
                        if ended.is_none()
                            && let Poll::Ready(end) = writer.poll(cx, &mut ws, &mut outbox)
                        {
                            ended = Some(end);
                        }
                        work.as_mut().poll(cx)
                    })
                    .await;
                    if let Some(end) = ended {
                        break end;
                    }
                }
                Event::Binary => {
                    clock.read();
                    session.handle_binary();
                }
                Event::Other => clock.read(),
                Event::Closed(reason) => {
                    if let Some(reason) = reason {
                        handle.close(reason);
                    }
                    break End::Closing;
                }
            }
        };
        // The closing frames go out first (bounded by CLOSE_WRITE_TIMEOUT): a connection counts
        // as gone only once the client was told, so a drain that waits for the count to reach
        // zero never exits under a client's last frames. Boxed, like every rare and deep
        // future here: inline it would size every idle connection's task. (A peer that left or
        // a failed socket closes without a reason: `abandon` marks it.)
        handle.abandon();
        let last = match end {
            End::Closing => outbox.closing(),
            End::Failed => None,
        };
        Box::pin(finish(&mut ws, last, sid.as_deref())).await;
        drop(outbox);
        Box::pin(session.close()).await;
        state
            .metrics
            .connection_closed(&app_id, handle.close_code());
        if let Some(sid) = &sid {
            tracing::info!(target: "herald::frames", socket_id = %sid, "connection closed");
        }
    }
}

/// Writes the closing frames of an ended connection, bounded by `CLOSE_WRITE_TIMEOUT`.
async fn finish<S>(ws: &mut S, last: Option<Outgoing>, verbose: Option<&str>)
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, async {
        match last {
            Some(Outgoing::Close(reason)) => {
                if let Some(sid) = verbose {
                    tracing::info!(target: "herald::frames", socket_id = %sid, code = reason.code, reason = %reason.reason, "closing");
                }
                write_close(ws, reason).await
            }
            Some(_) => ws.close().await,
            None => Ok(()),
        }
    })
    .await;
}

/// What woke the connection's task. Small on purpose: a read error is turned into its close
/// reason before the loop sees it.
enum Event {
    Text(Utf8Bytes),
    Binary,
    /// A ping, a pong or a raw frame: activity, nothing to answer here.
    Other,
    /// The client closed, the socket failed or a frame broke the rules (Some: the close due).
    Closed(Option<CloseReason>),
    Timer,
    End(End),
}

impl Event {
    fn read(msg: Option<Result<Message, WsError>>, max_message_bytes: usize) -> Event {
        match msg {
            Some(Ok(Message::Text(t))) => Event::Text(t),
            Some(Ok(Message::Binary(_))) => Event::Binary,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Event::Other,
            Some(Ok(Message::Close(_))) | None => Event::Closed(None),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "read failed");
                Event::Closed(close_for(&e, max_message_bytes))
            }
        }
    }
}

/// Why the connection's loop ends.
enum End {
    /// The connection is closing: the outbox says how (a close frame, or just stop).
    Closing,
    /// The socket failed: nothing more can be written.
    Failed,
}

/// Most frames written between two flushes and per wake-up (then the reader gets its turn).
const WRITE_BATCH: usize = 64;

/// Frames waiting together are written to the socket in one write of up to this many bytes
/// (the writer flushes once per batch); a lone frame goes out at once, on the flush. Small on
/// purpose: tungstenite keeps its write buffer's capacity after a burst, for every connection.
const WRITE_BUFFER: usize = 1024;

/// The write half of the connection's loop: moves frames from the outbox into the socket.
struct Writer {
    /// A frame taken from the outbox that the socket was not ready for yet.
    frame: Option<Bytes>,
    /// Frames were written since the last flush.
    unflushed: bool,
    /// The socket id, when frames are logged.
    verbose: Option<String>,
}

impl Writer {
    /// Writes what the outbox holds. Ready once the connection is closing (closing wins over a
    /// backlog, and over a write the client blocks by not reading) or the socket failed.
    fn poll<S>(&mut self, cx: &mut Context<'_>, sink: &mut S, outbox: &mut Outbox) -> Poll<End>
    where
        S: Sink<Message, Error = WsError> + Unpin,
    {
        for _ in 0..WRITE_BATCH {
            if outbox.poll_closing(cx).is_ready() {
                return Poll::Ready(End::Closing);
            }
            let frame = match self.frame.take() {
                Some(f) => f,
                None => match outbox.poll_next(cx) {
                    Poll::Ready(Outgoing::Frame(f)) => f,
                    Poll::Ready(_) => return Poll::Ready(End::Closing),
                    Poll::Pending => return self.poll_flush(cx, sink),
                },
            };
            match sink.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(End::Failed),
                Poll::Pending => {
                    self.frame = Some(frame);
                    return Poll::Pending;
                }
            }
            if let Some(sid) = &self.verbose {
                tracing::info!(target: "herald::frames", socket_id = %sid, frame = %String::from_utf8_lossy(&frame), "out");
            }
            if text(frame).and_then(|m| sink.start_send_unpin(m)).is_err() {
                return Poll::Ready(End::Failed);
            }
            self.unflushed = true;
        }
        // A long backlog: flush what was written and come back after the reader had its turn.
        cx.waker().wake_by_ref();
        self.poll_flush(cx, sink)
    }

    fn poll_flush<S>(&mut self, cx: &mut Context<'_>, sink: &mut S) -> Poll<End>
    where
        S: Sink<Message, Error = WsError> + Unpin,
    {
        if self.unflushed {
            match sink.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => return Poll::Ready(End::Failed),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

/// The connection's deadlines, kept by one timer: a ping after `activity_timeout` of silence,
/// 4201 when the pong does not come within `pong_timeout`, and the deadline for signing in
/// where the app requires it. A frame read only records the time: the timer is not re-armed per
/// frame, it re-arms itself to the later deadline when it fires early.
struct Clock {
    activity: Duration,
    pong_timeout: Duration,
    last_read: Instant,
    ping_sent: Option<Instant>,
    auth_deadline: Option<Instant>,
}

impl Clock {
    fn new(state: &State, session: &Session) -> Clock {
        let now = Instant::now();
        let app = session.app();
        Clock {
            activity: state.config.activity_timeout,
            pong_timeout: state.config.pong_timeout,
            last_read: now,
            ping_sent: None,
            auth_deadline: app
                .features
                .require_authorized_connection
                .then(|| now + app.authorized_connection_timeout),
        }
    }

    /// Any frame counts as activity, and answers a ping.
    fn read(&mut self) {
        self.last_read = Instant::now();
        self.ping_sent = None;
    }

    fn next(&self) -> Instant {
        let ping_or_pong = match self.ping_sent {
            Some(sent) => sent + self.pong_timeout,
            None => self.last_read + self.activity,
        };
        self.auth_deadline
            .map_or(ping_or_pong, |auth| auth.min(ping_or_pong))
    }

    fn fired(&mut self, session: &Session) {
        let now = Instant::now();
        if self.auth_deadline.is_some_and(|d| d <= now) {
            self.auth_deadline = None;
            session.authorization_deadline();
        }
        match self.ping_sent {
            Some(sent) if sent + self.pong_timeout <= now => {
                // Closes with 4201: the loop ends on its next turn, before the timer counts.
                self.ping_sent = None;
                self.last_read = now;
                session.pong_timeout();
            }
            None if self.last_read + self.activity <= now => {
                session.ping();
                self.ping_sent = Some(now);
            }
            _ => {}
        }
    }
}
