//! The outbox: one event per token change, written by the store in the same atomic write as the
//! change itself, so no crash between the two can lose it, and delivered from there to the
//! configured webhooks, at least once (`crate::delivery`).
//!
//! An event's body is what a receiver gets, as the Standard Webhooks specification shapes it:
//! `{"type": "token.deleted", "timestamp": "…", "data": {"actor": "…", "record": {…}}}`. The
//! record is the token's record as the store keeps it (after the change; before it, for a
//! deletion), which holds no token string.

use crate::model::{Action, AuditEntry, TokenRecord};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How long an event is tried before it is given up, counted from the change.
pub const DELIVERY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// How long a store keeps an event after the change: the delivery window and an hour, so that
/// a delivery's outcome can still be looked at after its last attempt.
pub const RETENTION: chrono::Duration = chrono::Duration::hours(25);

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Some endpoint has not taken it yet, and the window is not over.
    Pending,
    /// Every endpoint answered 2xx.
    Delivered,
    /// The window ended first.
    Failed,
}

/// One event, with its delivery so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// The `webhook-id`: the same on every attempt, so receivers deduplicate by it.
    pub id: String,
    /// The audit-trail position of the change (0 for a notice about an expiry, which no
    /// change made): events of changes are in this order.
    #[serde(default)]
    pub seq: u64,
    /// `token.created`, `token.updated`, … (the body's `type`).
    pub kind: String,
    /// When the change was made.
    pub created_at: DateTime<Utc>,
    /// Where its delivery stands.
    pub delivery: Delivery,
    /// Attempts made so far (each tries every endpoint not yet reached).
    #[serde(default)]
    pub attempts: u32,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// What the last attempt got, per endpoint not yet reached: `"503"`, `"timed out"`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due (pending events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The endpoints (URLs without credentials) that took it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered_to: Vec<String>,
    /// The body sent.
    pub body: serde_json::Value,
}

/// The event a write will add, before the store has the record's JSON and the audit position:
/// the store writes `prefix`, the record's JSON, `suffix`, the position and `}`, which makes an
/// [`OutboxEvent`]'s JSON.
#[derive(Debug, Clone)]
pub struct EventFrame {
    /// The event's id.
    pub id: String,
    /// When it is first due (the change's time), in Unix milliseconds.
    pub due_ms: i64,
    /// The JSON up to the record.
    pub prefix: String,
    /// The JSON after it, up to the position.
    pub suffix: &'static str,
}

/// The event type of a change the audit trail names.
pub fn kind(action: Action) -> &'static str {
    match action {
        Action::Create => "token.created",
        Action::Update => "token.updated",
        Action::Regenerate => "token.regenerated",
        Action::Delete => "token.deleted",
        Action::Revoked => "token.revoked",
        Action::Leaked => "token.leaked",
    }
}

/// The actor of notices no one made: the expiry of a token.
pub const NOTICE_ACTOR: &str = "tessera";

/// How long after a token expired its `token.expired` notice may still be sent (a server
/// down at the moment sends it when it is back, within this time).
pub const EXPIRED_NOTICE_WINDOW: chrono::Duration = chrono::Duration::days(1);

/// A notice about a token's expiry: `token.expiring` when `within` (its label, `7d`) is given,
/// else `token.expired`.
pub fn notice(record: &TokenRecord, at: DateTime<Utc>, within: Option<&str>) -> OutboxEvent {
    let kind = match within {
        Some(_) => "token.expiring",
        None => "token.expired",
    };
    let mut data = serde_json::json!({
        "actor": NOTICE_ACTOR,
        "record": record,
    });
    if let Some(within) = within {
        data["within"] = within.into();
    }
    OutboxEvent {
        id: new_id(),
        seq: 0,
        kind: kind.to_owned(),
        created_at: at,
        delivery: Delivery::Pending,
        attempts: 0,
        last_attempt_at: None,
        last_error: None,
        next_attempt_at: Some(at),
        delivered_to: Vec::new(),
        body: serde_json::json!({
            "type": kind,
            "timestamp": crate::claims::format_time(&at),
            "data": data,
        }),
    }
}

/// A fresh `webhook-id`.
pub fn new_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

impl EventFrame {
    /// The event for the change `audit` records.
    pub fn for_change(audit: &AuditEntry) -> Self {
        let id = new_id();
        let kind = kind(audit.action);
        let text = |s: &str| serde_json::Value::from(s).to_string();
        let at = text(
            &audit
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        );
        // An `OutboxEvent` up to its body (the last member), then the body up to the record
        // (the last member of its `data`).
        let prefix = format!(
            "{{\"id\":{},\"kind\":{},\"created_at\":{at},\"delivery\":\"pending\",\
             \"attempts\":0,\"next_attempt_at\":{at},\"body\":{{\"type\":{},\"timestamp\":{},\
             \"data\":{{\"actor\":{},\"record\":",
            text(&id),
            text(kind),
            text(kind),
            text(&crate::claims::format_time(&audit.at)),
            text(audit.actor.as_str()),
        );
        Self {
            id,
            due_ms: audit.at.timestamp_millis(),
            prefix,
            suffix: "}},\"seq\":",
        }
    }

    /// The event's JSON, with `record` (a record's JSON) and `seq` (the audit position).
    pub fn around(&self, record: &str, seq: u64) -> String {
        format!("{}{record}{}{seq}}}", self.prefix, self.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Actor;

    #[test]
    fn a_frame_around_a_record_is_the_event_a_receiver_gets() {
        let at = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let audit = AuditEntry {
            at,
            actor: Actor::local("root\"\\"),
            action: Action::Regenerate,
            target: None,
            target_name: None,
            outcome: "ok".into(),
            from: None,
            note: None,
        };
        let frame = EventFrame::for_change(&audit);
        let event: OutboxEvent =
            serde_json::from_str(&frame.around(r#"{"name":"ci","version":2}"#, 7)).unwrap();
        assert_eq!((event.id.as_str(), event.seq), (frame.id.as_str(), 7));
        assert!(event.id.starts_with("msg_") && event.id.len() == 36);
        assert_eq!(event.kind, "token.regenerated");
        assert_eq!(event.delivery, Delivery::Pending);
        assert_eq!(event.next_attempt_at, Some(at));
        assert_eq!(frame.due_ms, at.timestamp_millis());
        assert_eq!(
            event.body,
            serde_json::json!({
                "type": "token.regenerated",
                "timestamp": "2026-12-04T10:00:00Z",
                "data": {"actor": "local:root\"\\", "record": {"name": "ci", "version": 2}},
            })
        );
        assert_ne!(EventFrame::for_change(&audit).id, frame.id);
    }
}
