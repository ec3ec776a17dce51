//! Schemas written by hand: bodies whose JSON a derive cannot describe (a `oneOf` chosen by a
//! field's value, a field present only when true), the records of the store as the API shows
//! them, and the small schemas of headers and constant fields.

use super::super::state_feed::{ChangesBody, SnapshotBody};
use super::super::verify::{TokenView, VerifyAnswer};
use crate::keys::KeyStatus;
use crate::lifecycle::AllowedCidrs;
use crate::model::{Action, AuditRecord, StateRecord};
use crate::permissions::{constant, Permissions};
use crate::verifier::Reason;
use std::borrow::Cow;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, Object, ObjectBuilder,
    OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

type Schemas = Vec<(String, RefOr<Schema>)>;

/// A string; `ObjectBuilder::new()` alone is an object.
fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn format(format: KnownFormat) -> Option<SchemaFormat> {
    Some(SchemaFormat::KnownFormat(format))
}

fn time() -> ObjectBuilder {
    string().format(format(KnownFormat::DateTime))
}

/// The type, or `null`.
fn or_null(kind: Type) -> SchemaType {
    SchemaType::from_iter([kind, Type::Null])
}

/// Whole objects only: no field but those described.
fn closed() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

/// A value that is a JSON value of itself (`Serialize`), for an `enum`.
fn wire<T: serde::Serialize>(value: T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// `ETag`: a record revision, quoted.
pub struct ETag;

impl PartialSchema for ETag {
    fn schema() -> RefOr<Schema> {
        string().pattern(Some("^\"[0-9]+\"$")).into()
    }
}

impl ToSchema for ETag {}

/// `Cache-Control: no-store`.
pub struct NoStore;

impl PartialSchema for NoStore {
    fn schema() -> RefOr<Schema> {
        constant("no-store").into()
    }
}

impl ToSchema for NoStore {}

/// `/healthz`'s `status`.
pub fn status_ok() -> Object {
    constant("ok").build()
}

/// `/readyz`'s `status`.
pub fn status_ready() -> Object {
    constant("ready").build()
}

/// A key's status, as `/v1/keys` writes it (its `Display`). Retired keys are not published.
pub fn key_status() -> Object {
    // The match fails to compile when a status is added, so the list below stays complete.
    match KeyStatus::Signing {
        KeyStatus::Staged | KeyStatus::Signing | KeyStatus::Active | KeyStatus::VerifyOnly => {}
        KeyStatus::Retired => {}
    }
    let all = [
        KeyStatus::Staged,
        KeyStatus::Signing,
        KeyStatus::Active,
        KeyStatus::VerifyOnly,
    ];
    string()
        .enum_values(Some(all.iter().map(ToString::to_string)))
        .build()
}

/// `/openapi.json` itself.
pub struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Object).into()
    }
}

impl ToSchema for OpenApiDocument {}

impl PartialSchema for AuditRecord {
    fn schema() -> RefOr<Schema> {
        match Action::Create {
            Action::Create
            | Action::Update
            | Action::Regenerate
            | Action::Delete
            | Action::Revoked
            | Action::Leaked => {}
        }
        let actions = [
            Action::Create,
            Action::Update,
            Action::Regenerate,
            Action::Delete,
            Action::Revoked,
            Action::Leaked,
        ];
        let fields = [
            (
                "seq",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            ),
            ("at", time()),
            (
                "actor",
                string().description(Some(
                    "`token:<id>` for a token holder, `local:<user>` for an operator on the \
                     store's machine, `leak-report` for a leak report.",
                )),
            ),
            ("action", string().enum_values(Some(actions.map(wire)))),
            (
                "target",
                ObjectBuilder::new()
                    .schema_type(or_null(Type::String))
                    .format(format(KnownFormat::Uuid)),
            ),
            (
                "target_name",
                ObjectBuilder::new().schema_type(or_null(Type::String)),
            ),
            (
                "outcome",
                string().description(Some("`ok` or the refusal's code.")),
            ),
            (
                "from",
                ObjectBuilder::new().schema_type(or_null(Type::String)),
            ),
        ];
        fields
            .into_iter()
            .fold(closed(), |object, (name, schema)| {
                object.property(name, schema).required(name)
            })
            .property(
                "note",
                string().description(Some(
                    "More about the action: for `leaked`, where the report says the token was \
                     found.",
                )),
            )
            .into()
    }
}

impl ToSchema for AuditRecord {
    fn name() -> Cow<'static, str> {
        "AuditEntry".into()
    }
}

