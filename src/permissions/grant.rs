//! Grants and permission sets: what a token holds, and the checks that keep it valid.

use super::*;

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

/// A grant on Tessera itself: a role and no scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TesseraGrant {
    /// The highest role granted.
    pub role: TesseraRole,
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
    /// On Tessera itself.
    Tessera(TesseraGrant),
}

impl Grant {
    /// The resource kind this grant applies to.
    pub fn resource(&self) -> Resource {
        match self {
            Grant::DevtronApp(_) => Resource::DevtronApp,
            Grant::HelmApp(_) => Resource::HelmApp,
            Grant::Kubernetes(_) => Resource::Kubernetes,
            Grant::ChartGroup(_) => Resource::ChartGroup,
            Grant::Tessera(_) => Resource::Tessera,
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
            (Grant::Tessera(grant), Access::Tessera { role }) => grant.role >= role,
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
            Grant::Tessera(_) => Ok(()),
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
            Grant::Tessera(grant) => write!(f, "{resource}:{}", grant.role),
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
