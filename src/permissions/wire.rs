//! The JSON form of grants and permission sets: written in a fixed order, so signed bytes
//! are deterministic, and read with every list bounded and every value validated.

use super::*;

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
            Grant::Tessera(grant) => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("resource", &resource)?;
                map.serialize_entry("role", &grant.role)?;
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
            Resource::Tessera => Grant::Tessera(TesseraGrant {
                role: role.parse()?,
            }),
        })
    }
}
