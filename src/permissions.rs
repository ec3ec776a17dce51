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
    fn in_grant(self, index: usize) -> Self {
        PermissionError::InGrant {
            index,
            error: Box::new(self),
        }
    }

    fn unknown_role(resource: Resource, role: &str) -> Self {
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

/// The four kinds of resource a grant can apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Devtron applications (`devtron-app`).
    DevtronApp,
    /// Helm applications (`helm-app`).
    HelmApp,
    /// Kubernetes objects (`kubernetes`).
    Kubernetes,
    /// Chart groups (`chart-group`).
    ChartGroup,
}

impl Resource {
    /// Every resource kind.
    pub const ALL: [Resource; 4] = [
        Resource::DevtronApp,
        Resource::HelmApp,
        Resource::Kubernetes,
        Resource::ChartGroup,
    ];

    const NAMES: [&'static str; 4] = ["devtron-app", "helm-app", "kubernetes", "chart-group"];

    /// The JSON tag, e.g. `devtron-app`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::DevtronApp => "devtron-app",
            Resource::HelmApp => "helm-app",
            Resource::Kubernetes => "kubernetes",
            Resource::ChartGroup => "chart-group",
        }
    }

    /// The names of this kind's roles, lowest first.
    pub fn role_names(self) -> &'static [&'static str] {
        match self {
            Resource::DevtronApp => &DevtronRole::NAMES,
            Resource::HelmApp => &HelmRole::NAMES,
            Resource::Kubernetes => &KubernetesRole::NAMES,
            Resource::ChartGroup => &ChartGroupRole::NAMES,
        }
    }

    /// The scope fields of this kind's grants, in JSON order.
    pub fn scope_fields(self) -> &'static [&'static str] {
        match self {
            Resource::DevtronApp | Resource::HelmApp => &["project", "environments", "apps"],
            Resource::Kubernetes => &["cluster", "namespaces", "groups", "kinds", "names"],
            Resource::ChartGroup => &["groups"],
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resource {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Resource::ALL
            .into_iter()
            .find(|resource| resource.as_str() == s)
            .ok_or_else(|| PermissionError::UnknownResource {
                resource: shorten(s),
            })
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Defines a role ladder: variants in ascending order, so the derived `Ord` is the ladder.
macro_rules! role_ladder {
    (
        $(#[$doc:meta])*
        $name:ident for $resource:ident {
            $($(#[$variant_doc:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$variant_doc])* $variant,)+
        }

        impl $name {
            const NAMES: [&'static str; [$($text),+].len()] = [$($text),+];

            /// Every role, lowest first; each includes all the roles before it.
            pub const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            /// The role's name as written in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = PermissionError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|role| role.as_str() == s)
                    .ok_or_else(|| PermissionError::unknown_role(Resource::$resource, s))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

role_ladder! {
    /// A role on Devtron applications.
    DevtronRole for DevtronApp {
        /// See the application and its deployments.
        View = "view",
        /// Also trigger builds and deployments.
        Trigger = "trigger",
        /// Also change the application's configuration.
        Admin = "admin",
        /// Also manage who may access the application.
        Manager = "manager",
    }
}

role_ladder! {
    /// A role on Helm applications.
    HelmRole for HelmApp {
        /// See the release.
        View = "view",
        /// Also change and upgrade it.
        Edit = "edit",
        /// Also create and delete releases.
        Admin = "admin",
    }
}

role_ladder! {
    /// A role on Kubernetes objects.
    KubernetesRole for Kubernetes {
        /// Read objects.
        View = "view",
        /// Also change them.
        Edit = "edit",
        /// Also create and delete them.
        Admin = "admin",
    }
}

role_ladder! {
    /// A role on chart groups.
    ChartGroupRole for ChartGroup {
        /// See the group.
        View = "view",
        /// Also change its charts.
        Update = "update",
        /// Also create and delete groups.
        Admin = "admin",
    }
}

/// Which values of one scope field a grant covers: written `*`, `prefix*` or an exact value.
///
/// The text is a [`SmolStr`]: held inline up to 23 bytes, which covers most project, cluster,
/// namespace and app names, so a verifier reading a token's grants does not allocate per
/// pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// `*`: every value.
    Any,
    /// `prefix*`: every value starting with the (non-empty) prefix.
    Prefix(SmolStr),
    /// Exactly this value (byte for byte, so case-sensitive).
    Exact(SmolStr),
}

impl Pattern {
    /// Parses the written form. Rejects the empty string (only a Kubernetes `groups` list may
    /// hold it, and grant validation allows it there), a `*` anywhere but at the end, control
    /// characters, and patterns longer than [`MAX_PATTERN_LEN`] bytes.
    ///
    /// # Errors
    ///
    /// [`PermissionError::InvalidPattern`] or [`PermissionError::PatternTooLong`].
    pub fn parse(text: &str) -> Result<Pattern, PermissionError> {
        Self::parse_in(text, false)
    }

    /// [`Pattern::parse`], where `allow_empty` admits `""` (every pattern of every token a
    /// verifier reads goes through here).
    pub(crate) fn parse_in(text: &str, allow_empty: bool) -> Result<Pattern, PermissionError> {
        // Length first, so nothing below works on a huge string.
        if text.len() > MAX_PATTERN_LEN {
            return Err(PermissionError::PatternTooLong {
                len: text.len(),
                max: MAX_PATTERN_LEN,
            });
        }
        let pattern = match text.strip_suffix('*') {
            Some("") => Pattern::Any,
            Some(prefix) => Pattern::Prefix(SmolStr::new(prefix)),
            None => Pattern::Exact(SmolStr::new(text)),
        };
        pattern.check(allow_empty)?;
        Ok(pattern)
    }

    /// Whether `value` (a concrete value, not a pattern) is covered.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Pattern::Exact(exact) => value == exact,
        }
    }

    /// The rules of [`Pattern::parse`], for values that may have been built in code.
    /// `allow_empty` admits `Exact("")`, the Kubernetes core API group.
    fn check(&self, allow_empty: bool) -> Result<(), PermissionError> {
        // The written form is only built for an error message: this runs for every pattern of
        // every token a verifier sees.
        let written_len = match self {
            Pattern::Any => 1,
            Pattern::Prefix(prefix) => prefix.len() + 1,
            Pattern::Exact(exact) => exact.len(),
        };
        if written_len > MAX_PATTERN_LEN {
            return Err(PermissionError::PatternTooLong {
                len: written_len,
                max: MAX_PATTERN_LEN,
            });
        }
        let invalid = |reason| {
            Err(PermissionError::InvalidPattern {
                pattern: self.to_string(),
                reason,
            })
        };
        let text = match self {
            Pattern::Any => return Ok(()),
            Pattern::Exact(exact) if exact.is_empty() && allow_empty => return Ok(()),
            Pattern::Exact(exact) if exact.is_empty() => {
                return invalid(
                    "a pattern may not be empty (use \"*\" to match everything; \
                     only kubernetes \"groups\" may list \"\", the core API group)",
                )
            }
            // Written, this is `*`, which parses back as `Any`: there must be one spelling.
            Pattern::Prefix(prefix) if prefix.is_empty() => {
                return invalid("a prefix pattern needs a non-empty prefix (use Pattern::Any)")
            }
            Pattern::Prefix(text) | Pattern::Exact(text) => text,
        };
        // Almost every pattern is printable ASCII without `*`: one pass without branches
        // settles that, and only the rest is looked at closely.
        let bytes = text.as_bytes();
        if bytes.iter().fold(true, |plain, &b| {
            plain & (b' '..=b'~').contains(&b) & (b != b'*')
        }) {
            return Ok(());
        }
        let (mut star, mut control) = (None, false);
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'*' => star = star.or(Some(i)),
                // C0 controls and DEL; C1 controls (U+0080..U+009F) are 0xC2 0x80..=0x9F.
                0x00..=0x1f | 0x7f => control = true,
                0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => control = true,
                _ => {}
            }
        }
        if let Some(first) = star {
            if matches!(self, Pattern::Prefix(_)) || first + 1 < bytes.len() {
                return invalid("\"*\" may only end a pattern");
            }
            // Only `Exact("abc*")` gets here: written, it would read back as a prefix.
            return invalid("an exact pattern may not contain \"*\"");
        }
        // Keeps summaries and log lines to one line each.
        if control {
            return invalid("control characters are not allowed");
        }
        Ok(())
    }
}

/// The written form, as in JSON: `*`, `prefix*` or the exact value.
impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Any => f.write_str("*"),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
            Pattern::Exact(exact) => f.write_str(exact),
        }
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A scope list: inline up to two patterns, which covers most lists, so a grant read from a
/// token does not allocate per list.
pub type Patterns = SmallVec<[Pattern; 2]>;

/// A grant on Devtron or Helm applications: `role` on the `apps` in the `environments` of
/// `project`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppGrant<R> {
    /// The highest role granted.
    pub role: R,
    /// The project.
    pub project: Pattern,
    /// The environments (for Helm, `cluster__namespace`).
    pub environments: Patterns,
    /// The applications.
    pub apps: Patterns,
}

impl<R: Ord + Copy> AppGrant<R> {
    fn allows(&self, role: R, project: &str, environment: &str, app: &str) -> bool {
        self.role >= role
            && self.project.matches(project)
            && any_matches(&self.environments, environment)
            && any_matches(&self.apps, app)
    }
}

impl<R> AppGrant<R> {
    fn validate(&self) -> Result<(), PermissionError> {
        self.project.check(false)?;
        check_list("environments", &self.environments, false)?;
        check_list("apps", &self.apps, false)
    }
}

/// A grant on Kubernetes objects: `role` on objects of the `groups` and `kinds` with the
/// `names` in the `namespaces` of `cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KubernetesGrant {
    /// The highest role granted.
    pub role: KubernetesRole,
    /// The cluster.
    pub cluster: Pattern,
    /// The namespaces.
    pub namespaces: Patterns,
    /// The API groups; `Exact("")` is the core group.
    pub groups: Patterns,
    /// The kinds, e.g. `Deployment`.
    pub kinds: Patterns,
    /// The object names.
    pub names: Patterns,
}

/// A grant on chart groups.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChartGroupGrant {
    /// The highest role granted.
    pub role: ChartGroupRole,
    /// The chart groups.
    pub groups: Patterns,
}

/// One grant: a role on a scope of one resource kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Grant {
    /// On Devtron applications.
    DevtronApp(AppGrant<DevtronRole>),
    /// On Helm applications.
    HelmApp(AppGrant<HelmRole>),
    /// On Kubernetes objects.
    Kubernetes(KubernetesGrant),
    /// On chart groups.
    ChartGroup(ChartGroupGrant),
}

