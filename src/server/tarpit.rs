//! The tarpit: a client whose bad-signature budget is spent waits a while for each refusal.
//!
//! A refusal costs the server little, but a client that sends its next request as soon as the
//! last is answered (as most flood tools do, a fixed number of connections at a time) would
//! still take a share of the CPU per request from everyone else. Held for a second, such a
//! client sends one request per connection per second. A client that does not wait for
//! answers gains nothing from this, so at most [`MAX_HELD`] refusals are held at once and any
//! more are answered at once: the memory held stays bounded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How long a refusal is held.
pub const HOLD: Duration = Duration::from_secs(1);
/// Refusals held at once, at most.
pub const MAX_HELD: usize = 1024;

/// Refusals being held.
#[derive(Debug)]
pub struct Tarpit {
    hold: Duration,
    max_held: usize,
    held: AtomicUsize,
}

impl Tarpit {
    /// Hold each refusal for `hold`, `max_held` at once.
    pub fn new(hold: Duration, max_held: usize) -> Self {
        Self {
            hold,
            max_held,
            held: AtomicUsize::new(0),
        }
    }

    /// Wait [`Tarpit::new`]'s `hold`, or not at all when too many are held already.
    pub async fn hold(&self) {
        if self.held.fetch_add(1, Ordering::AcqRel) >= self.max_held {
            self.held.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let _held = Held(&self.held);
        tokio::time::sleep(self.hold).await;
    }

    /// Refusals being held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

impl Default for Tarpit {
    fn default() -> Self {
        Self::new(HOLD, MAX_HELD)
    }
}

/// Uncounts a hold when it ends, or when its request is dropped while held.
struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::poll_once;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn a_refusal_is_held_for_the_hold() {
        let tarpit = Tarpit::new(Duration::from_secs(1), 2);
        let started = Instant::now();
        tarpit.hold().await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(tarpit.held(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_most_held_a_refusal_is_answered_at_once() {
        let tarpit = Tarpit::new(Duration::from_secs(1), 2);
        let mut first = Box::pin(tarpit.hold());
        let mut second = Box::pin(tarpit.hold());
        // Polled once each, both are held.
        assert!(poll_once(&mut first).await.is_none());
        assert!(poll_once(&mut second).await.is_none());
        assert_eq!(tarpit.held(), 2);
        let started = Instant::now();
        tarpit.hold().await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        drop(first);
        assert_eq!(tarpit.held(), 1, "a dropped request is no longer held");
        second.await;
        assert_eq!(tarpit.held(), 0);
    }
}
