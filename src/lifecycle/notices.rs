//! Notices about expiry: `token.expiring` once per token, version and threshold (by default
//! 7 days and 1 day before), and `token.expired` once it has, into the store's outbox like the
//! events of changes. A server looks every minute; of several issuers sharing a store, one
//! sends each notice (the store keeps a marker per notice).

use super::{LifecycleError, TokenService};
use crate::outbox::{notice, EXPIRED_NOTICE_WINDOW};
use crate::store::TokenStore;
use chrono::Duration;

/// How long before expiry a `token.expiring` notice goes out: whole hours, shown as `7d` when
/// whole days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NoticeThreshold(Duration);

/// The thresholds used unless configured: 7 days and 1 day.
pub fn default_thresholds() -> Vec<NoticeThreshold> {
    vec![
        NoticeThreshold(Duration::days(7)),
        NoticeThreshold(Duration::days(1)),
    ]
}

impl NoticeThreshold {
    /// The threshold as a duration.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// Thresholds from `7d,1d` (days `d` or hours `h`, 1 hour to 365 days), or `none`.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let text = text.trim();
        if text == "none" {
            return Ok(Vec::new());
        }
        let mut out: Vec<Self> = text
            .split(',')
            .map(|part| part.trim().parse())
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| b.cmp(a));
        out.dedup();
        Ok(out)
    }
}

impl std::str::FromStr for NoticeThreshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a threshold: use days (7d) or hours (12h), or none");
        let (number, unit) = text.split_at(text.len().saturating_sub(1));
        let n: i64 = number.parse().map_err(|_| bad())?;
        let duration = match unit {
            "d" => Duration::days(n),
            "h" => Duration::hours(n),
            _ => return Err(bad()),
        };
        if duration < Duration::hours(1) || duration > Duration::days(365) {
            return Err(format!("{text:?}: a threshold is 1h to 365d"));
        }
        Ok(Self(duration))
    }
}

impl std::fmt::Display for NoticeThreshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hours = self.0.num_hours();
        if hours % 24 == 0 {
            write!(f, "{}d", hours / 24)
        } else {
            write!(f, "{hours}h")
        }
    }
}

impl<S: TokenStore> TokenService<S> {
    /// Add the notices due now: `token.expiring` for each live token within a threshold of its
    /// expiry, and `token.expired` for each that expired within the last day; each once.
    /// Returns how many this call added.
    pub async fn send_expiry_notices(
        &self,
        thresholds: &[NoticeThreshold],
    ) -> Result<usize, LifecycleError> {
        let now = self.now();
        let mut sent = 0;
        for record in self.store.list().await? {
            let Some(expires) = record.expires_at else {
                continue;
            };
            let keep_until = expires + EXPIRED_NOTICE_WINDOW;
            let due: Vec<Option<String>> = if expires <= now {
                if now < keep_until {
                    vec![None]
                } else {
                    Vec::new()
                }
            } else {
                thresholds
                    .iter()
                    .filter(|t| expires - t.duration() <= now)
                    .map(|t| Some(t.to_string()))
                    .collect()
            };
            for within in due {
                let label = within.as_deref().unwrap_or("expired");
                let marker = format!("{}/{}/{label}", record.id, record.version);
                let event = notice(&record, now, within.as_deref());
                if self.store.add_notice(marker, keep_until, event).await? {
                    sent += 1;
                }
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_and_show_in_days_or_hours() {
        let parsed = NoticeThreshold::parse_list("1d, 7d,12h,7d").unwrap();
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["7d", "1d", "12h"]);
        assert_eq!(NoticeThreshold::parse_list("none").unwrap(), []);
        assert_eq!(
            NoticeThreshold::parse_list("48h").unwrap()[0].to_string(),
            "2d"
        );
        for bad in ["", "7", "d", "7w", "0h", "-1d", "366d", "7d,", "soon"] {
            assert!(NoticeThreshold::parse_list(bad).is_err(), "{bad:?}");
        }
    }
}
