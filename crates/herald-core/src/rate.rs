//! Fixed one-second windows: client events per connection (10 per second by default), and
//! the HTTP API budget of an app on the in-memory backplane.

use tokio::time::{Duration, Instant};

/// A fixed one-second window: at most `per_second` events start in any window.
#[derive(Debug)]
pub struct RateWindow {
    per_second: u32,
    window_start: Instant,
    used: u32,
}

impl RateWindow {
    pub fn new(per_second: u32) -> RateWindow {
        RateWindow {
            per_second,
            window_start: Instant::now(),
            used: 0,
        }
    }

    /// `allow` under a budget that may have changed since the window was made.
    pub fn allow_at_most(&mut self, per_second: u32, now: Instant) -> bool {
        self.per_second = per_second;
        self.allow(now)
    }

    /// Takes one slot; false when the window is used up.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.used = 0;
        }
        if self.used < self.per_second {
            self.used += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_per_second() {
        let mut r = RateWindow::new(10);
        let t0 = Instant::now();
        assert!((0..10).all(|_| r.allow(t0)));
        assert!(!r.allow(t0 + Duration::from_millis(999)));
        assert!(r.allow(t0 + Duration::from_secs(1)));
    }
}