impl Grant {
    /// The resource kind this grant applies to.
    pub fn resource(&self) -> Resource {
        match self {
            Grant::DevtronApp(_) => Resource::DevtronApp,
            Grant::HelmApp(_) => Resource::HelmApp,
            Grant::Kubernetes(_) => Resource::Kubernetes,
            Grant::ChartGroup(_) => Resource::ChartGroup,
        }
    }

    /// Whether this grant alone answers yes: same kind, a role at least the one asked, and
    /// every scope value covered.
    pub fn allows(&self, access: &Access<'_>) -> bool {
        match (self, *access) {
            (
                Grant::DevtronApp(grant),
                Access::DevtronApp {
                    role,
                    project,
                    environment,
                    app,
                },
            ) => grant.allows(role, project, environment, app),
            (
                Grant::HelmApp(grant),
                Access::HelmApp {
                    role,
                    project,
                    environment,
                    app,
                },
            ) => grant.allows(role, project, environment, app),
            (
                Grant::Kubernetes(grant),
                Access::Kubernetes {
                    role,
                    cluster,
                    namespace,
                    group,
                    kind,
                    name,
                },
            ) => {
                grant.role >= role
                    && grant.cluster.matches(cluster)
                    && any_matches(&grant.namespaces, namespace)
                    && any_matches(&grant.groups, group)
                    && any_matches(&grant.kinds, kind)
                    && any_matches(&grant.names, name)
            }
            (Grant::ChartGroup(grant), Access::ChartGroup { role, group }) => {
                grant.role >= role && any_matches(&grant.groups, group)
            }
            _ => false,
        }
    }

    fn validate(&self) -> Result<(), PermissionError> {
        match self {
            Grant::DevtronApp(grant) => grant.validate(),
            Grant::HelmApp(grant) => grant.validate(),
            Grant::Kubernetes(grant) => {
                grant.cluster.check(false)?;
                check_list("namespaces", &grant.namespaces, false)?;
                check_list("groups", &grant.groups, true)?;
                check_list("kinds", &grant.kinds, false)?;
                check_list("names", &grant.names, false)
            }
            Grant::ChartGroup(grant) => check_list("groups", &grant.groups, false),
        }
    }
}

fn any_matches(patterns: &[Pattern], value: &str) -> bool {
    patterns.iter().any(|pattern| pattern.matches(value))
}

pub(crate) fn check_list_len(field: &'static str, count: usize) -> Result<(), PermissionError> {
    if count == 0 {
        Err(PermissionError::EmptyList { field })
    } else if count > MAX_PATTERNS {
        Err(PermissionError::TooManyPatterns {
            field,
            count,
            max: MAX_PATTERNS,
        })
    } else {
        Ok(())
    }
}

fn check_list(
    field: &'static str,
    patterns: &[Pattern],
    allow_empty: bool,
) -> Result<(), PermissionError> {
    check_list_len(field, patterns.len())?;
    patterns
        .iter()
        .try_for_each(|pattern| pattern.check(allow_empty))
}

pub(crate) fn check_grant_count(count: usize) -> Result<(), PermissionError> {
    if count == 0 {
        Err(PermissionError::NoGrants)
    } else if count > MAX_GRANTS {
        Err(PermissionError::TooManyGrants {
            count,
            max: MAX_GRANTS,
        })
    } else {
        Ok(())
    }
}

/// The one-line human form used by [`Permissions::summary`], e.g.
/// `devtron-app:trigger project=payments envs=prod,staging apps=*`.
impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource = self.resource();
        match self {
            Grant::DevtronApp(grant) => write_app(f, resource, grant),
            Grant::HelmApp(grant) => write_app(f, resource, grant),
            Grant::Kubernetes(grant) => write!(
                f,
                "{resource}:{} cluster={} namespaces={} groups={} kinds={} names={}",
                grant.role,
                grant.cluster,
                List(&grant.namespaces),
                List(&grant.groups),
                List(&grant.kinds),
                List(&grant.names),
            ),
            Grant::ChartGroup(grant) => {
                write!(
                    f,
                    "{resource}:{} groups={}",
                    grant.role,
                    List(&grant.groups)
                )
            }
        }
    }
}

fn write_app<R: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    resource: Resource,
    grant: &AppGrant<R>,
) -> fmt::Result {
    write!(
        f,
        "{resource}:{} project={} envs={} apps={}",
        grant.role,
        grant.project,
        List(&grant.environments),
        List(&grant.apps),
    )
}

/// Patterns joined by commas; the core group shows as `""` rather than vanishing.
struct List<'a>(&'a [Pattern]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pattern) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match pattern {
                Pattern::Exact(exact) if exact.is_empty() => f.write_str("\"\"")?,
                pattern => write!(f, "{pattern}")?,
            }
        }
        Ok(())
    }
}

