//! Time, injected.
//!
//! Every expiry decision reads the time through a [`Clock`], so tests move time by hand instead
//! of sleeping and a verifier's notion of "now" is one value per check.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved: for tests and for pinning verification to an instant.
///
/// It keeps whole seconds, which is all token claims carry.
#[derive(Debug)]
pub struct ManualClock {
    unix_seconds: AtomicI64,
}

impl ManualClock {
    /// A clock that reads `at` (truncated to the second) until moved.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            unix_seconds: AtomicI64::new(at.trunc_subsecs(0).timestamp()),
        }
    }

    /// Set the time.
    pub fn set(&self, at: DateTime<Utc>) {
        self.unix_seconds.store(at.timestamp(), Ordering::SeqCst);
    }

    /// Move the time forward (or back, with a negative duration).
    pub fn advance(&self, by: chrono::Duration) {
        self.unix_seconds
            .fetch_add(by.num_seconds(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.unix_seconds.load(Ordering::SeqCst), 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_stands_still_until_moved() {
        let start = DateTime::parse_from_rfc3339("2026-11-28T00:00:00.750Z")
            .unwrap()
            .to_utc();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now().to_rfc3339(), "2026-11-28T00:00:00+00:00");
        clock.advance(chrono::Duration::days(30));
        assert_eq!(clock.now().to_rfc3339(), "2026-12-28T00:00:00+00:00");
        clock.set(start);
        assert_eq!(clock.now().timestamp(), start.timestamp());
    }
}
