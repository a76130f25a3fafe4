//! A backplane that times every operation of another one. In a cluster each operation is one
//! Redis round trip (a command, a pipeline or a script), so this is the Redis latency the node
//! sees, pool wait included.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use herald_protocol::{ChannelName, SocketId, UserId};

use super::{
    Backplane, BackplaneError, CachedEvent, ChannelCount, Control, Envelope, Joined, Left, Member,
    Occupancy,
};

/// Where operation timings go.
pub trait BackplaneMetrics: Send + Sync + 'static {
    /// `op` (the trait method's name) took `took`; `ok` is false when it failed.
    fn operation(&self, op: &'static str, took: Duration, ok: bool);
}

pub struct Instrumented {
    inner: Arc<dyn Backplane>,
    metrics: Arc<dyn BackplaneMetrics>,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Backplane>, metrics: Arc<dyn BackplaneMetrics>) -> Instrumented {
        Instrumented { inner, metrics }
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<T, BackplaneError>>,
    ) -> Result<T, BackplaneError> {
        let start = Instant::now();
        let result = f.await;
        self.metrics.operation(op, start.elapsed(), result.is_ok());
        result
    }
}

#[async_trait]
impl Backplane for Instrumented {
    async fn publish(&self, app: &str, envelope: &Envelope) -> Result<(), BackplaneError> {
        self.timed("publish", self.inner.publish(app, envelope))
            .await
    }

    async fn control(&self, app: &str, control: &Control) -> Result<(), BackplaneError> {
        self.timed("control", self.inner.control(app, control))
            .await
    }

    async fn subscribe(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Occupancy, BackplaneError> {
        self.timed("subscribe", self.inner.subscribe(app, channel, socket))
            .await
    }

    async fn unsubscribe(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Occupancy, BackplaneError> {
        self.timed("unsubscribe", self.inner.unsubscribe(app, channel, socket))
            .await
    }

    async fn unsubscribe_scheduling(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        key: &str,
        due_ms: u64,
    ) -> Result<Occupancy, BackplaneError> {
        let op = self
            .inner
            .unsubscribe_scheduling(app, channel, socket, key, due_ms);
        self.timed("unsubscribe", op).await
    }

    async fn presence_join(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        member: &Member,
        max_members: usize,
    ) -> Result<Joined, BackplaneError> {
        let f = self
            .inner
            .presence_join(app, channel, socket, member, max_members);
        self.timed("presence_join", f).await
    }

    async fn presence_leave(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
    ) -> Result<Option<Left>, BackplaneError> {
        let f = self.inner.presence_leave(app, channel, socket);
        self.timed("presence_leave", f).await
    }

    async fn presence_leave_scheduling(
        &self,
        app: &str,
        channel: &ChannelName,
        socket: &SocketId,
        key_prefix: &str,
        due_ms: u64,
    ) -> Result<Option<Left>, BackplaneError> {
        let f = self
            .inner
            .presence_leave_scheduling(app, channel, socket, key_prefix, due_ms);
        self.timed("presence_leave", f).await
    }

    async fn members(
        &self,
        app: &str,
        channel: &ChannelName,
    ) -> Result<Vec<Member>, BackplaneError> {
        self.timed("members", self.inner.members(app, channel))
            .await
    }

    async fn channels(&self, app: &str, prefix: &str) -> Result<Vec<ChannelCount>, BackplaneError> {
        self.timed("channels", self.inner.channels(app, prefix))
            .await
    }

    async fn channel(
        &self,
        app: &str,
        channel: &ChannelName,
    ) -> Result<ChannelCount, BackplaneError> {
        self.timed("channel", self.inner.channel(app, channel))
            .await
    }

    async fn user_signin(
        &self,
        app: &str,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError> {
        self.timed("user_signin", self.inner.user_signin(app, user, socket))
            .await
    }

    async fn user_signout(
        &self,
        app: &str,
        user: &UserId,
        socket: &SocketId,
    ) -> Result<bool, BackplaneError> {
        self.timed("user_signout", self.inner.user_signout(app, user, socket))
            .await
    }

    async fn users_online(&self, app: &str, users: &[UserId]) -> Result<Vec<bool>, BackplaneError> {
        self.timed("users_online", self.inner.users_online(app, users))
            .await
    }

    async fn cache_set(
        &self,
        app: &str,
        channel: &ChannelName,
        event: CachedEvent,
    ) -> Result<(), BackplaneError> {
        self.timed("cache_set", self.inner.cache_set(app, channel, event))
            .await
    }

    async fn cache_get(
        &self,
        app: &str,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, BackplaneError> {
        self.timed("cache_get", self.inner.cache_get(app, channel))
            .await
    }

    async fn connections(&self, app: &str, delta: i64) -> Result<u64, BackplaneError> {
        self.timed("connections", self.inner.connections(app, delta))
            .await
    }

    async fn mark(&self, app: &str, key: &str, ttl: Duration) -> Result<bool, BackplaneError> {
        self.timed("mark", self.inner.mark(app, key, ttl)).await
    }

    async fn schedule(&self, app: &str, key: &str, due_ms: u64) -> Result<(), BackplaneError> {
        self.timed("schedule", self.inner.schedule(app, key, due_ms))
            .await
    }

    async fn cancel(&self, app: &str, key: &str) -> Result<bool, BackplaneError> {
        self.timed("cancel", self.inner.cancel(app, key)).await
    }

    async fn take_due(
        &self,
        app: &str,
        now_ms: u64,
        max: usize,
    ) -> Result<Vec<String>, BackplaneError> {
        self.timed("take_due", self.inner.take_due(app, now_ms, max))
            .await
    }

    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    fn reconnects(&self) -> u64 {
        self.inner.reconnects()
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await
    }
}
