//! What callers of the lifecycle ask for and get back: expiries, the lifetime policy, who
//! asks, new tokens and updates, minted tokens, statuses and the record as clients see it.

use super::*;

/// When a new token (or a regenerated one) expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// After this many days (7, 30, 60 or 90).
    Days(u16),
    /// At a chosen time, which must be in the future.
    At(DateTime<Utc>),
    /// Never.
    Never,
}

/// The preset lifetimes, in days.
pub const EXPIRY_DAYS: [u16; 4] = [7, 30, 60, 90];

impl FromStr for Expiry {
    type Err = LifecycleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "never" {
            return Ok(Expiry::Never);
        }
        if let Some(days) = s.strip_suffix('d') {
            if let Some(&days) = EXPIRY_DAYS.iter().find(|d| d.to_string() == days) {
                return Ok(Expiry::Days(days));
            }
        }
        match DateTime::parse_from_rfc3339(s) {
            Ok(at) => Ok(Expiry::At(at.with_timezone(&Utc))),
            Err(_) => Err(invalid(
                "expires",
                format!(
                    "{:?} is not an expiry: use 7d, 30d, 60d, 90d, never, or a future RFC 3339 \
                     time such as 2027-01-31T00:00:00Z",
                    crate::permissions::shorten(s)
                ),
            )),
        }
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expiry::Days(d) => write!(f, "{d}d"),
            Expiry::At(at) => f.write_str(&crate::claims::format_time(at)),
            Expiry::Never => f.write_str("never"),
        }
    }
}

/// Rules an operator configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The longest lifetime a token may be given; `None` allows `never`.
    pub max_lifetime: Option<Duration>,
    /// How long past the last possible expiry a state entry is kept. Must exceed every
    /// verifier's leeway (30 s by default), so no verifier drops a restriction while a token it
    /// restricts still passes its expiry check.
    pub retention_margin: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_lifetime: None,
            retention_margin: Duration::minutes(10),
        }
    }
}

/// Who asks, and from where: written to the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub actor: Actor,
    /// The client address, for network callers.
    pub from: Option<String>,
}

impl Caller {
    /// A local operator (the command line on the store's machine).
    pub fn local() -> Self {
        Self {
            actor: Actor::current_user(),
            from: None,
        }
    }
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The name: 3 to 50 of `a-z`, `0-9`, `-`, `_`, starting and ending with a letter or digit.
    pub name: String,
    /// At most 350 characters.
    pub description: String,
    /// When it expires.
    pub expires: Expiry,
    /// What it may do.
    pub permissions: Permissions,
    /// The networks it may be used from (empty: anywhere), signed into the token.
    pub allowed_cidrs: CidrList,
}

/// A change to a token's description and permissions; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TokenUpdate {
    /// The new description.
    pub description: Option<String>,
    /// The new permissions.
    pub permissions: Option<Permissions>,
    /// The new networks (an empty list: anywhere). Like permissions, they reach the unchanged
    /// token string through the state map.
    pub allowed_cidrs: Option<CidrList>,
}

/// A token string, shown once, and the record it belongs to.
#[derive(Debug)]
pub struct Minted {
    /// The token; hand it over and forget it.
    pub token: IssuedToken,
    /// The record as stored.
    pub record: TokenRecord,
}

/// A token's status at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not expired.
    Active,
    /// Past its expiry.
    Expired,
}

impl TokenRecord {
    /// The record's status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> Status {
        match self.expires_at {
            Some(at) if at <= now => Status::Expired,
            _ => Status::Active,
        }
    }

    /// The record as clients see it at `now` (the API's record, docs/http-api.md).
    pub fn view(&self, now: DateTime<Utc>) -> RecordView<'_> {
        RecordView {
            id: self.id,
            name: &self.name,
            description: &self.description,
            permissions: &self.permissions,
            allowed_cidrs: &self.allowed_cidrs,
            version: self.version,
            revision: self.revision,
            created_at: crate::claims::format_time(&self.created_at),
            created_by: &self.created_by,
            updated_at: crate::claims::format_time(&self.updated_at),
            updated_by: &self.updated_by,
            expires_at: self.expires_at.as_ref().map(crate::claims::format_time),
            kid: self.kid.as_deref(),
            status: self.status(now),
            last_used_at: self.last_used_at.as_ref().map(crate::claims::format_time),
            last_used_from: self.last_used_from.as_deref(),
        }
    }
}

/// A token record as clients see it: times as RFC 3339 with `Z`, and the status at the time
/// of asking. Also the `Record` schema of `/openapi.json` (doc comments on fields are its
/// descriptions).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(
    feature = "server",
    derive(utoipa::ToSchema),
    schema(
        as = Record,
        description = "A token record. The token string itself is never stored."
    )
)]
// For the schema (no other field); serializing ignores it.
#[serde(deny_unknown_fields)]
pub struct RecordView<'a> {
    /// Token id.
    pub id: Uuid,
    /// Name.
    #[cfg_attr(feature = "server", schema(value_type = super::TokenName))]
    pub name: &'a str,
    /// Description.
    pub description: &'a str,
    /// Current permissions.
    pub permissions: &'a Permissions,
    /// The networks the token may be used from, normalized; empty: anywhere.
    #[cfg_attr(feature = "server", schema(value_type = AllowedCidrs))]
    pub allowed_cidrs: &'a CidrList,
    /// The token version, bumped by regenerate.
    #[cfg_attr(feature = "server", schema(format = "uint32", minimum = 1))]
    pub version: u32,
    /// The record revision, bumped by every change; `If-Match` takes it.
    #[cfg_attr(feature = "server", schema(format = "uint64", minimum = 1))]
    pub revision: u64,
    /// Creation time.
    #[cfg_attr(feature = "server", schema(format = DateTime))]
    pub created_at: String,
    /// Who created it.
    pub created_by: &'a str,
    /// Last change.
    #[cfg_attr(feature = "server", schema(format = DateTime))]
    pub updated_at: String,
    /// Who changed it last.
    pub updated_by: &'a str,
    /// Expiry of the current version; `null` for never.
    #[cfg_attr(feature = "server", schema(format = DateTime, required = true))]
    pub expires_at: Option<String>,
    /// The id (`k4.pid`) of the key that signed the current version; `null` for a token
    /// made before records kept it.
    #[cfg_attr(feature = "server", schema(pattern = r"^k4\.pid\.", required = true))]
    pub kid: Option<&'a str>,
    /// `active` or `expired`.
    pub status: Status,
    /// When a verifier of this service last accepted the token (`null`: not since records
    /// began).
    #[cfg_attr(feature = "server", schema(format = DateTime, required = true))]
    pub last_used_at: Option<String>,
    /// The client address of that use.
    #[cfg_attr(feature = "server", schema(required = true))]
    pub last_used_from: Option<&'a str>,
}
