//! Scope patterns: `*`, `prefix*` or an exact value.

use super::*;

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
    pub(super) fn check(&self, allow_empty: bool) -> Result<(), PermissionError> {
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
