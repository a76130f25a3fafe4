//! Timing of backplane operations. `Timed<dyn Concern>` wraps one concern; the `concern!` macro
//! writes its methods, so adding an operation to a trait times it with no further code.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::BackplaneError;

/// Where operation timings go (the server implements it with Prometheus).
pub trait BackplaneMetrics: Send + Sync + 'static {
    /// `op` took `took`; `ok` is false when it failed.
    fn operation(&self, op: &'static str, took: Duration, ok: bool);
}

/// A concern whose every operation is timed.
pub struct Timed<T: ?Sized> {
    pub(super) inner: Arc<T>,
    metrics: Arc<dyn BackplaneMetrics>,
}

impl<T: ?Sized> Timed<T> {
    pub(super) fn wrap(inner: Arc<T>, metrics: &Arc<dyn BackplaneMetrics>) -> Arc<Timed<T>> {
        Arc::new(Timed {
            inner,
            metrics: metrics.clone(),
        })
    }

    pub(super) async fn time<R>(
        &self,
        op: &'static str,
        f: impl Future<Output = Result<R, BackplaneError>>,
    ) -> Result<R, BackplaneError> {
        let start = Instant::now();
        let result = f.await;
        self.metrics.operation(op, start.elapsed(), result.is_ok());
        result
    }
}
