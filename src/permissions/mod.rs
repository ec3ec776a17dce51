//! The permission model: what a token may do.
//!
//! A token carries either super-admin or a list of grants. Each grant names a resource kind,
//! a role on that kind's ladder (a higher role includes every lower one) and the scope it
//! applies to, as patterns. The same JSON shape is used inside the signed `perm` claim and in
//! the HTTP API, so this module owns that shape, its validation and the authorization
//! decision ([`Permissions::allows`]) in one place: a verifier and an issuer can never disagree
//! about what a permission set means.
//!
//! Deserialization validates, so a [`Permissions`] read from JSON is always valid; values built
//! in code are checked with [`Permissions::validate`], and serialization refuses invalid values
//! so that a token can never carry permissions that a verifier would reject.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::ser::{self, SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use smol_str::SmolStr;

/// The most grants one permission set may hold.
pub const MAX_GRANTS: usize = 64;
/// The most patterns one scope list (for example `apps`) may hold.
pub const MAX_PATTERNS: usize = 64;
/// The longest pattern, in bytes of its written form (253 is the longest Kubernetes name).
pub const MAX_PATTERN_LEN: usize = 253;

mod decision;
mod error;
mod grant;
mod pattern;
mod resource;
#[cfg(feature = "server")]
mod schema;
#[cfg(test)]
mod tests;
mod wire;

pub use decision::{question_keys, question_scope, Access, QUESTION_SCOPE_KEYS};
pub(crate) use error::shorten;
pub use error::PermissionError;
pub(crate) use grant::{check_grant_count, check_list_len};
pub use grant::{
    AppGrant, ChartGroupGrant, Grant, KubernetesGrant, Patterns, Permissions, TesseraGrant,
};
pub use pattern::Pattern;
pub use resource::{ChartGroupRole, DevtronRole, HelmRole, KubernetesRole, Resource, TesseraRole};
#[cfg(feature = "server")]
pub use schema::PermissionQuestion;
#[cfg(feature = "server")]
pub(crate) use schema::{all_role_names, constant};
