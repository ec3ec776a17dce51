//! Admission control for signature checks: a flood of forged tokens must not starve valid
//! traffic.
//!
//! A token the verifier has cached costs a hash lookup; one it has not costs an Ed25519 check,
//! about a hundred times more. So checks run on threads of their own, [`Admission::slots`] of
//! them, fewer than the cores, at a lower priority than the runtime's workers: whatever
//! arrives, the workers answer cached tokens first, and checks get the CPU that is left (all of
//! it when nothing else runs). A bounded number of checks wait their turn, and past that a
//! check is refused at once (503 with `Retry-After`), since waiting longer helps nobody.

use super::budget::CoolingDown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How much lower than the runtime's workers the check threads run (a nice value: at +10, a
/// busy check thread gets about a tenth of a core that a busy worker shares with it).
const NICENESS: i32 = 10;

/// The default number of checks that may wait per slot: with a check at tens of microseconds,
/// a full queue drains within a few milliseconds.
pub const DEFAULT_QUEUE_PER_SLOT: usize = 128;

/// The signature-check gate of a server.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    slot_count: usize,
    queue: usize,
    waiting: AtomicUsize,
    /// `None` when no thread could be started: checks then run on the caller's thread.
    checkers: Option<mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send>;

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
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    /// `slots` checks at a time (at least one), each on a thread of its own, and `queue` more
    /// waiting.
    pub fn new(slots: usize, queue: usize) -> Self {
        let slots = slots.max(1);
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            slot_count: slots,
            queue,
            waiting: AtomicUsize::new(0),
            checkers: start_checkers(slots),
        }
    }

    /// Sized for this machine: one slot fewer than the cores (at least one), and
    /// [`DEFAULT_QUEUE_PER_SLOT`] waiting per slot.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let slots = cores.saturating_sub(1).max(1);
        Self::new(slots, slots * DEFAULT_QUEUE_PER_SLOT)
    }

    /// Run `check` on a check thread when a slot is free, or be refused at once when the
    /// queue is full. The slot stays taken until the check is done, even if the caller stops
    /// waiting for it (a client that hung up), so no more than the slots ever run.
    pub async fn check<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Overloaded> {
        let slot = self.enter().await?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = check();
            drop(slot);
            let _ = answer.send(out);
        });
        let job = match &self.checkers {
            Some(checkers) => match checkers.send(job) {
                Ok(()) => None,
                Err(mpsc::SendError(job)) => Some(job),
            },
            None => Some(job),
        };
        if let Some(job) = job {
            job();
        }
        // Dropped unanswered only if the check panicked.
        answered.await.map_err(|_| Overloaded)
    }

    /// Wait for a slot, or be refused at once when the queue is full.
    pub async fn enter(&self) -> Result<Slot, Overloaded> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Slot { _permit: permit });
        }
        // Counted before waiting, and uncounted by the guard even if the request is dropped
        // while it waits (a client that hung up).
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Overloaded);
        }
        let _waiting = Waiting(&self.waiting);
        match self.slots.clone().acquire_owned().await {
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

/// `count` threads that run the jobs sent to them, at [`NICENESS`]; they end when the sender
/// is dropped. `None` if not one could be started.
fn start_checkers(count: usize) -> Option<mpsc::Sender<Job>> {
    let (send, receive) = mpsc::channel::<Job>();
    let receive = Arc::new(Mutex::new(receive));
    let mut started = 0;
    for i in 0..count {
        let receive = receive.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tessera-check-{i}"))
            .spawn(move || {
                lower_priority();
                loop {
                    let job = receive.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = job else { return };
                    // A panicking check must not take the thread with it.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        match spawned {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!(error = %e, "cannot start a signature-check thread"),
        }
    }
    (started > 0).then_some(send)
}

/// Lower this thread's priority: on Linux a nice value belongs to the thread.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, NICENESS) {
        tracing::debug!(error = %e, "cannot lower the priority of a signature-check thread");
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
    use crate::testing::poll_once;
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
        assert!(poll_once(&mut first).await.is_none());
        assert!(poll_once(&mut second).await.is_none());
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

    #[tokio::test]
    async fn checks_run_on_their_own_threads_at_a_lower_priority() {
        let admission = Admission::new(1, 1);
        let (name, nice) = admission
            .check(|| {
                let name = std::thread::current().name().map(str::to_owned);
                #[cfg(target_os = "linux")]
                let nice = rustix::process::getpriority_process(None).unwrap();
                #[cfg(not(target_os = "linux"))]
                let nice = NICENESS;
                (name, nice)
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("tessera-check-0"));
        let ours = {
            #[cfg(target_os = "linux")]
            let ours = rustix::process::getpriority_process(None).unwrap();
            #[cfg(not(target_os = "linux"))]
            let ours = 0;
            ours
        };
        // Lowered by NICENESS, or as far as the limit goes when this test runs niced already.
        assert!(
            nice > ours || ours >= 19,
            "check at {nice}, caller at {ours}"
        );
    }

    #[tokio::test]
    async fn a_check_keeps_its_slot_after_its_caller_gave_up() {
        let admission = Admission::new(1, 1);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            admission.check(move || released.recv().ok()),
        )
        .await;
        assert!(gave_up.is_err());
        assert_eq!(admission.in_flight(), 1, "still running: the slot is taken");
        release.send(()).unwrap();
        let answer = admission.check(|| 7).await;
        assert_eq!(answer, Ok(7));
        assert_eq!(admission.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_check_that_panics_leaves_the_thread_working() {
        let admission = Admission::new(1, 1);
        let panicked = admission.check(|| -> u8 { panic!("a check failed") }).await;
        assert_eq!(panicked, Err(Overloaded));
        assert_eq!(admission.check(|| 7).await, Ok(7));
    }

    #[test]
    fn a_machine_keeps_a_core_for_cached_tokens() {
        let admission = Admission::for_this_machine();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(admission.slots() >= 1);
        assert!(admission.slots() < cores || cores == 1);
    }
}
