//! The OpenAPI schemas of the permission JSON (feature `server`), for `/openapi.json`.
//!
//! Written by hand: the serde form is hand-written too (a fixed field order per kind, bounded
//! lists, validated patterns), so a derive would describe the Rust enums rather than the wire.
//! Every part comes from the tables the parser uses: the resource kinds, their role ladders and
//! scope fields, and the limits.

use super::*;
use std::borrow::Cow;
use utoipa::openapi::schema::{
    AdditionalProperties, Array, ArrayBuilder, Discriminator, Object, ObjectBuilder, OneOfBuilder,
    Schema, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

type Schemas = Vec<(String, RefOr<Schema>)>;

/// `{"type": ..., "enum": [value]}`: one allowed string or boolean (utoipa has no `const`; the
/// two are equivalent).
pub(crate) fn constant(value: impl Into<serde_json::Value>) -> ObjectBuilder {
    let value = value.into();
    let kind = match value {
        serde_json::Value::Bool(_) => Type::Boolean,
        _ => Type::String,
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some([value]))
}

/// A string; `ObjectBuilder::new()` alone is an object.
fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// Whole objects only: no field but those described.
fn closed(object: ObjectBuilder) -> ObjectBuilder {
    object
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

/// A scope pattern: `*`, `prefix*` or an exact value, without control characters.
fn pattern(allow_empty: bool) -> Object {
    let body = if allow_empty { "*" } else { "+" };
    let core_group = if allow_empty {
        " The empty string is the Kubernetes core API group."
    } else {
        ""
    };
    string()
        .min_length(Some(usize::from(!allow_empty)))
        .max_length(Some(MAX_PATTERN_LEN))
        .pattern(Some(format!(
            "^(?:\\*|[^*\\u0000-\\u001F\\u007F-\\u009F]{body}\\*?)$"
        )))
        .description(Some(format!(
            "`*` for every value, `prefix*` for values starting with the prefix, or an exact \
             value (case-sensitive). At most {MAX_PATTERN_LEN} bytes; no control characters; \
             `*` only at the end.{core_group}"
        )))
        .build()
}

impl PartialSchema for Pattern {
    fn schema() -> RefOr<Schema> {
        pattern(false).into()
    }
}

impl ToSchema for Pattern {}

/// A pattern in a Kubernetes grant's `groups`, where `""` (the core API group) is allowed.
const API_GROUP_PATTERN: &str = "ApiGroupPattern";

/// `DevtronAppGrant` for `devtron-app`.
fn grant_name(resource: Resource) -> String {
    let camel: String = resource
        .as_str()
        .split('-')
        .map(|word| word[..1].to_ascii_uppercase() + &word[1..])
        .collect();
    format!("{camel}Grant")
}

/// Scope fields of a grant that hold one pattern rather than a list.
fn single_valued(resource: Resource, field: &str) -> bool {
    match resource {
        Resource::DevtronApp | Resource::HelmApp => field == "project",
        Resource::Kubernetes => field == "cluster",
        Resource::ChartGroup | Resource::Tessera => false,
    }
}

fn grant(resource: Resource) -> Object {
    let mut object = closed(ObjectBuilder::new())
        .description(Some(format!("A grant on {} resources.", resource.as_str())))
        .property("resource", constant(resource.as_str()))
        .property(
            "role",
            string()
                .enum_values(Some(resource.role_names().iter().copied()))
                .description(Some(
                    "The highest role granted; each role includes every one before it in this \
                     list.",
                )),
        )
        .required("resource")
        .required("role");
    for &field in resource.scope_fields() {
        let item = if resource == Resource::Kubernetes && field == "groups" {
            API_GROUP_PATTERN.into()
        } else {
            Pattern::name()
        };
        let item = Ref::from_schema_name(item);
        let schema: RefOr<Schema> = if single_valued(resource, field) {
            item.into()
        } else {
            patterns(item).into()
        };
        object = object.property(field, schema).required(field);
    }
    object.build()
}

fn patterns(item: Ref) -> Array {
    ArrayBuilder::new()
        .items(item)
        .min_items(Some(1))
        .max_items(Some(MAX_PATTERNS))
        .build()
}

impl PartialSchema for Grant {
    fn schema() -> RefOr<Schema> {
        let kinds = Resource::ALL.map(|r| (r.as_str(), grant_name(r)));
        let mut one_of = OneOfBuilder::new();
        for (_, name) in &kinds {
            one_of = one_of.item(Ref::from_schema_name(name));
        }
        let mapping = kinds.map(|(kind, name)| (kind, format!("#/components/schemas/{name}")));
        one_of
            .discriminator(Some(Discriminator::with_mapping("resource", mapping)))
            .into()
    }
}

impl ToSchema for Grant {
    fn schemas(schemas: &mut Schemas) {
        for resource in Resource::ALL {
            schemas.push((grant_name(resource), grant(resource).into()));
        }
        schemas.push((Pattern::name().into(), Pattern::schema()));
        schemas.push((API_GROUP_PATTERN.into(), pattern(true).into()));
    }
}

impl PartialSchema for Permissions {
    fn schema() -> RefOr<Schema> {
        let super_admin = closed(ObjectBuilder::new())
            .title(Some("SuperAdmin"))
            .property("super_admin", constant(true))
            .required("super_admin");
        let grants = closed(ObjectBuilder::new())
            .title(Some("Grants"))
            .property(
                "grants",
                ArrayBuilder::new()
                    .items(Ref::from_schema_name(Grant::name()))
                    .min_items(Some(1))
                    .max_items(Some(MAX_GRANTS)),
            )
            .required("grants");
        OneOfBuilder::new()
            .description(Some(
                "What a token may do: everything (`{\"super_admin\": true}`), or what any one of \
                 its grants allows.",
            ))
            .item(super_admin)
            .item(grants)
            .into()
    }
}

impl ToSchema for Permissions {
    fn schemas(schemas: &mut Schemas) {
        schemas.push((Grant::name().into(), Grant::schema()));
        Grant::schemas(schemas);
    }
}

/// Every role name of any resource kind, each once.
pub(crate) fn all_role_names() -> Vec<&'static str> {
    let mut names = Vec::new();
    for resource in Resource::ALL {
        for role in resource.role_names() {
            if !names.contains(role) {
                names.push(*role);
            }
        }
    }
    names
}

/// The schema of a permission question as a JSON object of strings (`/v1/verify`'s
/// `require`): nothing, or one resource kind with its role and scope.
pub struct PermissionQuestion;

impl PermissionQuestion {
    /// What every form shares: known keys, string values.
    fn object() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(string().enum_values(Some(question_keys()))))
            .additional_properties(Some(string()))
    }

    fn about(resource: Resource) -> Object {
        let mut object = Self::object()
            .property("resource", constant(resource.as_str()))
            .property(
                "role",
                string().enum_values(Some(resource.role_names().iter().copied())),
            )
            .required("resource")
            .required("role");
        for &(field, needed) in question_scope(resource) {
            object = object.property(field, string());
            if needed {
                object = object.required(field);
            }
        }
        object.build()
    }
}

