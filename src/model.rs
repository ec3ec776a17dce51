//! The domain records: what a token is (its record and last use), who did what to it (actors,
//! actions and the audit trail), and the token-state changes verifiers follow. Plain data,
//! shared by the stores, the lifecycle, the server and the command line, so that none of them
//! needs another's module to name a record.

use crate::cidr::CidrList;
use crate::permissions::Permissions;
use crate::state::StateEntry;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// A token's record: everything about it except the token string, which is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// Token id (`jti`), fixed for the token's life.
    pub id: Uuid,
    /// Unique among live tokens; fixed for the token's life.
    pub name: String,
    /// Free text, at most 350 characters.
    pub description: String,
    /// The current permissions (what verifiers following the state feed apply).
    pub permissions: Permissions,
    /// The networks the token may be used from now (empty: anywhere).
    #[serde(default, skip_serializing_if = "CidrList::is_empty")]
    pub allowed_cidrs: CidrList,
    /// Whether an update changed the networks since the current version was signed, so that
    /// the state map, not the signed `cidr` claim, holds them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cidrs_updated: bool,
    /// The token version: 1 at creation, bumped by each regeneration.
    pub version: u32,
    /// The record revision: 1 at creation, bumped by every change. Optimistic concurrency
    /// names it.
    pub revision: u64,
    /// When the token was created.
    pub created_at: DateTime<Utc>,
    /// Who created it (an [`Actor`] string).
    pub created_by: String,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
    /// Who changed it last.
    pub updated_by: String,
    /// When the current version expires; `None` never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The latest expiry of any version ever issued (`None`: some version never expires).
    /// A state entry that restricts old versions is kept until then.
    pub issued_until: Option<DateTime<Utc>>,
    /// The id (`k4.pid`) of the key that signed the current version. `None` in records written
    /// before records kept it: such a token may have been signed by any key, and counts
    /// against every key that `tessera keys retire` is asked to retire (see
    /// `TokenStore::key_use`) until it is regenerated (which sets it) or expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// When a verifier of this service last accepted the token, where known. Kept apart from
    /// the record (see `TokenStore::record_usage`) and filled in on reads.
    #[serde(skip)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// The client address of that use.
    #[serde(skip)]
    pub last_used_from: Option<String>,
}

/// A token's last use, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// The token.
    #[serde(skip)]
    pub id: Uuid,
    /// When it was used.
    pub at: DateTime<Utc>,
    /// From which client address.
    pub from: Option<String>,
}

#[cfg(feature = "store")]
impl TokenRecord {
    /// Fill in the last use from a stored usage entry.
    pub(crate) fn with_usage(mut self, usage: Option<Usage>) -> Self {
        if let Some(usage) = usage {
            self.last_used_at = Some(usage.at);
            self.last_used_from = usage.from;
        }
        self
    }
}

/// A state-map entry as stored: the verifier's [`StateEntry`] plus when it may be dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRecord {
    /// Every version is rejected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Versions below this are rejected.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_ver: u32,
    /// Permissions that replace the signed ones (shared: many entries often carry equal sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perm: Option<Arc<Permissions>>,
    /// Networks that replace the signed ones (an empty list lifts the restriction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<CidrList>,
    /// After this time no version the entry restricts can pass an expiry check, so the entry
    /// may be dropped; `None` keeps it for ever (a version that never expires).
    pub drop_after: Option<DateTime<Utc>>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl StateRecord {
    /// The verifier's view of this entry.
    pub fn to_entry(&self) -> StateEntry {
        StateEntry {
            deleted: self.deleted,
            min_ver: self.min_ver,
            perm: self.perm.clone(),
            cidr: self.cidr.clone(),
        }
    }
}

/// One change to the state map, as the feed carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    /// The global revision this change was given.
    pub revision: u64,
    /// The token id.
    pub id: Uuid,
    /// The new entry, or `None` when the entry was dropped.
    pub entry: Option<StateRecord>,
    /// The change's [tag](FeedPosition::tag); 0 for changes written before tags existed.
    #[serde(default)]
    pub tag: u64,
}

impl StateChange {
    /// Where a follower stands once it has applied this change.
    pub fn position(&self) -> FeedPosition {
        FeedPosition {
            revision: self.revision,
            tag: self.tag,
        }
    }
}

/// Where a follower stands in a store's feed: the last revision it applied, and the tag of the
/// change that made it.
///
/// Every change gets a random tag when it is written. A revision number alone does not name a
/// change: after a failover that lost the last writes, or a restore from a backup, the store
/// gives the same numbers again to other changes, and a follower that had seen the lost ones
/// would take itself to be up to date. The tag tells the two histories apart, so the store
/// answers [`FeedPage::Reload`] instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FeedPosition {
    /// The last revision applied (0: none).
    pub revision: u64,
    /// The tag of the change at `revision`; 0 when that change has none (revision 0, or a
    /// change written before tags existed).
    pub tag: u64,
}