/// Fields in a fixed order (resource, role, then the scope fields as in
/// [`Resource::scope_fields`]) so that signed bytes are deterministic.
impl Serialize for Grant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let resource = self.resource();
        match self {
            Grant::DevtronApp(grant) => serialize_app(serializer, resource, grant),
            Grant::HelmApp(grant) => serialize_app(serializer, resource, grant),
            Grant::Kubernetes(grant) => {
                let mut map = serializer.serialize_map(Some(7))?;
                map.serialize_entry("resource", &resource)?;
                map.serialize_entry("role", &grant.role)?;
                map.serialize_entry("cluster", &grant.cluster)?;
                map.serialize_entry("namespaces", grant.namespaces.as_slice())?;
                map.serialize_entry("groups", grant.groups.as_slice())?;
                map.serialize_entry("kinds", grant.kinds.as_slice())?;
                map.serialize_entry("names", grant.names.as_slice())?;
                map.end()
            }
            Grant::ChartGroup(grant) => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("resource", &resource)?;
                map.serialize_entry("role", &grant.role)?;
                map.serialize_entry("groups", grant.groups.as_slice())?;
                map.end()
            }
        }
    }
}

fn serialize_app<S: Serializer, R: Serialize>(
    serializer: S,
    resource: Resource,
    grant: &AppGrant<R>,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(5))?;
    map.serialize_entry("resource", &resource)?;
    map.serialize_entry("role", &grant.role)?;
    map.serialize_entry("project", &grant.project)?;
    map.serialize_entry("environments", grant.environments.as_slice())?;
    map.serialize_entry("apps", grant.apps.as_slice())?;
    map.end()
}

/// What a token may do: everything, or what its grants allow.
///
/// JSON: `{"super_admin": true}` or `{"grants": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Permissions {
    /// Allowed everything.
    SuperAdmin,
    /// Allowed what any one of these grants allows.
    Grants(Vec<Grant>),
}

impl Permissions {
    /// Whether this is super-admin.
    pub fn is_super_admin(&self) -> bool {
        matches!(self, Permissions::SuperAdmin)
    }

    /// The authorization decision: super-admin may do anything; otherwise some grant must
    /// allow the access on its own (see [`Grant::allows`]).
    pub fn allows(&self, access: &Access<'_>) -> bool {
        match self {
            Permissions::SuperAdmin => true,
            Permissions::Grants(grants) => grants.iter().any(|grant| grant.allows(access)),
        }
    }

    /// One line for humans, e.g. `super-admin` or
    /// `devtron-app:trigger project=payments envs=prod,staging apps=*; chart-group:view groups=*`.
    pub fn summary(&self) -> String {
        match self {
            Permissions::SuperAdmin => "super-admin".to_owned(),
            Permissions::Grants(grants) => grants
                .iter()
                .map(Grant::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// Checks a value built in code against the rules deserialization enforces: at least one
    /// and at most [`MAX_GRANTS`] grants, non-empty scope lists of at most [`MAX_PATTERNS`]
    /// well-formed patterns each.
    ///
    /// # Errors
    ///
    /// The first rule broken; errors inside a grant are wrapped in
    /// [`PermissionError::InGrant`] with its position.
    pub fn validate(&self) -> Result<(), PermissionError> {
        match self {
            Permissions::SuperAdmin => Ok(()),
            Permissions::Grants(grants) => {
                check_grant_count(grants.len())?;
                for (index, grant) in grants.iter().enumerate() {
                    grant.validate().map_err(|error| error.in_grant(index))?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.validate().map_err(ser::Error::custom)?;
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Permissions::SuperAdmin => map.serialize_entry("super_admin", &true)?,
            Permissions::Grants(grants) => map.serialize_entry("grants", grants)?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawPermissions::deserialize(deserializer)?;
        Permissions::try_from(raw).map_err(de::Error::custom)
    }
}

// Deserialization goes through loosely typed raw structs, then validates. The derive gives
// duplicate-key and unknown-field rejection; the conversion gives messages that speak of
// resources and roles rather than of serde's internals.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPermissions {
    #[serde(default, deserialize_with = "present")]
    super_admin: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    grants: Option<Bounded<RawGrant, MAX_GRANTS>>,
}

/// Every field any grant kind may have; which ones are allowed depends on `resource`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    #[serde(default, deserialize_with = "present")]
    resource: Option<String>,
    #[serde(default, deserialize_with = "present")]
    role: Option<String>,
    #[serde(default, deserialize_with = "present")]
    project: Option<String>,
    #[serde(default, deserialize_with = "present")]
    cluster: Option<String>,
    #[serde(default, deserialize_with = "present")]
    environments: Option<RawList>,
    #[serde(default, deserialize_with = "present")]
    apps: Option<RawList>,
    #[serde(default, deserialize_with = "present")]
    namespaces: Option<RawList>,
    #[serde(default, deserialize_with = "present")]
    groups: Option<RawList>,
    #[serde(default, deserialize_with = "present")]
    kinds: Option<RawList>,
    #[serde(default, deserialize_with = "present")]
    names: Option<RawList>,
}

type RawList = Bounded<String, MAX_PATTERNS>;

/// An optional field that, when present, must not be `null`: the JSON shape has no nulls,
/// and accepting them would give one value two spellings.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A list that keeps at most `MAX` items but counts them all: memory stays bounded on
/// hostile input while the error can still say how many there were.
struct Bounded<T, const MAX: usize> {
    items: Vec<T>,
    len: usize,
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Bounded<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(BoundedVisitor(PhantomData))
    }
}

struct BoundedVisitor<T, const MAX: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for BoundedVisitor<T, MAX> {
    type Value = Bounded<T, MAX>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        let mut len = 0;
        loop {
            let more = if len < MAX {
                match seq.next_element::<T>()? {
                    Some(item) => {
                        items.push(item);
                        true
                    }
                    None => false,
                }
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(Bounded { items, len });
            }
            len += 1;
        }
    }
}

impl TryFrom<RawPermissions> for Permissions {
    type Error = PermissionError;

    fn try_from(raw: RawPermissions) -> Result<Self, Self::Error> {
        match (raw.super_admin, raw.grants) {
            (Some(_), Some(_)) => Err(PermissionError::SuperAdminWithGrants),
            (Some(true), None) => Ok(Permissions::SuperAdmin),
            (Some(false), None) => Err(PermissionError::SuperAdminFalse),
            (None, None) => Err(PermissionError::NoPermissions),
            (None, Some(grants)) => {
                check_grant_count(grants.len)?;
                grants
                    .items
                    .into_iter()
                    .enumerate()
                    .map(|(index, raw)| Grant::try_from(raw).map_err(|e| e.in_grant(index)))
                    .collect::<Result<_, _>>()
                    .map(Permissions::Grants)
            }
        }
    }
}

impl TryFrom<RawGrant> for Grant {
    type Error = PermissionError;

    fn try_from(raw: RawGrant) -> Result<Self, Self::Error> {
        let resource: Resource = raw
            .resource
            .as_deref()
            .ok_or(PermissionError::MissingResource)?
            .parse()?;
        // Checked before anything else: a field of another kind usually means the wrong
        // `resource`, and that is the helpful thing to say.
        let given = [
            ("project", raw.project.is_some()),
            ("cluster", raw.cluster.is_some()),
            ("environments", raw.environments.is_some()),
            ("apps", raw.apps.is_some()),
            ("namespaces", raw.namespaces.is_some()),
            ("groups", raw.groups.is_some()),
            ("kinds", raw.kinds.is_some()),
            ("names", raw.names.is_some()),
        ];
        let allowed = resource.scope_fields();
        if let Some(&(field, _)) = given
            .iter()
            .find(|(field, given)| *given && !allowed.contains(field))
        {
            return Err(PermissionError::ForeignField { resource, field });
        }

        let missing = |field| PermissionError::MissingField { resource, field };
        let role = raw.role.as_deref().ok_or_else(|| missing("role"))?;
        let one = |value: Option<String>, field| {
            Pattern::parse_in(&value.ok_or_else(|| missing(field))?, false)
        };
        let list = |value: Option<RawList>, field, allow_empty| {
            let value = value.ok_or_else(|| missing(field))?;
            check_list_len(field, value.len)?;
            value
                .items
                .into_iter()
                .map(|text| Pattern::parse_in(&text, allow_empty))
                .collect::<Result<Patterns, _>>()
        };

        Ok(match resource {
            Resource::DevtronApp => Grant::DevtronApp(AppGrant {
                role: role.parse()?,
                project: one(raw.project, "project")?,
                environments: list(raw.environments, "environments", false)?,
                apps: list(raw.apps, "apps", false)?,
            }),
            Resource::HelmApp => Grant::HelmApp(AppGrant {
                role: role.parse()?,
                project: one(raw.project, "project")?,
                environments: list(raw.environments, "environments", false)?,
                apps: list(raw.apps, "apps", false)?,
            }),
            Resource::Kubernetes => Grant::Kubernetes(KubernetesGrant {
                role: role.parse()?,
                cluster: one(raw.cluster, "cluster")?,
                namespaces: list(raw.namespaces, "namespaces", false)?,
                groups: list(raw.groups, "groups", true)?,
                kinds: list(raw.kinds, "kinds", false)?,
                names: list(raw.names, "names", false)?,
            }),
            Resource::ChartGroup => Grant::ChartGroup(ChartGroupGrant {
                role: role.parse()?,
                groups: list(raw.groups, "groups", false)?,
            }),
        })
    }
}

/// An authorization question: may this be done? It names the resource kind, the concrete
/// scope (plain values, not patterns) and the least role needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access<'a> {
    /// On a Devtron application.
    DevtronApp {
        /// The least role needed.
        role: DevtronRole,
        /// The application's project.
        project: &'a str,
        /// The environment.
        environment: &'a str,
        /// The application.
        app: &'a str,
    },
    /// On a Helm application.
    HelmApp {
        /// The least role needed.
        role: HelmRole,
        /// The application's project.
        project: &'a str,
        /// The environment (`cluster__namespace`).
        environment: &'a str,
        /// The application.
        app: &'a str,
    },
    /// On a Kubernetes object.
    Kubernetes {
        /// The least role needed.
        role: KubernetesRole,
        /// The cluster.
        cluster: &'a str,
        /// The namespace.
        namespace: &'a str,
        /// The API group; `""` is the core group.
        group: &'a str,
        /// The kind, e.g. `Deployment`.
        kind: &'a str,
        /// The object's name.
        name: &'a str,
    },
    /// On a chart group.
    ChartGroup {
        /// The least role needed.
        role: ChartGroupRole,
        /// The chart group.
        group: &'a str,
    },
}

impl<'a> Access<'a> {
    /// The resource kind asked about.
    pub fn resource(&self) -> Resource {
        match self {
            Access::DevtronApp { .. } => Resource::DevtronApp,
            Access::HelmApp { .. } => Resource::HelmApp,
            Access::Kubernetes { .. } => Resource::Kubernetes,
            Access::ChartGroup { .. } => Resource::ChartGroup,
        }
    }

