//! Admission control for signature checks: a flood of forged tokens must not starve valid
//! traffic.
//!
//! A token the verifier has cached costs a hash lookup; one it has not costs an Ed25519 check,
//! about a hundred times more, on a runtime worker. So checks run at most
//! [`Admission::slots`] at a time, fewer than the workers, which leaves a worker free for cached
//! tokens whatever arrives; a bounded number wait their turn, and past that a check is refused
//! at once (503 with `Retry-After`), since waiting longer helps nobody.

use super::budget::CoolingDown;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The default number of checks that may wait per slot: with a check at tens of microseconds,
/// a full queue drains within a few milliseconds.
pub const DEFAULT_QUEUE_PER_SLOT: usize = 128;

/// The signature-check gate of a server.
#[derive(Debug)]
pub struct Admission {
    slots: Semaphore,
    slot_count: usize,
    queue: usize,
    waiting: AtomicUsize,
}

/// Checks that arrived to a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

/// Why a token's signature was not checked: it gets no verdict, and the client may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rationed {
    /// Too many checks were waiting.
    Overloaded,
    /// The client spent its budget of bad signatures.
    CoolingDown(CoolingDown),
}

impl Rationed {
    /// The reason, as metrics and error bodies name it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Overloaded => "overloaded",
            Self::CoolingDown(_) => "too_many_bad_signatures",
        }
    }

    /// Seconds the client should wait before it retries.
    pub fn retry_after(self) -> u64 {
        match self {
            Self::Overloaded => 1,
            Self::CoolingDown(c) => c.retry_after,
        }
    }
}

/// Leave to run one check; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
}

impl Admission {
    /// `slots` checks at a time (at least one), `queue` more waiting.
    pub fn new(slots: usize, queue: usize) -> Self {
        let slots = slots.max(1);
        Self {
            slots: Semaphore::new(slots),
            slot_count: slots,
            queue,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Sized for this machine: one slot fewer than the cores (at least one), and
    /// [`DEFAULT_QUEUE_PER_SLOT`] waiting per slot.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slots = cores.saturating_sub(1).max(1);
        Self::new(slots, slots * DEFAULT_QUEUE_PER_SLOT)
    }

    /// Wait for a slot, or be refused at once when the queue is full.
    pub async fn enter(&self) -> Result<Slot<'_>, Overloaded> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(Slot { _permit: permit });
        }
        // Counted before waiting, and uncounted by the guard even if the request is dropped
        // while it waits (a client that hung up).
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Overloaded);
        }
        let _waiting = Waiting(&self.waiting);
        match self.slots.acquire().await {
            Ok(permit) => Ok(Slot { _permit: permit }),
            // The semaphore is never closed.
            Err(_) => Err(Overloaded),
        }
    }

    /// How many checks may run at once.
    pub fn slots(&self) -> usize {
        self.slot_count
    }

    /// Checks running now.
    pub fn in_flight(&self) -> usize {
        self.slot_count - self.slots.available_permits()
    }

    /// Checks waiting now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn past_the_slots_checks_wait_and_past_the_queue_they_are_refused() {
        let admission = Admission::new(1, 2);
        let running = admission.enter().await.unwrap();
        assert_eq!(admission.in_flight(), 1);
        let first = admission.enter();
        let second = admission.enter();
        tokio::pin!(first, second);
        // Polled once each, both wait in the queue.
        assert!(futures_poll(&mut first).await.is_none());
        assert!(futures_poll(&mut second).await.is_none());
        assert_eq!(admission.queued(), 2);
        assert_eq!(admission.enter().await.unwrap_err(), Overloaded);
        drop(running);
        let slot = first.await.unwrap();
        assert_eq!(admission.queued(), 1);
        drop(slot);
        second.await.unwrap();
        assert_eq!(admission.queued(), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_the_queue() {
        let admission = Admission::new(1, 1);
        let _running = admission.enter().await.unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(10), admission.enter()).await;
        assert!(gave_up.is_err());
        assert_eq!(admission.queued(), 0);
        let waits = tokio::time::timeout(Duration::from_millis(10), admission.enter()).await;
        assert!(
            waits.is_err(),
            "the queue has room again: it waits, not refused"
        );
    }

    #[test]
    fn a_machine_keeps_a_core_for_cached_tokens() {
        let admission = Admission::for_this_machine();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(admission.slots() >= 1);
        assert!(admission.slots() < cores || cores == 1);
    }

    /// Poll a future once: `Some` if it finished.
    async fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
            std::task::Poll::Pending => std::task::Poll::Ready(None),
        })
        .await
    }
}
