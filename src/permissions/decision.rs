//! The authorization question ([`Access`]) and its answer.

use super::*;

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
    /// On Tessera itself.
    Tessera {
        /// The least role needed.
        role: TesseraRole,
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
            Access::Tessera { .. } => Resource::Tessera,
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
            Resource::Tessera => Access::Tessera {
                role: role.parse()?,
            },
        })
    }
}

/// The scope of a permission question about `resource` (`/v1/auth`'s query or
/// `X-Tessera-Require`, `/v1/verify`'s `require`), as [`Access::from_fields`] reads it:
/// (field, required).
pub fn question_scope(resource: Resource) -> &'static [(&'static str, bool)] {
    match resource {
        Resource::DevtronApp | Resource::HelmApp => {
            &[("project", true), ("environment", true), ("app", true)]
        }
        // `group` defaults to the core API group, "".
        Resource::Kubernetes => &[
            ("cluster", true),
            ("namespace", true),
            ("group", false),
            ("kind", true),
            ("name", true),
        ],
        Resource::ChartGroup => &[("group", true)],
        Resource::Tessera => &[],
    }
}

/// Every scope key a permission question may carry, each once, besides `resource` and `role`.
pub const QUESTION_SCOPE_KEYS: [&str; 8] = [
    "project",
    "environment",
    "app",
    "cluster",
    "namespace",
    "group",
    "kind",
    "name",
];

/// Every key a permission question may carry: `resource`, `role` and each scope key.
pub fn question_keys() -> Vec<&'static str> {
    let mut keys = vec!["resource", "role"];
    keys.extend(QUESTION_SCOPE_KEYS);
    keys
}

#[cfg(test)]
mod question_tests {
    use super::*;

    #[test]
    fn the_scope_keys_are_every_kinds_scope_and_nothing_else() {
        let mut from_kinds: Vec<&str> = Resource::ALL
            .into_iter()
            .flat_map(|resource| question_scope(resource).iter().map(|(field, _)| *field))
            .collect();
        from_kinds.sort_unstable();
        from_kinds.dedup();
        let mut keys = QUESTION_SCOPE_KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(from_kinds, keys);
    }
}