    /// Builds a question from single string values, as given by HTTP query parameters or
    /// the command line. `get` looks up a scope field by name: `project`, `environment`,
    /// `app` for applications; `cluster`, `namespace`, `group`, `kind`, `name` for Kubernetes
    /// (`group` defaults to `""`, the core group); `group` for chart groups. The values are
    /// taken literally, never as patterns.
    ///
    /// # Errors
    ///
    /// An unknown resource or role, or [`PermissionError::MissingScope`] naming the first
    /// missing field.
    pub fn from_fields(
        resource: &str,
        role: &str,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Access<'a>, PermissionError> {
        let resource: Resource = resource.parse()?;
        let need = |field| get(field).ok_or(PermissionError::MissingScope { resource, field });
        Ok(match resource {
            Resource::DevtronApp => Access::DevtronApp {
                role: role.parse()?,
                project: need("project")?,
                environment: need("environment")?,
                app: need("app")?,
            },
            Resource::HelmApp => Access::HelmApp {
                role: role.parse()?,
                project: need("project")?,
                environment: need("environment")?,
                app: need("app")?,
            },
            Resource::Kubernetes => Access::Kubernetes {
                role: role.parse()?,
                cluster: need("cluster")?,
                namespace: need("namespace")?,
                group: get("group").unwrap_or(""),
                kind: need("kind")?,
                name: need("name")?,
            },
            Resource::ChartGroup => Access::ChartGroup {
                role: role.parse()?,
                group: need("group")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"grants": [
      {"resource": "devtron-app", "role": "trigger", "project": "payments",
       "environments": ["prod", "staging"], "apps": ["*"]},
      {"resource": "helm-app", "role": "edit", "project": "infra",
       "environments": ["prod-cluster__monitoring"], "apps": ["grafana"]},
      {"resource": "kubernetes", "role": "view", "cluster": "prod",
       "namespaces": ["*"], "groups": ["", "apps"], "kinds": ["Deployment", "Pod"], "names": ["*"]},
      {"resource": "chart-group", "role": "view", "groups": ["*"]}
    ]}"#;

    fn parse(json: &str) -> Result<Permissions, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[track_caller]
    fn assert_rejected(json: &str, expected: &str) {
        match parse(json) {
            Ok(value) => panic!("accepted {json}: {value:?}"),
            Err(message) => assert!(
                message.contains(expected),
                "error for {json}\n  was: {message}\n  expected to contain: {expected}"
            ),
        }
    }

    /// Patterns from their written form; `""` is the core group.
    fn patterns(texts: &[&str]) -> Patterns {
        texts
            .iter()
            .map(|text| Pattern::parse_in(text, true).unwrap())
            .collect()
    }

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    fn devtron(role: DevtronRole, project: &str, envs: &[&str], apps: &[&str]) -> Grant {
        Grant::DevtronApp(AppGrant {
            role,
            project: pattern(project),
            environments: patterns(envs),
            apps: patterns(apps),
        })
    }

    fn helm(role: HelmRole, project: &str, envs: &[&str], apps: &[&str]) -> Grant {
        Grant::HelmApp(AppGrant {
            role,
            project: pattern(project),
            environments: patterns(envs),
            apps: patterns(apps),
        })
    }

    fn kubernetes(role: KubernetesRole, cluster: &str, lists: [&[&str]; 4]) -> Grant {
        let [namespaces, groups, kinds, names] = lists;
        Grant::Kubernetes(KubernetesGrant {
            role,
            cluster: pattern(cluster),
            namespaces: patterns(namespaces),
            groups: patterns(groups),
            kinds: patterns(kinds),
            names: patterns(names),
        })
    }

    fn chart_group(role: ChartGroupRole, groups: &[&str]) -> Grant {
        Grant::ChartGroup(ChartGroupGrant {
            role,
            groups: patterns(groups),
        })
    }

    fn grants(grants: Vec<Grant>) -> Permissions {
        Permissions::Grants(grants)
    }

    fn devtron_access<'a>(role: DevtronRole, scope: [&'a str; 3]) -> Access<'a> {
        let [project, environment, app] = scope;
        Access::DevtronApp {
            role,
            project,
            environment,
            app,
        }
    }