impl PartialSchema for StateRecord {
    fn schema() -> RefOr<Schema> {
        closed()
            .description(Some(
                "Why a token's signed claims are no longer the whole truth.",
            ))
            .property(
                "deleted",
                constant(true)
                    .description(Some("Every version is rejected (absent when not deleted).")),
            )
            .property(
                "min_ver",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .description(Some(
                        "Versions below this are rejected (absent when none are).",
                    )),
            )
            .property(
                "perm",
                Ref::builder()
                    .ref_location_from_schema_name(Permissions::name())
                    .description(Some(
                        "Permissions that replace the signed ones (absent when none do).",
                    )),
            )
            .property(
                "cidr",
                Ref::builder()
                    .ref_location_from_schema_name(AllowedCidrs::name())
                    .description(Some(
                        "Networks that replace the signed ones (absent when none do; empty: \
                         anywhere).",
                    )),
            )
            .property(
                "drop_after",
                ObjectBuilder::new()
                    .schema_type(or_null(Type::String))
                    .format(format(KnownFormat::DateTime))
                    .description(Some("When the entry may be dropped; `null`: never.")),
            )
            .required("drop_after")
            .into()
    }
}

impl ToSchema for StateRecord {
    fn name() -> Cow<'static, str> {
        "StateEntry".into()
    }

    fn schemas(schemas: &mut Schemas) {
        schemas.push((Permissions::name().into(), Permissions::schema()));
        Permissions::schemas(schemas);
        schemas.push((AllowedCidrs::name().into(), AllowedCidrs::schema()));
    }
}

impl PartialSchema for ChangesBody {
    fn schema() -> RefOr<Schema> {
        let change = closed()
            .property(
                "revision",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            )
            .property("id", string().format(format(KnownFormat::Uuid)))
            .property(
                "tag",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .description(Some(
                        "The change's random tag; a follower passes the last one it applied \
                         as `tag`, with `since`.",
                    )),
            )
            .property(
                "entry",
                AnyOfBuilder::new()
                    .item(Ref::from_schema_name(StateRecord::name()))
                    .item(ObjectBuilder::new().schema_type(Type::Null))
                    .description(Some("`null`: the entry was dropped.")),
            )
            .required("revision")
            .required("id")
            .required("tag")
            .required("entry");
        let changes = closed()
            .title(Some("Changes"))
            .property(
                "changes",
                ArrayBuilder::new().items(change).description(Some(
                    "The changes after `since`, in revision order, without gaps; empty when \
                     none came in the wait.",
                )),
            )
            .required("changes");
        let reload = closed()
            .title(Some("Reload"))
            .property("reload", constant(true))
            .required("reload");
        OneOfBuilder::new().item(changes).item(reload).into()
    }
}

impl ToSchema for ChangesBody {
    fn name() -> Cow<'static, str> {
        "StateChanges".into()
    }

    fn schemas(schemas: &mut Schemas) {
        schemas.push((StateRecord::name().into(), StateRecord::schema()));
        StateRecord::schemas(schemas);
    }
}

/// `/v1/state`'s answer: the snapshot or the changes.
pub struct SnapshotOrChanges;

impl PartialSchema for SnapshotOrChanges {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(SnapshotBody::name()))
            .item(Ref::from_schema_name(ChangesBody::name()))
            .into()
    }
}

impl ToSchema for SnapshotOrChanges {
    fn schemas(schemas: &mut Schemas) {
        schemas.push((SnapshotBody::name().into(), SnapshotBody::schema()));
        SnapshotBody::schemas(schemas);
        schemas.push((ChangesBody::name().into(), ChangesBody::schema()));
        ChangesBody::schemas(schemas);
    }
}

impl PartialSchema for VerifyAnswer<'_> {
    fn schema() -> RefOr<Schema> {
        let mut reasons = Reason::ALL.map(Reason::code).to_vec();
        reasons.push(crate::server::error::ADDRESS_NOT_ALLOWED);
        let refused = closed()
            .title(Some("Refused"))
            .property("valid", constant(false))
            .property(
                "code",
                string().enum_values(Some(reasons)).description(Some(
                    "Why the token was refused; `address_not_allowed`: it is valid, but bound \
                     to networks that do not hold the client address (`client_ip`, or the \
                     caller's own).",
                )),
            )
            .required("valid")
            .required("code");
        let valid = closed()
            .title(Some("Valid"))
            .property("valid", constant(true))
            .property(
                "code",
                string()
                    .enum_values(Some(["ok", "forbidden"]))
                    .description(Some(
                        "`forbidden` when the required permission is not allowed.",
                    )),
            )
            .property("token", Ref::from_schema_name(TokenView::name()))
            .property(
                "allowed",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .description(Some("Present when a permission was required.")),
            )
            .required("valid")
            .required("code")
            .required("token");
        OneOfBuilder::new().item(refused).item(valid).into()
    }
}

impl ToSchema for VerifyAnswer<'_> {
    fn name() -> Cow<'static, str> {
        "VerifyResult".into()
    }

    fn schemas(schemas: &mut Schemas) {
        schemas.push((TokenView::name().into(), TokenView::schema()));
        TokenView::schemas(schemas);
    }
}
