//! The resource kinds and their role ladders.

use super::*;

/// The five kinds of resource a grant can apply to.
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
    /// Tessera itself (`tessera`), for verifiers: no scope, only a role.
    Tessera,
}

impl Resource {
    /// Every resource kind.
    pub const ALL: [Resource; 5] = [
        Resource::DevtronApp,
        Resource::HelmApp,
        Resource::Kubernetes,
        Resource::ChartGroup,
        Resource::Tessera,
    ];

    pub(super) const NAMES: [&'static str; 5] = [
        "devtron-app",
        "helm-app",
        "kubernetes",
        "chart-group",
        "tessera",
    ];

    /// The JSON tag, e.g. `devtron-app`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::DevtronApp => "devtron-app",
            Resource::HelmApp => "helm-app",
            Resource::Kubernetes => "kubernetes",
            Resource::ChartGroup => "chart-group",
            Resource::Tessera => "tessera",
        }
    }

    /// The names of this kind's roles, lowest first.
    pub fn role_names(self) -> &'static [&'static str] {
        match self {
            Resource::DevtronApp => &DevtronRole::NAMES,
            Resource::HelmApp => &HelmRole::NAMES,
            Resource::Kubernetes => &KubernetesRole::NAMES,
            Resource::ChartGroup => &ChartGroupRole::NAMES,
            Resource::Tessera => &TesseraRole::NAMES,
        }
    }

    /// The scope fields of this kind's grants, in JSON order.
    pub fn scope_fields(self) -> &'static [&'static str] {
        match self {
            Resource::DevtronApp | Resource::HelmApp => &["project", "environments", "apps"],
            Resource::Kubernetes => &["cluster", "namespaces", "groups", "kinds", "names"],
            Resource::ChartGroup => &["groups"],
            Resource::Tessera => &[],
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
            pub(super) const NAMES: [&'static str; [$($text),+].len()] = [$($text),+];

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

role_ladder! {
    /// A role on Tessera itself, for the services around it: least privilege for what would
    /// otherwise need a super-admin token.
    TesseraRole for Tessera {
        /// Ask whether a token is active (token introspection).
        Introspect = "introspect",
        /// Also read the token state (`GET /v1/state`), as a verify-only edge does.
        ReadState = "read-state",
    }
}
