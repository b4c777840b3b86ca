//! The emulator's time: the system clock, or whatever the embedding test or
//! host says it is (so that the plugin and "Stripe" agree on the time).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from a shared source.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self::from_fn(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        })
    }

    pub fn from_fn(now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now_ms))
    }

    /// A clock that stands still until the returned handle moves it.
    pub fn manual(start_ms: u64) -> (Self, Arc<AtomicU64>) {
        let t = Arc::new(AtomicU64::new(start_ms));
        let read = t.clone();
        (Self::from_fn(move || read.load(Ordering::SeqCst)), t)
    }

    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }

    pub fn now_secs(&self) -> i64 {
        (self.now_ms() / 1000) as i64
    }
}
