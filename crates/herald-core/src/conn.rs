//! One connection's shared handle and its bounded outbox. Sessions and the hub push encoded
//! frames; the transport's writer drains them. Nothing here ever blocks on a socket.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use herald_protocol::{ErrorCode, ProtocolError, SocketId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How a connection ends, as the writer will tell the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code (a Pusher 4xxx code, or 1009 for an oversized message).
    pub code: u16,
    pub reason: String,
    /// `pusher:error` frame sent just before the close frame.
    pub error_frame: Option<Bytes>,
}

impl CloseReason {
    pub fn from_error(code: ErrorCode, message: &str) -> CloseReason {
        let err = ProtocolError::Fatal {
            code,
            message: message.to_owned(),
        };
        CloseReason {
            code: code.code(),
            reason: truncate_reason(message),
            error_frame: Some(Bytes::from(err.frame())),
        }
    }
}

/// RFC 6455 leaves 123 bytes for the reason; cut at a character boundary.
fn truncate_reason(message: &str) -> String {
    let mut end = message.len().min(123);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

struct Shared {
    socket_id: SocketId,
    tx: mpsc::Sender<Bytes>,
    close: OnceLock<CloseReason>,
    done: CancellationToken,
}

/// What became of a frame handed to `ConnHandle::send`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// The outbox was full: the frame is dropped and the connection closes with 4100.
    /// `cut_off` is true for the frame that closed it (once per connection).
    Dropped {
        cut_off: bool,
    },
    /// The writer is gone (the connection already ended).
    Gone,
}

/// A cheap, cloneable handle to a connection: the hub keeps one per local subscription.
#[derive(Clone)]
pub struct ConnHandle(Arc<Shared>);

impl ConnHandle {
    /// A handle and its outbox holding at most `capacity` frames.
    pub fn new(socket_id: SocketId, capacity: usize) -> (ConnHandle, Outbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(Shared {
            socket_id,
            tx,
            close: OnceLock::new(),
            done: CancellationToken::new(),
        });
        (ConnHandle(shared.clone()), Outbox { rx, shared })
    }

    pub fn socket_id(&self) -> &SocketId {
        &self.0.socket_id
    }

    /// Queues a frame. A subscriber whose outbox is full is too slow to keep up: it is closed
    /// with 4100 rather than buffered without bound, and the frame is dropped.
    pub fn send(&self, frame: Bytes) -> Sent {
        match self.0.tx.try_send(frame) {
            Ok(()) => Sent::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Sent::Dropped {
                cut_off: self.close(CloseReason::from_error(
                    ErrorCode::OverCapacity,
                    "Over capacity: the connection is not reading its messages fast enough",
                )),
            },
            Err(mpsc::error::TrySendError::Closed(_)) => Sent::Gone,
        }
    }

    /// Ends the connection with `reason`. Only the first reason counts; true if this was it.
    pub fn close(&self, reason: CloseReason) -> bool {
        let first = self.0.close.set(reason).is_ok();
        if first {
            self.0.done.cancel();
        }
        first
    }

    /// Ends the connection without telling the client anything (the peer is gone).
    pub fn abandon(&self) {
        self.0.done.cancel();
    }

    /// The close code the server chose, if it closed the connection (None: the peer left).
    pub fn close_code(&self) -> Option<u16> {
        self.0.close.get().map(|r| r.code)
    }

    /// Resolves once the connection is closing, for whatever reason.
    pub async fn closed(&self) {
        self.0.done.cancelled().await
    }
}

impl PartialEq for ConnHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnHandle({})", self.0.socket_id)
    }
}

/// What the writer does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Outgoing {
    Frame(Bytes),
    /// Send the optional error frame and the close frame, then stop.
    Close(CloseReason),
    /// Stop without writing (peer gone).
    Stop,
}

/// The receiving end of a connection's queue, owned by the transport's writer.
pub struct Outbox {
    rx: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
}

impl Outbox {
    /// The next thing to write. Closing wins over queued frames: a closing client does not
    /// need the rest of its backlog.
    pub async fn next(&mut self) -> Outgoing {
        tokio::select! {
            biased;
            _ = self.shared.done.cancelled() => self.close_item(),
            frame = self.rx.recv() => match frame {
                Some(f) => Outgoing::Frame(f),
                None => self.close_item(),
            },
        }
    }

    /// A frame that is already queued, without waiting (lets the writer batch before a flush).
    pub fn try_next(&mut self) -> Option<Bytes> {
        if self.shared.done.is_cancelled() {
            return None;
        }
        self.rx.try_recv().ok()
    }

    fn close_item(&self) -> Outgoing {
        match self.shared.close.get() {
            Some(r) => Outgoing::Close(r.clone()),
            None => Outgoing::Stop,
        }
    }
}
