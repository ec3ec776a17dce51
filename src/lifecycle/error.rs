//! Why a lifecycle operation failed, with a stable code for each.

use super::*;

/// Why a lifecycle operation failed. Each has a stable [`code`](LifecycleError::code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The request breaks a rule; the message says which and how to fix it.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A live token already has the name.
    #[error("a token named {0:?} already exists; names are unique among live tokens")]
    NameTaken(String),
    /// No token has the id.
    #[error("no token has id {0}")]
    NotFound(Uuid),
    /// The record is not at the revision the caller named.
    #[error("token {id} is at revision {actual}, not {expected}: it changed since you read it")]
    Conflict {
        /// The token.
        id: Uuid,
        /// The revision named.
        expected: u64,
        /// The revision it has.
        actual: u64,
    },
    /// The change would leave no live super-admin, and nobody could manage tokens again.
    #[error(
        "token {0} is the last live super-admin: make another super-admin token first, or \
         regenerate this one instead"
    )]
    LastSuperAdmin(Uuid),
    /// The token would not fit a gateway's header.
    #[error("{0}")]
    TooLarge(String),
    /// Nothing can sign: no secret key is loaded.
    #[error("no secret key is loaded, so no token can be signed; run `tessera keys generate`")]
    NoSigningKey,
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl LifecycleError {
    /// A stable code for clients and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            LifecycleError::Invalid { .. } => "invalid_request",
            LifecycleError::NameTaken(_) => "name_taken",
            LifecycleError::NotFound(_) => "not_found",
            LifecycleError::Conflict { .. } => "conflict",
            LifecycleError::LastSuperAdmin(_) => "last_super_admin",
            LifecycleError::TooLarge(_) => "token_too_large",
            LifecycleError::NoSigningKey => "no_signing_key",
            LifecycleError::Store(e) => e.code(),
        }
    }
}

impl LifecycleError {
    /// Whether this is the server's fault rather than the store being out of reach: corrupt
    /// data or a wrong configuration (a 500, where an unreachable store is a 503).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            LifecycleError::Store(StoreError::Corrupt(_) | StoreError::Config(_))
        )
    }
}

impl From<StoreError> for LifecycleError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameTaken(name) => LifecycleError::NameTaken(name),
            StoreError::NotFound(id) => LifecycleError::NotFound(id),
            StoreError::LastSuperAdmin(id) => LifecycleError::LastSuperAdmin(id),
            StoreError::Conflict {
                id,
                expected,
                actual,
            } => LifecycleError::Conflict {
                id,
                expected,
                actual,
            },
            e => LifecycleError::Store(e),
        }
    }
}

impl From<IssueError> for LifecycleError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::NoSigningKey => LifecycleError::NoSigningKey,
            IssueError::Permissions(e) => invalid("permissions", e.to_string()),
            e @ IssueError::TooLarge { .. } => LifecycleError::TooLarge(e.to_string()),
            e @ IssueError::ExpiryNotInFuture(_) => invalid("expires", e.to_string()),
            e => LifecycleError::Invalid {
                field: "token",
                message: e.to_string(),
            },
        }
    }
}