impl PartialSchema for PermissionQuestion {
    fn schema() -> RefOr<Schema> {
        let nothing = Self::object()
            .max_properties(Some(0))
            .description(Some("Asks nothing."));
        let mut one_of = OneOfBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A required permission: a resource kind, the least role needed, and the scope \
                 as single values.",
            ))
            .item(nothing);
        for resource in Resource::ALL {
            one_of = one_of.item(Self::about(resource));
        }
        one_of.into()
    }
}

impl ToSchema for PermissionQuestion {
    fn name() -> Cow<'static, str> {
        "PermissionQuestion".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_schemas_follow_the_resource_table() {
        let mut schemas = Vec::new();
        Permissions::schemas(&mut schemas);
        let schemas: serde_json::Map<String, serde_json::Value> = schemas
            .into_iter()
            .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap()))
            .collect();
        for resource in Resource::ALL {
            let grant = &schemas[&grant_name(resource)];
            assert_eq!(
                grant["properties"]["resource"]["enum"],
                serde_json::json!([resource.as_str()])
            );
            assert_eq!(
                grant["properties"]["role"]["enum"],
                serde_json::json!(resource.role_names())
            );
            for field in resource.scope_fields() {
                assert!(grant["properties"].get(*field).is_some(), "{field}");
            }
        }
        assert_eq!(grant_name(Resource::ChartGroup), "ChartGroupGrant");
        assert!(schemas.contains_key("Grant") && schemas.contains_key(API_GROUP_PATTERN));
    }

    /// The question's scope table says what `Access::from_fields` needs.
    #[test]
    fn question_scope_is_what_access_reads() {
        for resource in Resource::ALL {
            let role = resource.role_names()[0];
            let scope = question_scope(resource);
            let ask = |leave_out: Option<&str>| {
                Access::from_fields(resource.as_str(), role, |key| {
                    let known = scope.iter().any(|(field, _)| *field == key);
                    (known && Some(key) != leave_out).then_some("x")
                })
            };
            assert!(ask(None).is_ok(), "{resource}");
            for &(field, needed) in scope {
                assert_eq!(ask(Some(field)).is_err(), needed, "{resource}.{field}");
            }
            // Nothing outside the table is read.
            let read = std::cell::RefCell::new(Vec::new());
            let _ = Access::from_fields(resource.as_str(), role, |key| {
                read.borrow_mut().push(key.to_owned());
                Some("x")
            });
            for key in read.into_inner() {
                assert!(
                    scope.iter().any(|(f, _)| *f == key),
                    "{resource} reads {key}"
                );
            }
        }
    }
}
