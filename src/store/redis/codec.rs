//! How values are written to and read from Redis: JSON records, revisions, stream ids.

use super::*;

pub(super) fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

pub(super) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(super) fn parse_revision(key: &str, value: Option<String>) -> Result<u64, StoreError> {
    match value {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("{key} holds {v:?}, not a revision"))),
    }
}

/// A stored last use: `<milliseconds> <JSON>`.
pub(super) fn decode_usage(raw: &[u8]) -> Result<Usage, StoreError> {
    let json = raw
        .iter()
        .position(|&b| b == b' ')
        .map(|at| &raw[at + 1..])
        .ok_or_else(|| StoreError::Corrupt("a last-use entry has no time prefix".into()))?;
    decode("last-use entry", json)
}

/// The revision in a feed entry id `<revision>-0`.
pub(super) fn parse_stream_id(key: &str, id: &str) -> Result<u64, StoreError> {
    id.strip_suffix("-0")
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{key} holds entry {id}, not <revision>-0")))
}

/// The change a feed entry holds.
pub(super) fn feed_value(
    key: &str,
    item: &redis::streams::StreamId,
) -> Result<FeedValue, StoreError> {
    match item.map.get("change") {
        Some(Value::BulkString(bytes)) => decode("feed entry", bytes),
        _ => Err(StoreError::Corrupt(format!(
            "feed entry {} in {key} has no change",
            item.id
        ))),
    }
}

pub(super) fn parse_u64(what: &str, s: Option<&String>) -> Result<u64, StoreError> {
    s.and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: unexpected reply {s:?}")))
}
