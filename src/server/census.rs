//! The token census for `/metrics`: how many tokens are active, expired, about to expire, and
//! how many live super-admins there are, so an alert can fire before a token dies unnoticed.
//!
//! Counting lists every record, so a census is taken at most once a minute however often
//! Prometheus scrapes, and the last one is served in between (and while the store fails).

use crate::lifecycle::{Service, Status};
use crate::model::TokenRecord;
use chrono::{DateTime, Duration, Utc};
use std::time::Instant;
use tokio::sync::Mutex;

/// How long a census is served before the next is taken.
const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// The window of `tessera_tokens_expiring`.
pub const EXPIRING_DAYS: i64 = 7;

/// The counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Tokens not yet expired.
    pub active: u64,
    /// Tokens past their expiry, not deleted.
    pub expired: u64,
    /// Active tokens that expire within [`EXPIRING_DAYS`].
    pub expiring: u64,
    /// Active super-admin tokens.
    pub super_admins_live: u64,
}

impl Census {
    /// The census of `records` at `now`.
    pub fn of(records: &[TokenRecord], now: DateTime<Utc>) -> Self {
        let soon = now + Duration::days(EXPIRING_DAYS);
        let mut census = Self::default();
        for record in records {
            if record.status(now) == Status::Expired {
                census.expired += 1;
                continue;
            }
            census.active += 1;
            if record.expires_at.is_some_and(|at| at <= soon) {
                census.expiring += 1;
            }
            if record.permissions.is_super_admin() {
                census.super_admins_live += 1;
            }
        }
        census
    }
}

/// The last census and when it was taken.
#[derive(Debug, Default)]
pub struct Taker {
    last: Mutex<Option<(Instant, Census)>>,
}

impl Taker {
    /// A census of `service`'s store: the last one while it is fresh, else a new one; the last
    /// one when the store fails (`None` if there never was one).
    pub async fn take(&self, service: &Service) -> Option<Census> {
        let mut last = self.last.lock().await;
        if let Some((at, census)) = *last {
            if at.elapsed() < FRESH_FOR {
                return Some(census);
            }
        }
        match service.list().await {
            Ok(records) => {
                let census = Census::of(&records, service.now());
                *last = Some((Instant::now(), census));
                Some(census)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not count the tokens for /metrics");
                last.map(|(_, census)| census)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::Permissions;

    fn record(super_admin: bool, expires_at: Option<DateTime<Utc>>) -> TokenRecord {
        let at = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc();
        TokenRecord {
            id: uuid::Uuid::new_v4(),
            name: "t".into(),
            description: String::new(),
            permissions: if super_admin {
                Permissions::SuperAdmin
            } else {
                serde_json::from_str(
                    r#"{"grants": [{"resource": "chart-group", "role": "view", "groups": ["*"]}]}"#,
                )
                .unwrap()
            },
            allowed_cidrs: Default::default(),
            cidrs_updated: false,
            version: 1,
            revision: 1,
            created_at: at,
            created_by: "cli".into(),
            updated_at: at,
            updated_by: "cli".into(),
            expires_at,
            issued_until: expires_at,
            kid: None,
            last_used_at: None,
            last_used_from: None,
        }
    }

    #[test]
    fn tokens_are_counted_by_what_an_alert_needs() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .to_utc();
        let days = |n: i64| Some(now + Duration::days(n));
        let records = [
            record(true, days(90)),
            record(true, days(-1)), // an expired super-admin is not live
            record(false, None),    // never expires: active, never expiring
            record(false, days(3)), // expiring
            record(false, Some(now + Duration::days(EXPIRING_DAYS))), // the window's edge
            record(false, days(8)),
            record(false, Some(now)), // expired at this very second
        ];
        assert_eq!(
            Census::of(&records, now),
            Census {
                active: 5,
                expired: 2,
                expiring: 2,
                super_admins_live: 1
            }
        );
    }
}