    fn helm_access<'a>(role: HelmRole, scope: [&'a str; 3]) -> Access<'a> {
        let [project, environment, app] = scope;
        Access::HelmApp {
            role,
            project,
            environment,
            app,
        }
    }

    fn kubernetes_access<'a>(role: KubernetesRole, scope: [&'a str; 5]) -> Access<'a> {
        let [cluster, namespace, group, kind, name] = scope;
        Access::Kubernetes {
            role,
            cluster,
            namespace,
            group,
            kind,
            name,
        }
    }

    /// For every granted role and every required role: allowed iff granted is at or above
    /// required, by position on the ladder (not only by the derived `Ord`).
    #[track_caller]
    fn assert_ladder<R: Copy + fmt::Display>(all: &[R], allows: impl Fn(R, R) -> bool) {
        for (granted_at, &granted) in all.iter().enumerate() {
            for (required_at, &required) in all.iter().enumerate() {
                assert_eq!(
                    allows(granted, required),
                    granted_at >= required_at,
                    "granted {granted}, required {required}"
                );
            }
        }
    }

    // --- the authorization table -------------------------------------------------------

    #[test]
    fn role_ladders_list_their_roles_lowest_first() {
        assert_eq!(
            DevtronRole::ALL.map(DevtronRole::as_str),
            ["view", "trigger", "admin", "manager"]
        );
        assert_eq!(
            HelmRole::ALL.map(HelmRole::as_str),
            ["view", "edit", "admin"]
        );
        assert_eq!(
            KubernetesRole::ALL.map(KubernetesRole::as_str),
            ["view", "edit", "admin"]
        );
        assert_eq!(
            ChartGroupRole::ALL.map(ChartGroupRole::as_str),
            ["view", "update", "admin"]
        );
        assert!(DevtronRole::ALL.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(HelmRole::ALL.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(KubernetesRole::ALL.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(ChartGroupRole::ALL.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn a_devtron_role_allows_exactly_the_roles_up_to_it() {
        let scope = ["payments", "prod", "api"];
        assert_ladder(&DevtronRole::ALL, |granted, required| {
            grants(vec![devtron(granted, "payments", &["prod"], &["api"])])
                .allows(&devtron_access(required, scope))
        });
    }

    #[test]
    fn a_helm_role_allows_exactly_the_roles_up_to_it() {
        let scope = ["infra", "prod__monitoring", "grafana"];
        assert_ladder(&HelmRole::ALL, |granted, required| {
            grants(vec![helm(
                granted,
                "infra",
                &["prod__monitoring"],
                &["grafana"],
            )])
            .allows(&helm_access(required, scope))
        });
    }

    #[test]
    fn a_kubernetes_role_allows_exactly_the_roles_up_to_it() {
        let scope = ["prod", "default", "apps", "Deployment", "web"];
        assert_ladder(&KubernetesRole::ALL, |granted, required| {
            let lists: [&[&str]; 4] = [&["default"], &["apps"], &["Deployment"], &["web"]];
            grants(vec![kubernetes(granted, "prod", lists)])
                .allows(&kubernetes_access(required, scope))
        });
    }

    #[test]
    fn a_chart_group_role_allows_exactly_the_roles_up_to_it() {
        assert_ladder(&ChartGroupRole::ALL, |granted, required| {
            grants(vec![chart_group(granted, &["base"])]).allows(&Access::ChartGroup {
                role: required,
                group: "base",
            })
        });
    }

    #[test]
    fn exact_patterns_match_only_the_same_bytes() {
        let exact = pattern("payments");
        assert_eq!(exact, Pattern::Exact("payments".into()));
        assert!(exact.matches("payments"));
        assert!(!exact.matches("Payments"));
        assert!(!exact.matches("payments2"));
        assert!(!exact.matches("payment"));
        assert!(!exact.matches(""));
        assert!(!exact.matches("*"));
    }

    #[test]
    fn the_star_pattern_matches_everything() {
        assert_eq!(pattern("*"), Pattern::Any);
        for value in ["", "*", "anything", "ÄÖ", "a*b"] {
            assert!(Pattern::Any.matches(value), "{value:?}");
        }
    }

    #[test]
    fn prefix_patterns_match_values_starting_with_the_prefix() {
        let prefix = pattern("pay*");
        assert_eq!(prefix, Pattern::Prefix("pay".into()));
        assert!(prefix.matches("pay"));
        assert!(prefix.matches("payments"));
        assert!(prefix.matches("pay*"));
        assert!(!prefix.matches("pa"));
        assert!(!prefix.matches("Payments"));
        assert!(!prefix.matches("xpayments"));
        assert!(!prefix.matches(""));
    }

    #[test]
    fn the_empty_core_group_matches_only_the_empty_group() {
        let lists: [&[&str]; 4] = [&["*"], &[""], &["*"], &["*"]];
        let perms = grants(vec![kubernetes(KubernetesRole::View, "*", lists)]);
        let ask = |group| kubernetes_access(KubernetesRole::View, ["c", "ns", group, "Pod", "p"]);
        assert!(perms.allows(&ask("")));
        assert!(!perms.allows(&ask("apps")));
        assert!(!perms.allows(&ask("*")));
    }

    #[test]
    fn control_characters_are_refused_in_every_encoding_width() {
        for text in ["a\u{0}b", "tab\there", "del\u{7f}", "c1\u{85}", "c1\u{9f}"] {
            let err = Pattern::parse(text).unwrap_err().to_string();
            assert!(err.contains("control characters"), "{text:?}: {err}");
        }
        // Neighbours of the C1 range are ordinary characters.
        for text in ["\u{a0}nbsp", "caf\u{e9}", "\u{7e}"] {
            assert!(Pattern::parse(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn a_question_for_a_star_value_is_taken_literally() {
        let perms = grants(vec![devtron(DevtronRole::View, "p", &["e"], &["web*"])]);
        assert!(!perms.allows(&devtron_access(DevtronRole::View, ["p", "e", "*"])));
        assert!(perms.allows(&devtron_access(DevtronRole::View, ["p", "e", "web*"])));
    }

    #[test]
    fn every_devtron_scope_field_must_match() {
        let perms = grants(vec![devtron(
            DevtronRole::Admin,
            "payments",
            &["prod"],
            &["api"],
        )]);
        let ask = |scope| perms.allows(&devtron_access(DevtronRole::View, scope));
        assert!(ask(["payments", "prod", "api"]));
        assert!(!ask(["billing", "prod", "api"]));
        assert!(!ask(["payments", "staging", "api"]));
        assert!(!ask(["payments", "prod", "web"]));
    }

    #[test]
    fn every_helm_scope_field_must_match() {
        let perms = grants(vec![helm(
            HelmRole::Admin,
            "infra",
            &["c__ns"],
            &["grafana"],
        )]);
        let ask = |scope| perms.allows(&helm_access(HelmRole::View, scope));
        assert!(ask(["infra", "c__ns", "grafana"]));
        assert!(!ask(["other", "c__ns", "grafana"]));
        assert!(!ask(["infra", "c__other", "grafana"]));
        assert!(!ask(["infra", "c__ns", "loki"]));
    }

    #[test]
    fn every_kubernetes_scope_field_must_match() {
        let lists: [&[&str]; 4] = [&["default"], &["apps"], &["Deployment"], &["web"]];
        let perms = grants(vec![kubernetes(KubernetesRole::Admin, "prod", lists)]);
        let ask = |scope| perms.allows(&kubernetes_access(KubernetesRole::View, scope));
        let good = ["prod", "default", "apps", "Deployment", "web"];
        assert!(ask(good));
        let other = ["dev", "kube-system", "batch", "Job", "db"];
        for field in 0..good.len() {
            let mut scope = good;
            scope[field] = other[field];
            assert!(!ask(scope), "{scope:?}");
        }
    }

    #[test]
    fn the_chart_group_must_match() {
        let perms = grants(vec![chart_group(ChartGroupRole::Admin, &["base*"])]);
        let ask = |group| {
            perms.allows(&Access::ChartGroup {
                role: ChartGroupRole::View,
                group,
            })
        };
        assert!(ask("base-charts"));
        assert!(!ask("extra"));
    }

    #[test]
    fn any_pattern_in_a_list_suffices() {
        let perms = grants(vec![devtron(
            DevtronRole::View,
            "p",
            &["prod", "staging"],
            &["api", "web*"],
        )]);
        let ask = |env, app| perms.allows(&devtron_access(DevtronRole::View, ["p", env, app]));
        assert!(ask("prod", "api"));
        assert!(ask("staging", "web-frontend"));
        assert!(!ask("dev", "api"));
    }

    #[test]
    fn grants_of_another_resource_kind_never_match() {
        let all: &[&str] = &["*"];
        let perms = grants(vec![
            devtron(DevtronRole::Manager, "*", all, all),
            kubernetes(KubernetesRole::Admin, "*", [all, all, all, all]),
            chart_group(ChartGroupRole::Admin, all),
        ]);
        // Helm is the one kind without a grant here, even though devtron-app has the same scope.
        assert!(!perms.allows(&helm_access(HelmRole::View, ["p", "e", "a"])));
        let only_helm = grants(vec![helm(HelmRole::Admin, "*", all, all)]);
        assert!(!only_helm.allows(&devtron_access(DevtronRole::View, ["p", "e", "a"])));
        assert!(!only_helm.allows(&kubernetes_access(KubernetesRole::View, ["c"; 5])));
        assert!(!only_helm.allows(&Access::ChartGroup {
            role: ChartGroupRole::View,
            group: "g",
        }));
    }

    #[test]
    fn one_allowing_grant_among_several_suffices() {
        let perms = grants(vec![
            devtron(DevtronRole::View, "payments", &["prod"], &["*"]),
            devtron(DevtronRole::Trigger, "payments", &["staging"], &["*"]),
            chart_group(ChartGroupRole::View, &["*"]),
        ]);
        let ask = |role, env| perms.allows(&devtron_access(role, ["payments", env, "api"]));
        assert!(ask(DevtronRole::View, "prod"));
        assert!(!ask(DevtronRole::Trigger, "prod"));
        assert!(ask(DevtronRole::Trigger, "staging"));
        assert!(!ask(DevtronRole::Admin, "staging"));
    }

    #[test]
    fn super_admin_allows_everything_in_every_kind() {
        let perms = Permissions::SuperAdmin;
        assert!(perms.is_super_admin());
        for role in DevtronRole::ALL {
            assert!(perms.allows(&devtron_access(role, ["", "x", "*"])));
        }
        for role in HelmRole::ALL {
            assert!(perms.allows(&helm_access(role, ["p", "e", "a"])));
        }
        for role in KubernetesRole::ALL {
            assert!(perms.allows(&kubernetes_access(role, ["c", "n", "", "Pod", "x"])));
        }
        for role in ChartGroupRole::ALL {
            assert!(perms.allows(&Access::ChartGroup { role, group: "g" }));
        }
        assert!(!grants(vec![chart_group(ChartGroupRole::View, &["*"])]).is_super_admin());
    }

    // --- JSON ---------------------------------------------------------------------------

    fn example() -> Permissions {
        grants(vec![
            devtron(
                DevtronRole::Trigger,
                "payments",
                &["prod", "staging"],
                &["*"],
            ),
            helm(
                HelmRole::Edit,
                "infra",
                &["prod-cluster__monitoring"],
                &["grafana"],
            ),
            kubernetes(
                KubernetesRole::View,
                "prod",
                [&["*"], &["", "apps"], &["Deployment", "Pod"], &["*"]],
            ),
            chart_group(ChartGroupRole::View, &["*"]),
        ])
    }

    #[test]
    fn the_example_parses_into_the_expected_grants() {
        assert_eq!(parse(EXAMPLE).unwrap(), example());
        assert_eq!(
            parse(r#"{"super_admin": true}"#).unwrap(),
            Permissions::SuperAdmin
        );
    }

    #[test]
    fn serialization_is_deterministic_and_round_trips() {
        let json = serde_json::to_string(&example()).unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"grants":["#,
                r#"{"resource":"devtron-app","role":"trigger","project":"payments","#,
                r#""environments":["prod","staging"],"apps":["*"]},"#,
                r#"{"resource":"helm-app","role":"edit","project":"infra","#,
                r#""environments":["prod-cluster__monitoring"],"apps":["grafana"]},"#,
                r#"{"resource":"kubernetes","role":"view","cluster":"prod","#,
                r#""namespaces":["*"],"groups":["","apps"],"kinds":["Deployment","Pod"],"names":["*"]},"#,
                r#"{"resource":"chart-group","role":"view","groups":["*"]}"#,
                r#"]}"#
            )
        );
        assert_eq!(parse(&json).unwrap(), example());
        let admin = serde_json::to_string(&Permissions::SuperAdmin).unwrap();
        assert_eq!(admin, r#"{"super_admin":true}"#);
        assert_eq!(parse(&admin).unwrap(), Permissions::SuperAdmin);
    }

    #[test]
    fn every_role_of_every_kind_round_trips() {
        let mut all = Vec::new();
        all.extend(DevtronRole::ALL.map(|role| devtron(role, "p*", &["e"], &["a"])));
        all.extend(HelmRole::ALL.map(|role| helm(role, "p", &["e*"], &["a"])));
        all.extend(
            KubernetesRole::ALL.map(|role| kubernetes(role, "c", [&["n"], &[""], &["K"], &["x*"]])),
        );
        all.extend(ChartGroupRole::ALL.map(|role| chart_group(role, &["g"])));
        let perms = grants(all);
        let json = serde_json::to_string(&perms).unwrap();
        assert_eq!(parse(&json).unwrap(), perms);
    }

    #[test]
    fn the_summary_is_one_readable_line() {
        assert_eq!(Permissions::SuperAdmin.summary(), "super-admin");
        assert_eq!(
            example().summary(),
            "devtron-app:trigger project=payments envs=prod,staging apps=*; \
             helm-app:edit project=infra envs=prod-cluster__monitoring apps=grafana; \
             kubernetes:view cluster=prod namespaces=* groups=\"\",apps kinds=Deployment,Pod names=*; \
             chart-group:view groups=*"
        );
    }

    #[test]
    fn unknown_roles_are_named_with_the_allowed_ones() {
        assert_rejected(
            r#"{"grants":[{"resource":"devtron-app","role":"edit","project":"p","environments":["e"],"apps":["a"]}]}"#,
            r#"unknown role "edit" for devtron-app: expected one of view, trigger, admin, manager"#,
        );
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","role":"edit","groups":["g"]}]}"#,
            r#"unknown role "edit" for chart-group: expected one of view, update, admin"#,
        );
        assert_rejected(
            r#"{"grants":[{"resource":"helm-app","role":"View","project":"p","environments":["e"],"apps":["a"]}]}"#,
            r#"unknown role "View" for helm-app: expected one of view, edit, admin"#,
        );
    }

    #[test]
    fn unknown_resources_are_named_with_the_allowed_ones() {
        assert_rejected(
            r#"{"grants":[{"resource":"devtron","role":"view"}]}"#,
            r#"unknown resource "devtron"; expected one of devtron-app, helm-app, kubernetes, chart-group"#,
        );
        assert_rejected(
            r#"{"grants":[{"role":"view","groups":["g"]}]}"#,
            r#"grant is missing "resource""#,
        );
    }

    #[test]
    fn missing_fields_are_named() {
        assert_rejected(
            r#"{"grants":[{"resource":"devtron-app","role":"view","project":"p","apps":["a"]}]}"#,
            r#"devtron-app grant is missing "environments""#,
        );
        assert_rejected(
            r#"{"grants":[{"resource":"kubernetes","role":"view","cluster":"c","namespaces":["n"],"groups":[""],"kinds":["Pod"]}]}"#,
            r#"kubernetes grant is missing "names""#,
        );
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","groups":["g"]}]}"#,
            r#"chart-group grant is missing "role""#,
        );
        assert_rejected(
            r#"{"grants":[{"resource":"helm-app","role":"view","environments":["e"],"apps":["a"]}]}"#,
            r#"helm-app grant is missing "project""#,
        );
    }

    #[test]
    fn fields_of_another_resource_are_rejected() {
        assert_rejected(
            r#"{"grants":[{"resource":"devtron-app","role":"view","project":"p","environments":["e"],"apps":["a"],"cluster":"c"}]}"#,
            r#"field "cluster" does not belong to a devtron-app grant"#,
        );
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":["g"],"apps":["a"]}]}"#,
            r#"field "apps" does not belong to a chart-group grant"#,
        );
    }

    #[test]
    fn unknown_fields_are_rejected_at_every_level() {
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":["g"],"colour":"red"}]}"#,
            "unknown field `colour`",
        );
        assert_rejected(r#"{"super_admin":true,"extra":1}"#, "unknown field `extra`");
    }

    #[test]
    fn empty_scope_lists_are_rejected() {
        assert_rejected(
            r#"{"grants":[{"resource":"devtron-app","role":"view","project":"p","environments":["e"],"apps":[]}]}"#,
            r#""apps" must list at least one pattern"#,
        );
        assert_rejected(
            r#"{"grants":[{"resource":"kubernetes","role":"view","cluster":"c","namespaces":["n"],"groups":[],"kinds":["Pod"],"names":["*"]}]}"#,
            r#""groups" must list at least one pattern"#,
        );
    }

    #[test]
    fn limits_are_enforced_with_counts() {
        let grant = r#"{"resource":"chart-group","role":"view","groups":["g"]}"#;
        let many = vec![grant; 70].join(",");
        assert_rejected(
            &format!(r#"{{"grants":[{many}]}}"#),
            "too many grants: 70 (at most 64)",
        );
        let at_limit = vec![grant; MAX_GRANTS].join(",");
        assert!(parse(&format!(r#"{{"grants":[{at_limit}]}}"#)).is_ok());

        let many = vec![r#""g""#; 65].join(",");
        assert_rejected(
            &format!(
                r#"{{"grants":[{{"resource":"chart-group","role":"view","groups":[{many}]}}]}}"#
            ),
            r#"too many patterns in "groups": 65 (at most 64)"#,
        );

        let long = "x".repeat(MAX_PATTERN_LEN + 1);
        assert_rejected(
            &format!(
                r#"{{"grants":[{{"resource":"chart-group","role":"view","groups":["{long}"]}}]}}"#
            ),
            "pattern too long: 254 bytes (at most 253)",
        );
        let longest = "x".repeat(MAX_PATTERN_LEN);
        assert!(parse(&format!(
            r#"{{"grants":[{{"resource":"chart-group","role":"view","groups":["{longest}"]}}]}}"#
        ))
        .is_ok());
    }

    #[test]
    fn stars_may_only_end_a_pattern() {
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":["a*b"]}]}"#,
            r#"invalid pattern "a*b": "*" may only end a pattern"#,
        );
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":["**"]}]}"#,
            r#"invalid pattern "**": "*" may only end a pattern"#,
        );
        assert_rejected(
            r#"{"grants":[{"resource":"helm-app","role":"view","project":"*x","environments":["e"],"apps":["a"]}]}"#,
            r#"invalid pattern "*x": "*" may only end a pattern"#,
        );
    }

    #[test]
    fn empty_patterns_are_rejected_outside_kubernetes_groups() {
        for json in [
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":[""]}]}"#,
            r#"{"grants":[{"resource":"devtron-app","role":"view","project":"","environments":["e"],"apps":["a"]}]}"#,
            r#"{"grants":[{"resource":"kubernetes","role":"view","cluster":"c","namespaces":[""],"groups":[""],"kinds":["Pod"],"names":["*"]}]}"#,
            r#"{"grants":[{"resource":"kubernetes","role":"view","cluster":"","namespaces":["n"],"groups":[""],"kinds":["Pod"],"names":["*"]}]}"#,
        ] {
            assert_rejected(json, r#"invalid pattern "": a pattern may not be empty"#);
        }
    }

    #[test]
    fn control_characters_are_rejected_in_patterns() {
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":["a\nb"]}]}"#,
            r#"invalid pattern "a\nb": control characters are not allowed"#,
        );
    }

    #[test]
    fn errors_say_which_grant_is_wrong() {
        let json = r#"{"grants":[{"resource":"chart-group","role":"view","groups":["g"]},
                                 {"resource":"chart-group","role":"view","groups":[]}]}"#;
        assert_rejected(
            json,
            r#"grants[1]: "groups" must list at least one pattern"#,
        );
    }

    #[test]
    fn the_top_level_must_be_exactly_one_of_super_admin_and_grants() {
        assert_rejected(
            r#"{"grants":[]}"#,
            r#""grants" must list at least one grant"#,
        );
        assert_rejected(r#"{"super_admin":false}"#, r#"use "grants" instead"#);
        assert_rejected(
            r#"{"super_admin":true,"grants":[{"resource":"chart-group","role":"view","groups":["g"]}]}"#,
            "not both",
        );
        assert_rejected("{}", "no permissions given");
        assert_rejected(r#"{"super_admin":null}"#, "invalid type: null");
        assert_rejected(
            r#"{"super_admin":true,"grants":null}"#,
            "invalid type: null",
        );
    }

    #[test]
    fn duplicate_keys_are_rejected_at_every_level() {
        let grant = r#"{"resource":"chart-group","role":"view","groups":["g"]}"#;
        assert_rejected(
            &format!(r#"{{"grants":[{grant}],"grants":[{grant}]}}"#),
            "duplicate field `grants`",
        );
        assert_rejected(
            r#"{"super_admin":true,"super_admin":true}"#,
            "duplicate field `super_admin`",
        );
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","role":"view","role":"admin","groups":["g"]}]}"#,
            "duplicate field `role`",
        );
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","resource":"chart-group","role":"view","groups":["g"]}]}"#,
            "duplicate field `resource`",
        );
        assert_rejected(
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":["g"],"groups":["h"]}]}"#,
            "duplicate field `groups`",
        );
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let deep_grant = format!(r#"{{"grants":[{deep}]}}"#);
        let chart = r#"{"resource":"chart-group","role":"view","groups":["g"]}"#;
        let deep_after_limit = format!(r#"{{"grants":[{},{deep}]}}"#, vec![chart; 64].join(","));
        let huge_list = format!(r#"{{"grants":[{}]}}"#, vec!["1"; 200_000].join(","));
        let huge_patterns = format!(
            r#"{{"grants":[{{"resource":"chart-group","role":"view","groups":[{}]}}]}}"#,
            vec![r#""g""#; 200_000].join(",")
        );
        let huge_role = format!(
            r#"{{"grants":[{{"resource":"chart-group","role":"{}","groups":["g"]}}]}}"#,
            "é".repeat(100_000)
        );
        let odd = [
            "",
            "null",
            "true",
            "1",
            "\"super_admin\"",
            "[]",
            "[{\"super_admin\":true}]",
            r#"{"super_admin":1}"#,
            r#"{"super_admin":"true"}"#,
            r#"{"grants":{}}"#,
            r#"{"grants":[1]}"#,
            r#"{"grants":[null]}"#,
            r#"{"grants":[{}]}"#,
            r#"{"grants":[{"resource":7}]}"#,
            r#"{"grants":[{"resource":"chart-group","role":["view"],"groups":["g"]}]}"#,
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":"g"}]}"#,
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":[1,2]}]}"#,
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":[["g"]]}]}"#,
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":[{"a":{"b":[]}}]}]}"#,
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":["\ud800"]}]}"#,
            r#"{"grants":[{"resource":"chart-group","role":"view","groups":null}]}"#,
            &deep,
            &deep_grant,
            &deep_after_limit,
            &huge_list,
            &huge_patterns,
            &huge_role,
        ];
        for json in odd {
            let shown: String = json.chars().take(80).collect();
            assert!(parse(json).is_err(), "accepted {shown}");
        }
        assert!(
            parse(&huge_role).unwrap_err().len() < 400,
            "echoed input is shortened"
        );
    }

    #[test]
    fn mutated_input_never_panics_and_never_yields_an_invalid_value() {
        // A cheap, deterministic fuzz: every single-byte substitution of the example.
        let base = EXAMPLE.as_bytes();
        for at in 0..base.len() {
            for byte in *b"\"*,:[]{}0 x\\" {
                let mut json = base.to_vec();
                json[at] = byte;
                if let Ok(perms) = serde_json::from_slice::<Permissions>(&json) {
                    assert_eq!(perms.validate(), Ok(()));
                    let again = serde_json::to_vec(&perms).unwrap();
                    assert_eq!(
                        serde_json::from_slice::<Permissions>(&again).unwrap(),
                        perms
                    );
                }
            }
            let _ = serde_json::from_slice::<Permissions>(&base[..at]);
        }
    }

    // --- validation of values built in code ----------------------------------------------

    #[test]
    fn validate_applies_the_same_rules_to_values_built_in_code() {
        assert_eq!(example().validate(), Ok(()));
        assert_eq!(Permissions::SuperAdmin.validate(), Ok(()));
        assert_eq!(grants(vec![]).validate(), Err(PermissionError::NoGrants));

        let many = grants(vec![chart_group(ChartGroupRole::View, &["g"]); 65]);
        assert_eq!(
            many.validate().unwrap_err().to_string(),
            "too many grants: 65 (at most 64)"
        );

        let with_groups = |groups: Vec<Pattern>| {
            grants(vec![Grant::ChartGroup(ChartGroupGrant {
                role: ChartGroupRole::View,
                groups: groups.into(),
            })])
            .validate()
            .map_err(|e| e.to_string())
        };
        let rejects = |groups: Vec<Pattern>, expected: &str| {
            let message = with_groups(groups).unwrap_err();
            assert!(message.contains(expected), "{message}");
        };
        rejects(vec![], r#""groups" must list at least one pattern"#);
        rejects(vec![Pattern::Exact(SmolStr::default())], "may not be empty");
        rejects(
            vec![Pattern::Prefix(SmolStr::default())],
            "non-empty prefix",
        );
        rejects(
            vec![Pattern::Exact("a*".into())],
            "an exact pattern may not contain",
        );
        rejects(vec![Pattern::Exact("a*b".into())], "may only end a pattern");
        rejects(vec![Pattern::Prefix("a*".into())], "may only end a pattern");
        rejects(
            vec![Pattern::Prefix("x".repeat(253).into())],
            "pattern too long: 254 bytes",
        );
        rejects(vec![Pattern::Any; 65], "too many patterns");
        assert_eq!(
            with_groups(vec![Pattern::Prefix("x".repeat(252).into())]),
            Ok(())
        );

        let core = kubernetes(KubernetesRole::View, "c", [&["n"], &[""], &["Pod"], &["*"]]);
        assert_eq!(grants(vec![core]).validate(), Ok(()));
        let mut empty_namespace =
            kubernetes(KubernetesRole::View, "c", [&["n"], &[""], &["Pod"], &["*"]]);
        if let Grant::Kubernetes(grant) = &mut empty_namespace {
            grant.namespaces = Patterns::from_elem(Pattern::Exact(SmolStr::default()), 1);
        }
        assert!(grants(vec![empty_namespace]).validate().is_err());
    }

    #[test]
    fn invalid_values_refuse_to_serialize() {
        let bad = grants(vec![Grant::ChartGroup(ChartGroupGrant {
            role: ChartGroupRole::View,
            groups: Patterns::new(),
        })]);
        let error = serde_json::to_string(&bad).unwrap_err().to_string();
        assert!(error.contains("must list at least one pattern"), "{error}");
    }

    #[test]
    fn pattern_parse_and_display_are_inverse() {
        for text in ["*", "a", "a*", "prod-cluster__monitoring", "ÄÖ*"] {
            assert_eq!(pattern(text).to_string(), text);
        }
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a**").is_err());
    }

    #[test]
    fn roles_and_resources_parse_from_their_names() {
        assert_eq!("manager".parse(), Ok(DevtronRole::Manager));
        assert_eq!("update".parse(), Ok(ChartGroupRole::Update));
        assert_eq!("kubernetes".parse(), Ok(Resource::Kubernetes));
        for resource in Resource::ALL {
            assert_eq!(resource.to_string().parse(), Ok(resource));
        }
        assert_eq!(
            "manager".parse::<HelmRole>().unwrap_err().to_string(),
            r#"unknown role "manager" for helm-app: expected one of view, edit, admin"#
        );
    }

    // --- Access::from_fields ---------------------------------------------------------------

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |field| {
            pairs
                .iter()
                .find(|(name, _)| *name == field)
                .map(|(_, value)| *value)
        }
    }

    #[test]
    fn from_fields_builds_app_questions() {
        let fields = [
            ("project", "payments"),
            ("environment", "prod"),
            ("app", "api"),
        ];
        let access = Access::from_fields("devtron-app", "trigger", lookup(&fields)).unwrap();
        assert_eq!(
            access,
            devtron_access(DevtronRole::Trigger, ["payments", "prod", "api"])
        );
        assert_eq!(access.resource(), Resource::DevtronApp);
        let access = Access::from_fields("helm-app", "edit", lookup(&fields)).unwrap();
        assert_eq!(
            access,
            helm_access(HelmRole::Edit, ["payments", "prod", "api"])
        );
        assert_eq!(access.resource(), Resource::HelmApp);
    }

    #[test]
    fn from_fields_builds_kubernetes_questions_with_the_core_group_by_default() {
        let mut fields = vec![
            ("cluster", "prod"),
            ("namespace", "default"),
            ("kind", "Pod"),
            ("name", "web"),
        ];
        let access = Access::from_fields("kubernetes", "view", lookup(&fields)).unwrap();
        assert_eq!(
            access,
            kubernetes_access(KubernetesRole::View, ["prod", "default", "", "Pod", "web"])
        );
        assert_eq!(access.resource(), Resource::Kubernetes);
        fields.push(("group", "apps"));
        let access = Access::from_fields("kubernetes", "admin", lookup(&fields)).unwrap();
        assert_eq!(
            access,
            kubernetes_access(
                KubernetesRole::Admin,
                ["prod", "default", "apps", "Pod", "web"]
            )
        );
    }

    #[test]
    fn from_fields_builds_chart_group_questions() {
        let access = Access::from_fields("chart-group", "update", lookup(&[("group", "base")]));
        assert_eq!(
            access,
            Ok(Access::ChartGroup {
                role: ChartGroupRole::Update,
                group: "base",
            })
        );
        assert_eq!(access.unwrap().resource(), Resource::ChartGroup);
    }

    #[test]
    fn from_fields_names_what_is_missing_or_wrong() {
        let error = |resource, role, fields: &[(&str, &str)]| {
            Access::from_fields(resource, role, lookup(fields))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error("devtron-app", "view", &[("project", "p"), ("app", "a")]),
            r#"devtron-app access is missing "environment""#
        );
        assert_eq!(
            error(
                "helm-app",
                "view",
                &[("project", "p"), ("environment", "e")]
            ),
            r#"helm-app access is missing "app""#
        );
        assert_eq!(
            error(
                "kubernetes",
                "view",
                &[("cluster", "c"), ("namespace", "n"), ("name", "x")]
            ),
            r#"kubernetes access is missing "kind""#
        );
        assert_eq!(
            error("chart-group", "view", &[]),
            r#"chart-group access is missing "group""#
        );
        assert!(error("devtron", "view", &[]).starts_with(r#"unknown resource "devtron""#));
        assert!(error("chart-group", "edit", &[("group", "g")])
            .starts_with(r#"unknown role "edit" for chart-group"#));
    }

    #[test]
    fn from_fields_answers_match_the_grants() {
        let perms = parse(EXAMPLE).unwrap();
        let fields = [
            ("cluster", "prod"),
            ("namespace", "kube-system"),
            ("kind", "Pod"),
            ("name", "coredns"),
        ];
        let core_pod = Access::from_fields("kubernetes", "view", lookup(&fields)).unwrap();
        assert!(perms.allows(&core_pod));
        let edit = Access::from_fields("kubernetes", "edit", lookup(&fields)).unwrap();
        assert!(!perms.allows(&edit));
    }
}
