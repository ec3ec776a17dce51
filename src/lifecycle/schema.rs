//! The OpenAPI schemas of the strings the lifecycle checks (feature `server`): names,
//! descriptions and expiries travel as plain strings, so these marker types carry their rules
//! into `/openapi.json`, from the same constants the checks use.

use super::*;
use std::borrow::Cow;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// A token name, as [`validate_name`] accepts it.
pub struct TokenName;

impl PartialSchema for TokenName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(NAME_MIN))
            .max_length(Some(NAME_MAX))
            .pattern(Some("^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$"))
            .description(Some(format!(
                "{NAME_MIN} to {NAME_MAX} lowercase letters, digits, `-` and `_`, starting and \
                 ending with a letter or digit; unique among live tokens."
            )))
            .into()
    }
}

impl ToSchema for TokenName {
    fn name() -> Cow<'static, str> {
        "TokenName".into()
    }
}

/// A description, as [`validate_description`] accepts it.
pub struct Description;

impl PartialSchema for Description {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(DESCRIPTION_MAX))
            .pattern(Some("^[^\\u0000-\\u0009\\u000B-\\u001F\\u007F-\\u009F]*$"))
            .description(Some(format!(
                "At most {DESCRIPTION_MAX} characters; no control characters but new lines."
            )))
            .into()
    }
}

impl ToSchema for Description {
    fn name() -> Cow<'static, str> {
        "Description".into()
    }
}

/// An expiry, as [`Expiry`]'s `FromStr` reads it.
pub struct Expires;

impl PartialSchema for Expires {
    fn schema() -> RefOr<Schema> {
        let mut presets: Vec<String> = EXPIRY_DAYS.iter().map(|d| format!("{d}d")).collect();
        presets.push("never".to_owned());
        AnyOfBuilder::new()
            .description(Some(
                "A preset lifetime, `never`, or a future RFC 3339 time.",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(presets)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .examples(["30d"])
            .into()
    }
}

impl ToSchema for Expires {
    fn name() -> Cow<'static, str> {
        "Expires".into()
    }
}

/// A token's networks, as [`crate::CidrList`] reads them.
pub struct AllowedCidrs;

impl PartialSchema for AllowedCidrs {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(2))
                    .max_length(Some(64))
                    .examples(["10.0.0.0/8"]),
            )
            .max_items(Some(crate::cidr::MAX_CIDRS))
            .description(Some(format!(
                "The networks the token may be used from: IPv4 and IPv6 addresses or CIDRs \
                 (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or /128), at most {}. \
                 Stored normalized: host bits cleared, duplicates removed, sorted. Empty: \
                 anywhere. An IPv4-mapped IPv6 client address matches IPv4 networks.",
                crate::cidr::MAX_CIDRS
            )))
            .into()
    }
}

impl ToSchema for AllowedCidrs {
    fn name() -> Cow<'static, str> {
        "AllowedCidrs".into()
    }
}