impl FeedPosition {
    /// A fresh random tag for a new change: 52 bits, never 0, so that it survives any JSON
    /// reader and a Lua script can add a small index to it exactly.
    pub fn new_tag() -> u64 {
        (Uuid::new_v4().as_u128() as u64 >> 12).max(1)
    }
}

/// The whole state map as of a revision (see the snapshot rule of `TokenStore`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateSnapshot {
    /// Every change up to this revision is included; later ones may be, in part.
    pub revision: u64,
    /// The tag of the change at `revision` (see [`FeedPosition`]).
    pub tag: u64,
    /// Every entry.
    pub entries: Vec<(Uuid, StateRecord)>,
}

impl StateSnapshot {
    /// Where a follower stands once it has loaded this snapshot.
    pub fn position(&self) -> FeedPosition {
        FeedPosition {
            revision: self.revision,
            tag: self.tag,
        }
    }
}

/// What a follower gets when it asks for changes after a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedPage {
    /// The changes after the asked revision, in order and without gaps (possibly none).
    Changes(Vec<StateChange>),
    /// The feed no longer holds the changes after the asked position (they were trimmed, the
    /// store was reset, or its history forked, see [`FeedPosition`]): reload a snapshot.
    Reload,
}

/// Who did something: `token:<id>` for a token holder, `local:<user>` for an operator on the
/// machine that holds the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(String);

impl Actor {
    /// The holder of a token.
    pub fn token(id: Uuid) -> Self {
        Self(format!("token:{id}"))
    }

    /// Whoever sent a leak report: anyone may, so nobody in particular.
    pub fn leak_report() -> Self {
        Self("leak-report".to_owned())
    }

    /// A local operator, by operating-system user name.
    pub fn local(user: &str) -> Self {
        Self(format!("local:{user}"))
    }

    /// The local operator running this process: `$USER`, else `$LOGNAME`, else the name of
    /// the process's user id in `/etc/passwd`, else `uid-<n>`.
    pub fn current_user() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(user_of_process)
            .unwrap_or_default();
        let user: String = user
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
            .take(64)
            .collect();
        Self::local(if user.is_empty() { "unknown" } else { &user })
    }

    /// The actor as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The user name of this process's user id, from `/etc/passwd` (`uid-<n>` when not listed).
fn user_of_process() -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    });
    Some(name.unwrap_or_else(|| format!("uid-{uid}")))
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A management action, as the audit trail names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A token was created.
    Create,
    /// A token's description or permissions changed.
    Update,
    /// A token was regenerated.
    Regenerate,
    /// A token was deleted.
    Delete,
    /// A token was revoked by its holder (RFC 7009).
    Revoked,
    /// A token was revoked because a leak report held it.
    Leaked,
}

impl Action {
    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Regenerate => "regenerate",
            Action::Delete => "delete",
            Action::Revoked => "revoked",
            Action::Leaked => "leaked",
        }
    }
}

/// One audit-trail entry, as appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Action,
    /// The token acted on, when known.
    pub target: Option<Uuid>,
    /// The token's name, when known.
    pub target_name: Option<String>,
    /// `ok`, or the error code of the refusal.
    pub outcome: String,
    /// The client address, when the action came over the network.
    pub from: Option<String>,
    /// More about the action, e.g. where a leak report says the token was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// An audit-trail entry with its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the trail, from 1; a page after `seq` starts at `seq + 1`.
    pub seq: u64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_entries_written_before_networks_existed_still_load() {
        let record = r#"{"id":"01234567-89ab-cdef-0123-456789abcdef","name":"old","description":"",
            "permissions":{"super_admin":true},"version":1,"revision":1,
            "created_at":"2026-11-28T01:02:03Z","created_by":"local:x",
            "updated_at":"2026-11-28T01:02:03Z","updated_by":"local:x",
            "expires_at":null,"issued_until":null}"#;
        let record: TokenRecord = serde_json::from_str(record).unwrap();
        assert!(record.allowed_cidrs.is_empty() && !record.cidrs_updated);
        let json = serde_json::to_string(&record).unwrap();
        assert!(
            !json.contains("cidr"),
            "an unbound record is written as before: {json}"
        );
        let entry: StateRecord =
            serde_json::from_str(r#"{"min_ver":2,"drop_after":null}"#).unwrap();
        assert_eq!(entry.cidr, None);
        assert!(!serde_json::to_string(&entry).unwrap().contains("cidr"));
    }
}
