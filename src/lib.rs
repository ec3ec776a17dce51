//! Tessera: API tokens that any service verifies offline, and that an administrator can still
//! update, regenerate and delete after they are handed out.
//!
//! Tokens are PASETO `v4.public` (Ed25519) strings carrying the token's id, version, name,
//! times and permissions. A [`Verifier`] needs only the public keys; a [`TokenState`] (the
//! small map of deleted, regenerated and re-permissioned tokens) carries later changes to it
//! without a per-request lookup.
//!
//! # Map
//! | module | owns |
//! |---|---|
//! | [`keys`] | Ed25519 keys as PASERK, key ids (`k4.pid`), key files, the key ring |
//! | [`permissions`] | the permission model, its JSON, validation, the authorization decision |
//! | [`claims`] | the token payload and its strict parsing |
//! | [`cidr`] | the networks a token may be used from: parsing, normalizing, matching |
//! | [`base64url`] | strict base64url, shared by the wire format and the key codecs |
//! | [`paseto`] | the v4.public wire format: header, base64url, footer bounds, PAE, signature |
//! | [`ed25519`] | signature checks against per-key tables, with `verify_strict`'s verdict |
//! | [`issuer`] | signing tokens |
//! | [`verifier`] | the verification hot path, reason codes, the verified-token cache |
//! | [`state`] | the token-state trait and its in-memory map |
//! | `store` | token stores (feature `store`): the [`TokenStore`](store::TokenStore) contract, the embedded redb store, the Redis store (feature `redis`) |
//! | `lifecycle` | the token lifecycle and its rules on any store (feature `store`) |
//! | `startup` | the composition root: configuration → keys, store, issuer, mirror, the server's state (feature `server`) |
//! | `server` | the HTTP service (feature `server`): router, extractors, errors |
//! | `http_state_source` | an issuer's `/v1/state` as the state mirror's source, for edges (feature `server`) |
//! | `outbox` | events of token changes, written with each change, kept for delivery (feature `store`) |
//! | `mirror` | the state mirror: a verifier's copy of a store's state map, following its feed (feature `store`) |
//! | `client` | the HTTP client of the `/v1` API, for the remote CLI and verify-only edges (feature `client`) |
//! | [`redact`] | credentials out of messages |
//! | [`clock`] | injected time |
//! | `delivery` | webhook delivery of the outbox's events, with retries (feature `server`) |
//! | [`webhook`] | webhook signing secrets and signatures (Standard Webhooks) |
//!
//! Trust is a type: a `&str` becomes a [`VerifiedToken`] only through [`Verifier::verify`], and
//! only a `VerifiedToken` answers [`VerifiedToken::allows`].
//!
//! # Quickstart
//! ```
//! use std::sync::Arc;
//! use tessera::{keys, Access, DevtronRole, Issuer, KeyRing, MemoryState, Permissions,
//!               StateEntry, TokenSpec, Verifier};
//!
//! let dir = tempfile::tempdir()?;
//! keys::generate_into(dir.path(), chrono::Utc::now())?;
//! let ring = Arc::new(KeyRing::load_dir(dir.path())?);
//!
//! let perms: Permissions = serde_json::from_str(r#"{"grants": [{"resource": "devtron-app",
//!     "role": "trigger", "project": "payments", "environments": ["prod"], "apps": ["*"]}]}"#)?;
//! let id = uuid::Uuid::new_v4();
//! let token = Issuer::new(ring.clone())?.issue(&TokenSpec {
//!     id, version: 1, name: "ci-bot",
//!     expires_at: Some(chrono::Utc::now() + chrono::Duration::days(30)),
//!     permissions: &perms,
//!     allowed_cidrs: &Default::default(),
//! })?;
//!
//! let state = Arc::new(MemoryState::new());
//! let verifier = Verifier::new(ring).with_state(state.clone());
//! let verified = verifier.verify(token.expose())?;
//! let deploy = Access::DevtronApp {
//!     role: DevtronRole::Trigger, project: "payments", environment: "prod", app: "api",
//! };
//! assert!(verified.allows(&deploy));
//!
//! // Deleting the token reaches the verifier through the state map.
//! state.apply(1, id, Some(StateEntry { deleted: true, ..Default::default() }))?;
//! assert_eq!(verifier.verify(token.expose()).unwrap_err().code(), "revoked");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is not checked
//! Without a token state ([`NoState`], the default), a deleted or regenerated token is
//! accepted until it expires, like any signed token. The audience is not checked: Tessera
//! tokens carry none.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod base64url;
mod cache;
pub mod cidr;
pub mod claims;
#[cfg(feature = "client")]
pub mod client;
pub mod clock;
#[cfg(feature = "server")]
pub mod delivery;
pub mod ed25519;
#[cfg(feature = "server")]
pub mod http_state_source;
pub mod issuer;
pub mod keys;
#[cfg(feature = "store")]
pub mod lifecycle;
#[cfg(feature = "store")]
pub mod mirror;
pub mod model;
#[cfg(feature = "store")]
pub mod outbox;
pub mod paseto;
pub mod permissions;
pub mod redact;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod startup;
pub mod state;
#[cfg(feature = "store")]
pub mod store;
#[cfg(test)]
mod testing;
pub mod verifier;
pub mod webhook;

#[cfg(feature = "cli")]
pub mod cli;

pub use cidr::{Cidr, CidrError, CidrList};
pub use claims::Claims;
pub use clock::{Clock, ManualClock, SystemClock};
pub use issuer::{IssueError, IssuedToken, Issuer, TokenSpec};
pub use keys::{KeyError, KeyId, KeyRing, PublicKey, SecretKey};
pub use permissions::{
    Access, ChartGroupRole, DevtronRole, HelmRole, KubernetesRole, PermissionError, Permissions,
    TesseraRole,
};
pub use state::{MemoryState, NoState, StateEntry, StateError, TokenState};
pub use verifier::{Lookup, Reason, Unchecked, VerifiedToken, Verifier, VerifyError};
