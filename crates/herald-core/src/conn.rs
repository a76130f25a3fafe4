//! One connection's shared handle and its bounded outbox. Sessions and the hub push encoded
//! frames; the transport's connection task drains them. Nothing here ever blocks on a socket.
//!
//! The outbox is a `VecDeque` behind a mutex plus one `AtomicWaker`, not a tokio mpsc channel:
//! a channel allocates a 32-slot block up front (about 1.5 KB with its state), and idle
//! connections dominate a node's memory. The deque holds nothing while idle. One task owns the
//! connection (reads, writes and timers), so one waker serves both "a frame is queued" and
//! "the connection is closing".

use crate::sync::lock;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use herald_protocol::{ErrorCode, ProtocolError, SocketId};

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
    queue: Mutex<Queue>,
    /// The connection's task: woken when a frame is queued and when the connection closes.
    waker: AtomicWaker,
    capacity: usize,
    /// Boxed: most connections never get one, and inline it would cost each of them 64 bytes.
    close: OnceLock<Box<CloseReason>>,
    /// Set once, by `close` or `abandon`.
    closing: AtomicBool,
    /// When the connection opened, in seconds since the process's first connection (`epoch`):
    /// four bytes instead of an `Instant`'s sixteen.
    opened: u32,
}

/// The instant `Shared::opened` counts from.
fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

struct Queue {
    frames: VecDeque<Bytes>,
    /// The writer is gone (its `Outbox` dropped): frames are refused.
    gone: bool,
}

