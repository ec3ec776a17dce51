//! The bad-signature budget of each client: a source that sends more than `limit` tokens with
//! bad signatures in a window has its further signature checks refused for a cool-down.
//!
//! Only a forger produces bad signatures in numbers (a client with a stale token gets
//! `revoked`, `expired` or `superseded`, which cost no check once its token is cached), so the
//! budget takes the checks a flood would spend from the flood alone: other sources, and tokens
//! already cached for the same source, are not touched. A source is a client address by the
//! trusted-proxy rule; an IPv6 client is its /64, which one host usually holds whole.

use crate::clock::Clock;
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The default number of bad signatures a source may send in a [`WINDOW_SECS`] window.
pub const DEFAULT_LIMIT: u32 = 100;
/// The window in which bad signatures are counted.
pub const WINDOW_SECS: i64 = 10;
/// How long a source that went over its budget has its checks refused.
pub const COOL_DOWN_SECS: i64 = 60;
/// Sources remembered at most; past that, new ones go uncounted rather than grow the memory
/// an attacker with many addresses could fill.
const MAX_SOURCES: usize = 65_536;

/// The budgets of every source.
pub struct Budget {
    limit: u32,
    clock: Arc<dyn Clock>,
    sources: Mutex<HashMap<IpAddr, Tally>>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    window_start: DateTime<Utc>,
    bad: u32,
    cooling_until: Option<DateTime<Utc>>,
}

impl Tally {
    /// Whether it still says anything at `now`.
    fn matters(&self, now: DateTime<Utc>) -> bool {
        self.cooling_until.is_some_and(|t| t > now)
            || now - self.window_start < Duration::seconds(WINDOW_SECS)
    }
}

/// A source cooling down, for this many more seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoolingDown {
    /// Seconds until it may try again, at least 1.
    pub retry_after: u64,
}

impl Budget {
    /// `limit` bad signatures per source and window; 0 turns the budget off.
    pub fn new(limit: u32, clock: Arc<dyn Clock>) -> Self {
        Self {
            limit,
            clock,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `source` may have a signature checked now.
    pub fn allows(&self, source: Option<IpAddr>) -> Result<(), CoolingDown> {
        let Some(source) = source.filter(|_| self.limit > 0) else {
            return Ok(());
        };
        let now = self.clock.now();
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        match sources.get(&key(source)).and_then(|t| t.cooling_until) {
            Some(until) if until > now => Err(CoolingDown {
                retry_after: u64::try_from((until - now).num_seconds())
                    .unwrap_or(0)
                    .max(1),
            }),
            _ => Ok(()),
        }
    }

    /// Count a bad signature from `source`: `true` when this one used up its budget, so the
    /// cool-down starts now (the caller says so, once, in the log).
    pub fn bad_signature(&self, source: Option<IpAddr>) -> bool {
        let Some(source) = source.filter(|_| self.limit > 0) else {
            return false;
        };
        let now = self.clock.now();
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&key(source)) {
            sources.retain(|_, t| t.matters(now));
            if sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let tally = sources.entry(key(source)).or_insert(Tally {
            window_start: now,
            bad: 0,
            cooling_until: None,
        });
        if now - tally.window_start >= Duration::seconds(WINDOW_SECS) {
            tally.window_start = now;
            tally.bad = 0;
        }
        tally.bad = tally.bad.saturating_add(1);
        if tally.bad > self.limit && tally.cooling_until.is_none_or(|t| t <= now) {
            tally.cooling_until = Some(now + Duration::seconds(COOL_DOWN_SECS));
            tally.bad = 0;
            tally.window_start = now;
            return true;
        }
        false
    }
}

/// What a budget is kept for: the address, or an IPv6 address's /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn budget(limit: u32) -> (Budget, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        (Budget::new(limit, clock.clone()), clock)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_source_over_its_budget_cools_down_and_no_other_does() {
        let (budget, clock) = budget(3);
        let forger = ip("203.0.113.9");
        for _ in 0..3 {
            assert!(!budget.bad_signature(forger));
            assert!(budget.allows(forger).is_ok());
        }
        assert!(budget.bad_signature(forger), "the fourth trips it");
        assert_eq!(
            budget.allows(forger),
            Err(CoolingDown {
                retry_after: COOL_DOWN_SECS as u64
            })
        );
        assert!(budget.allows(ip("203.0.113.10")).is_ok());
        clock.advance(Duration::seconds(COOL_DOWN_SECS - 1));
        assert_eq!(budget.allows(forger), Err(CoolingDown { retry_after: 1 }));
        clock.advance(Duration::seconds(1));
        assert!(budget.allows(forger).is_ok(), "the cool-down is over");
    }

    #[test]
    fn bad_signatures_are_counted_per_window() {
        let (budget, clock) = budget(3);
        let slow = ip("198.51.100.1");
        for _ in 0..20 {
            for _ in 0..3 {
                assert!(!budget.bad_signature(slow));
            }
            clock.advance(Duration::seconds(WINDOW_SECS));
        }
        assert!(
            budget.allows(slow).is_ok(),
            "three a window is within budget"
        );
    }

    #[test]
    fn an_ipv6_source_is_its_64_and_a_mapped_ipv4_is_the_ipv4() {
        let (budget, _) = budget(1);
        budget.bad_signature(ip("2001:db8:1:2::1"));
        assert!(budget.bad_signature(ip("2001:db8:1:2:ffff::7")));
        assert!(budget.allows(ip("2001:db8:1:2::99")).is_err());
        assert!(budget.allows(ip("2001:db8:1:3::1")).is_ok());
        budget.bad_signature(ip("192.0.2.1"));
        budget.bad_signature(ip("::ffff:192.0.2.1"));
        assert!(budget.allows(ip("192.0.2.1")).is_err());
    }

    #[test]
    fn a_zero_limit_or_no_address_is_never_refused() {
        let (off, _) = budget(0);
        for _ in 0..1000 {
            assert!(!off.bad_signature(ip("192.0.2.1")));
        }
        assert!(off.allows(ip("192.0.2.1")).is_ok());
        let (on, _) = budget(1);
        for _ in 0..10 {
            assert!(!on.bad_signature(None));
        }
        assert!(on.allows(None).is_ok());
    }

    #[test]
    fn the_memory_is_bounded_and_stale_sources_make_room() {
        let (budget, clock) = budget(1);
        for i in 0..MAX_SOURCES as u32 {
            budget.bad_signature(Some(IpAddr::V4(i.into())));
        }
        let late = Some(IpAddr::V4(u32::MAX.into()));
        budget.bad_signature(late);
        assert!(
            !budget.bad_signature(late),
            "full: a new source goes uncounted"
        );
        clock.advance(Duration::seconds(WINDOW_SECS));
        budget.bad_signature(late);
        assert!(
            budget.bad_signature(late),
            "stale sources were dropped for it"
        );
    }
}
