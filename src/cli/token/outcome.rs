//! How a token command ends: done with a token to show once, refused by the rules, or failed.

use super::*;

/// Why a token command stopped short of its work.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The rules refused the request (exit 1): a stable code and the message that explains
    /// it, as the HTTP API words them.
    Refused {
        /// `invalid_request`, `name_taken`, `not_found`, `conflict`, `token_too_large`,
        /// `forbidden`.
        code: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A usage or configuration error (exit 2): the store, the keys or the server.
    Failed(Failure),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Stop::Failed(failure)
    }
}

impl From<LifecycleError> for Stop {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::Store(e) => Stop::Failed(
                Failure::new(crate::redact::url(&e.to_string()))
                    .hint("check that the store is reachable (--store / TESSERA_STORE)"),
            ),
            e @ LifecycleError::NoSigningKey => {
                Stop::Failed(Failure::new(&e).hint("create one with `tessera keys generate`"))
            }
            e => Stop::Refused {
                code: e.code().to_owned(),
                message: e.to_string(),
            },
        }
    }
}

/// A token string, shown once, and its record: from the store or from the server.
pub(crate) struct Issued {
    /// The token; printed once, then dropped (and zeroized).
    pub(crate) token: Zeroizing<String>,
    /// The record.
    pub(crate) record: TokenRecord,
}

impl From<Minted> for Issued {
    fn from(minted: Minted) -> Self {
        Issued {
            token: Zeroizing::new(minted.token.expose().to_owned()),
            record: minted.record,
        }
    }
}
