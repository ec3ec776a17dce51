//! The rules for names and descriptions.

use super::*;

pub(super) fn invalid(field: &'static str, message: impl Into<String>) -> LifecycleError {
    LifecycleError::Invalid {
        field,
        message: message.into(),
    }
}

/// Check a token name against the rules.
pub fn validate_name(name: &str) -> Result<(), LifecycleError> {
    let len = name.chars().count();
    let shape = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok_len = (NAME_MIN..=NAME_MAX).contains(&len);
    let ok_chars = name.chars().all(|c| shape(c) || c == '-' || c == '_');
    let ok_ends = name.starts_with(shape) && name.ends_with(shape);
    if ok_len && ok_chars && ok_ends {
        return Ok(());
    }
    Err(invalid(
        "name",
        format!(
            "{:?} is not a valid name: use {NAME_MIN} to {NAME_MAX} lowercase letters, digits, \
             '-' and '_', starting and ending with a letter or digit",
            crate::permissions::shorten(name)
        ),
    ))
}

/// Check a description against the rules.
pub fn validate_description(description: &str) -> Result<(), LifecycleError> {
    let len = description.chars().count();
    if len > DESCRIPTION_MAX {
        return Err(invalid(
            "description",
            format!("{len} characters is too long: at most {DESCRIPTION_MAX}"),
        ));
    }
    if description.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(
            "description",
            "control characters are not allowed (new lines are)",
        ));
    }
    Ok(())
}