/// Above this many slots an emptied deque gives its memory back (a burst must not pin it).
const KEEP_SLOTS: usize = 16;

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
        let shared = Arc::new(Shared {
            socket_id,
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                gone: false,
            }),
            waker: AtomicWaker::new(),
            capacity: capacity.max(1),
            close: OnceLock::new(),
            closing: AtomicBool::new(false),
            opened: epoch().elapsed().as_secs() as u32,
        });
        (ConnHandle(shared.clone()), Outbox { shared })
    }

    pub fn socket_id(&self) -> &SocketId {
        &self.0.socket_id
    }

    /// Queues a frame. A subscriber whose outbox is full is too slow to keep up: it is closed
    /// with 4100 rather than buffered without bound, and the frame is dropped.
    pub fn send(&self, frame: Bytes) -> Sent {
        let mut q = lock(&self.0.queue);
        if q.gone {
            return Sent::Gone;
        }
        if q.frames.len() >= self.0.capacity {
            drop(q);
            return Sent::Dropped {
                cut_off: self.close(CloseReason::from_error(
                    ErrorCode::OverCapacity,
                    "Over capacity: the connection is not reading its messages fast enough",
                )),
            };
        }
        let was_empty = q.frames.is_empty();
        q.frames.push_back(frame);
        drop(q);
        // A non-empty queue already woke the task, which drains it all before sleeping again.
        if was_empty {
            self.0.waker.wake();
        }
        Sent::Queued
    }

    /// Ends the connection with `reason`. Only the first reason counts; true if this was it.
    pub fn close(&self, reason: CloseReason) -> bool {
        let first = self.0.close.set(Box::new(reason)).is_ok();
        if first {
            self.abandon();
        }
        first
    }

    /// Ends the connection without telling the client anything (the peer is gone).
    pub fn abandon(&self) {
        self.0.closing.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// How long the connection has been open (to the second).
    pub fn age(&self) -> std::time::Duration {
        let now = epoch().elapsed().as_secs() as u32;
        std::time::Duration::from_secs(u64::from(now.saturating_sub(self.0.opened)))
    }

    /// Whether the connection is already being closed.
    pub fn is_closing(&self) -> bool {
        self.0.closing.load(Ordering::Acquire)
    }

    /// The close code the server chose, if it closed the connection (None: the peer left).
    pub fn close_code(&self) -> Option<u16> {
        self.0.close.get().map(|r| r.code)
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
    shared: Arc<Shared>,
}

impl Outbox {
    /// The next thing to write. Closing wins over queued frames: a closing client does not
    /// need the rest of its backlog.
    pub async fn next(&mut self) -> Outgoing {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// `next` for a hand-written poll loop: registers the task's waker, then answers.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Outgoing> {
        if self.poll_closing(cx).is_ready() {
            return Poll::Ready(self.close_item());
        }
        match self.pop() {
            Some(frame) => Poll::Ready(Outgoing::Frame(frame)),
            None => Poll::Pending,
        }
    }

    /// Ready once the connection is closing (`closing` says how); else registers the task's
    /// waker, so a later frame or close wakes it.
    pub fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Registered before the check: a frame or close arriving in between still wakes us.
        self.shared.waker.register(cx.waker());
        if self.shared.closing.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// The closing item, once the connection is closing (None before).
    pub fn closing(&self) -> Option<Outgoing> {
        self.shared
            .closing
            .load(Ordering::Acquire)
            .then(|| self.close_item())
    }

    /// A frame that is already queued, without waiting (lets the writer batch before a flush).
    pub fn try_next(&mut self) -> Option<Bytes> {
        if self.shared.closing.load(Ordering::Acquire) {
            return None;
        }
        self.pop()
    }

    fn pop(&self) -> Option<Bytes> {
        let mut q = lock(&self.shared.queue);
        let frame = q.frames.pop_front();
        if q.frames.is_empty() && q.frames.capacity() > KEEP_SLOTS {
            q.frames = VecDeque::new();
        }
        frame
    }

    fn close_item(&self) -> Outgoing {
        match self.shared.close.get() {
            Some(r) => Outgoing::Close(CloseReason::clone(r)),
            None => Outgoing::Stop,
        }
    }
}

impl Drop for Outbox {
    /// The writer is gone: later frames are refused and the queued ones freed now.
    fn drop(&mut self) {
        let mut q = lock(&self.shared.queue);
        q.gone = true;
        q.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(capacity: usize) -> (ConnHandle, Outbox) {
        ConnHandle::new(SocketId::from_parts(1, 2), capacity)
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_wake_a_waiting_writer() {
        let (h, mut out) = conn(8);
        let waiter = tokio::spawn(async move {
            let first = out.next().await;
            (first, out)
        });
        tokio::task::yield_now().await;
        assert_eq!(h.send(Bytes::from_static(b"a")), Sent::Queued);
        assert_eq!(h.send(Bytes::from_static(b"b")), Sent::Queued);
        let (first, mut out) = waiter.await.unwrap();
        assert_eq!(first, Outgoing::Frame(Bytes::from_static(b"a")));
        assert_eq!(out.try_next(), Some(Bytes::from_static(b"b")));
        assert_eq!(out.try_next(), None);
    }

    #[tokio::test]
    async fn a_full_outbox_cuts_the_connection_off_once_with_4100() {
        let (h, mut out) = conn(2);
        h.send(Bytes::from_static(b"1"));
        h.send(Bytes::from_static(b"2"));
        assert_eq!(
            h.send(Bytes::from_static(b"3")),
            Sent::Dropped { cut_off: true }
        );
        assert_eq!(
            h.send(Bytes::from_static(b"4")),
            Sent::Dropped { cut_off: false }
        );
        assert_eq!(h.close_code(), Some(4100));
        // Closing wins over the backlog.
        assert!(matches!(out.next().await, Outgoing::Close(r) if r.code == 4100));
    }

    #[tokio::test]
    async fn frames_for_a_gone_writer_are_refused_and_bursts_release_memory() {
        let (h, mut out) = conn(1000);
        for _ in 0..100 {
            h.send(Bytes::from_static(b"x"));
        }
        while out.try_next().is_some() {}
        assert!(lock(&h.0.queue).frames.capacity() <= KEEP_SLOTS);
        drop(out);
        assert_eq!(h.send(Bytes::from_static(b"late")), Sent::Gone);
    }
}
