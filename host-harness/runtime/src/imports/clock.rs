//! `clock`: the system clock, or a fixed one that tests move by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Default)]
pub enum Clock {
    #[default]
    System,
    Fixed(Arc<AtomicU64>),
}

impl Clock {
    pub fn fixed(now_ms: u64) -> Self {
        Clock::Fixed(Arc::new(AtomicU64::new(now_ms)))
    }

    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            Clock::Fixed(t) => t.load(Ordering::SeqCst),
        }
    }

    pub fn now_secs(&self) -> i64 {
        (self.now_ms() / 1000) as i64
    }

    /// Moves a fixed clock forward; the system clock moves by itself.
    pub fn advance_ms(&self, ms: u64) {
        if let Clock::Fixed(t) = self {
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

impl crate::ports::TimeSource for Clock {
    fn now_ms(&self) -> u64 {
        Clock::now_ms(self)
    }
}

impl crate::bindings::billing::stripe_plugin::clock::Host for super::HostState {
    fn now_ms(&mut self) -> u64 {
        self.env.clock.now_ms()
    }
}
