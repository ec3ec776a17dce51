//! Token records and store writes made by hand, for the tests and benches that drive a store
//! below the lifecycle: a super-admin record named as asked, its creation, a change, a
//! deletion, and a fresh key prefix so that runs on one Redis never meet.

use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use tessera::model::{Action, Actor, AuditEntry, StateRecord, TokenRecord};
use tessera::store::Write;
use tessera::Permissions;
use uuid::Uuid;

pub fn super_admin() -> Permissions {
    serde_json::from_str(r#"{"super_admin": true}"#).unwrap()
}

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

pub fn record(name: &str) -> TokenRecord {
    let at = now();
    TokenRecord {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        description: format!("test token {name}"),
        permissions: super_admin(),
        allowed_cidrs: Default::default(),
        cidrs_updated: false,
        version: 1,
        revision: 1,
        created_at: at,
        created_by: "local:test".into(),
        updated_at: at,
        updated_by: "local:test".into(),
        expires_at: Some(at + ChronoDuration::days(30)),
        issued_until: Some(at + ChronoDuration::days(30)),
        last_used_at: None,
        kid: None,
        last_used_from: None,
    }
}

pub fn audit(action: Action, record: &TokenRecord) -> AuditEntry {
    AuditEntry {
        at: now(),
        actor: Actor::local("test"),
        action,
        target: Some(record.id),
        target_name: Some(record.name.clone()),
        outcome: "ok".into(),
        from: None,
        note: None,
    }
}

pub fn create(record: &TokenRecord) -> Write {
    Write::Create {
        record: record.clone(),
        audit: audit(Action::Create, record),
    }
}

/// `record` changed once more, with a state entry (or its removal).
pub fn replace(record: &TokenRecord, state: Option<Option<StateRecord>>) -> (Write, TokenRecord) {
    let mut next = record.clone();
    next.revision += 1;
    next.description = format!("revision {}", next.revision);
    (
        Write::Replace {
            expect: record.revision,
            record: next.clone(),
            state,
            audit: audit(Action::Update, record),
            keep: None,
        },
        next,
    )
}

pub fn delete(record: &TokenRecord) -> Write {
    Write::Delete {
        id: record.id,
        expect: record.revision,
        state: deleted_entry(Some(now() + ChronoDuration::days(30))),
        audit: audit(Action::Delete, record),
        keep: None,
    }
}

pub fn deleted_entry(drop_after: Option<DateTime<Utc>>) -> StateRecord {
    StateRecord {
        deleted: true,
        min_ver: 0,
        perm: None,
        cidr: None,
        drop_after,
    }
}

pub fn min_ver_entry(min_ver: u32, drop_after: Option<DateTime<Utc>>) -> StateRecord {
    StateRecord {
        deleted: false,
        min_ver,
        perm: None,
        cidr: None,
        drop_after,
    }
}

/// A unique key prefix, so a test's keys are its own even on a shared server.
pub fn prefix() -> String {
    format!("t-{}", &Uuid::new_v4().simple().to_string()[..12])
}
