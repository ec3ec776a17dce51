//! Why a permission set, a role or a question is refused.

use super::*;

/// Why a permission set, pattern, role or access question was rejected.
///
/// The messages are written for the person who wrote the JSON; `serde_json` includes them in
/// its own error.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PermissionError {
    /// A resource name that is not one of the four kinds.
    #[error("unknown resource {resource:?}; expected one of {}", Resource::NAMES.join(", "))]
    UnknownResource {
        /// The name given (shortened if very long).
        resource: String,
    },
    /// A role name that is not on the resource's ladder.
    #[error(
        "unknown role {role:?} for {resource}: expected one of {}",
        .resource.role_names().join(", ")
    )]
    UnknownRole {
        /// The resource whose ladder was consulted.
        resource: Resource,
        /// The name given (shortened if very long).
        role: String,
    },
    /// A grant without `resource`.
    #[error("grant is missing \"resource\"")]
    MissingResource,
    /// A grant without `role` or without one of its scope fields.
    #[error("{resource} grant is missing \"{field}\"")]
    MissingField {
        /// The grant's resource.
        resource: Resource,
        /// The missing field.
        field: &'static str,
    },
    /// A grant with a scope field of another resource kind.
    #[error(
        "field \"{field}\" does not belong to a {resource} grant (its fields are resource, role, {})",
        .resource.scope_fields().join(", ")
    )]
    ForeignField {
        /// The grant's resource.
        resource: Resource,
        /// The field that does not belong.
        field: &'static str,
    },
    /// A scope list with no patterns: it would match nothing.
    #[error("\"{field}\" must list at least one pattern")]
    EmptyList {
        /// The empty list.
        field: &'static str,
    },
    /// A scope list longer than [`MAX_PATTERNS`].
    #[error("too many patterns in \"{field}\": {count} (at most {max})")]
    TooManyPatterns {
        /// The list.
        field: &'static str,
        /// How many patterns it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An empty `grants` list: a token that may do nothing is useless.
    #[error("\"grants\" must list at least one grant")]
    NoGrants,
    /// More than [`MAX_GRANTS`] grants.
    #[error("too many grants: {count} (at most {max})")]
    TooManyGrants {
        /// How many grants were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A malformed pattern.
    #[error("invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A pattern longer than [`MAX_PATTERN_LEN`] bytes.
    #[error("pattern too long: {len} bytes (at most {max})")]
    PatternTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `"super_admin": false`, which would be a second way to say "no permissions".
    #[error(
        "\"super_admin\" may only be true; use \"grants\" instead to limit what a token may do"
    )]
    SuperAdminFalse,
    /// Both `super_admin` and `grants`: ambiguous.
    #[error("give either \"super_admin\": true or \"grants\", not both")]
    SuperAdminWithGrants,
    /// Neither `super_admin` nor `grants`.
    #[error("no permissions given: expected \"super_admin\": true or a \"grants\" list")]
    NoPermissions,
    /// An access question without one of its scope values.
    #[error("{resource} access is missing \"{field}\"")]
    MissingScope {
        /// The resource asked about.
        resource: Resource,
        /// The missing scope field.
        field: &'static str,
    },
    /// An error in one grant of a list, with its position (counted from 0).
    #[error("grants[{index}]: {error}")]
    InGrant {
        /// The grant's position in `grants`.
        index: usize,
        /// What is wrong with it.
        error: Box<PermissionError>,
    },
}

impl PermissionError {
    pub(super) fn in_grant(self, index: usize) -> Self {
        PermissionError::InGrant {
            index,
            error: Box::new(self),
        }
    }

    pub(super) fn unknown_role(resource: Resource, role: &str) -> Self {
        PermissionError::UnknownRole {
            resource,
            role: shorten(role),
        }
    }
}

/// Input echoed into an error message, cut short so a hostile value cannot bloat logs.
pub(crate) fn shorten(text: &str) -> String {
    const LIMIT: usize = 64;
    if text.len() <= LIMIT {
        return text.to_owned();
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
