//! Output and failure plumbing shared by every command: the [`Failure`] that ends a command
//! (exit 2, or 1 for invalid input), exit codes, writing to stdout and stderr without
//! panicking on a closed pipe, making untrusted text safe for a terminal, redacting tokens and secret keys from text we
//! did not write, and showing times.

use crate::keys::KeyError;
use chrono::{DateTime, Utc};
use std::fmt::Display;
use std::io::{self, Write as _};
use std::process::ExitCode;

/// Exit code: refused by the rules (a token refused by verification, not allowed, or a
/// request the token rules refuse) or invalid input (a name, permissions, an expiry, a token
/// that does not exist).
pub(crate) const EXIT_REFUSED: u8 = 1;
/// Exit code: usage (a clap error), configuration, or an unreachable store or server.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Which exit code a [`Failure`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Usage, configuration, or a store or server out of reach: exit 2.
    Usage,
    /// Input the rules refuse (a bad name, permissions, expiry, an unknown token): exit 1,
    /// like a refusal by the rules.
    Invalid,
}

/// A command that could not do its work: bad flags, a missing key folder, an unreadable file,
/// an unreachable store ([`Kind::Usage`], exit 2), or input the rules refuse
/// ([`Kind::Invalid`], exit 1). Reported as `error: ...` (and `hint: ...`) on stderr. The
/// message never holds a token or key material.
#[derive(Debug)]
pub(crate) struct Failure {
    kind: Kind,
    message: String,
    hint: Option<String>,
}

impl Failure {
    /// A usage or configuration failure (exit 2) with this message.
    pub(crate) fn new(message: impl Display) -> Self {
        Self {
            kind: Kind::Usage,
            message: message.to_string(),
            hint: None,
        }
    }

    /// Invalid input (exit 1) with this message.
    pub(crate) fn invalid(message: impl Display) -> Self {
        Self {
            kind: Kind::Invalid,
            ..Self::new(message)
        }
    }

    /// Add a hint line.
    pub(crate) fn hint(mut self, hint: impl Display) -> Self {
        self.hint = Some(hint.to_string());
        self
    }

    /// Which exit code this failure gives.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// The message, as given (not yet cleaned or redacted).
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The exit code: 1 for invalid input, 2 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Invalid => EXIT_REFUSED,
            Kind::Usage => EXIT_USAGE,
        }
    }

    /// Print to stderr and give the exit code.
    pub(crate) fn report(&self) -> ExitCode {
        // A message may quote what was typed (`--require`), and that may be a token pasted in
        // the wrong place.
        eprint_line(format_args!("error: {}", clean(&redact(&self.message))));
        if let Some(hint) = &self.hint {
            eprint_line(format_args!("hint: {}", clean(&redact(hint))));
        }
        ExitCode::from(self.exit_code())
    }
}

impl From<KeyError> for Failure {
    fn from(e: KeyError) -> Self {
        // Key errors name the file and say what to do; none contains key material. A key that
        // does not exist, or a step the rotation rules refuse, is a refusal (exit 1).
        match e {
            KeyError::NoSuchKey { .. } | KeyError::Refused(_) => Self::invalid(e),
            _ => Self::new(e),
        }
    }
}

/// Text collected for stdout and written in one go at the end.
#[derive(Debug, Default)]
pub(crate) struct Out(String);

impl Out {
    /// Append one line.
    pub(crate) fn line(&mut self, text: impl Display) {
        self.0.push_str(&text.to_string());
        self.0.push('\n');
    }

    /// Write everything to stdout. A closed pipe (`tessera keys list | head -1`) is not an
    /// error; any other write failure is.
    pub(crate) fn emit(self) -> Result<(), Failure> {
        let mut stdout = io::stdout().lock();
        match stdout
            .write_all(self.0.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(Failure::new(format_args!("cannot write to stdout: {e}"))),
        }
    }
}

/// Write one line to stderr; a failure to write there has nowhere to be reported.
pub(crate) fn eprint_line(text: impl Display) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// Make text we did not write (token contents, library messages quoting them) safe to print
/// on a terminal: control characters other than newline, including C1 controls and DEL,
/// become `\u{..}` escapes, so no escape sequence reaches the terminal.
pub(crate) fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Replace anything that looks like a token (`v4.public.`, `v4.local.`) or a secret key
/// (`k4.secret.`, `k4.local.`) with a placeholder. Applied to text that may quote what the
/// user typed, such as clap's "unexpected argument" errors.
pub(crate) fn redact(text: &str) -> String {
    const SECRETS: [&str; 4] = ["v4.public.", "v4.local.", "k4.secret.", "k4.local."];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) = SECRETS
        .iter()
        .filter_map(|p| rest.find(p).map(|at| (at, *p)))
        .min_by_key(|&(at, _)| at)
    {
        out.push_str(&rest[..at]);
        out.push_str(prefix);
        out.push_str("[REDACTED]");
        let tail = &rest[at + prefix.len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=')))
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A time as RFC 3339, whole seconds, `Z`.
pub(crate) fn time(at: &DateTime<Utc>) -> String {
    crate::claims::format_time(at)
}

/// How far `at` is from `now`, in words, to the nearest unit: `in 29 days`, `3 hours ago`,
/// `now`. Nearest rather than down, so a 90-day token made a moment ago reads `in 90 days`, and
/// two readings a second apart agree.
pub(crate) fn relative(at: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let secs = at.timestamp().saturating_sub(now.timestamp());
    let abs = secs.unsigned_abs();
    if abs < 5 {
        return "now".to_owned();
    }
    let nearest = |unit: u64| (abs + unit / 2) / unit;
    let (n, unit) = match abs {
        0..60 => (abs, "second"),
        60..3_600 => (nearest(60), "minute"),
        3_600..86_400 => (nearest(3_600), "hour"),
        _ => (nearest(86_400), "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if secs > 0 {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// A time with how far it is from now, e.g. `2026-12-28T01:02:03Z (in 30 days)`.
pub(crate) fn time_and_relative(at: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    format!("{} ({})", time(at), relative(at, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            clean("a\u{1b}[31mb\nc\u{9b}d\u{7f}"),
            "a\\u{001b}[31mb\nc\\u{009b}d\\u{007f}"
        );
    }

    #[test]
    fn tokens_and_secret_keys_are_redacted() {
        let text =
            "unexpected argument 'v4.public.eyJhYmMi.eyJraWQiOiJr' found; k4.secret.AAAA_b-c end";
        assert_eq!(
            redact(text),
            "unexpected argument 'v4.public.[REDACTED]' found; k4.secret.[REDACTED] end"
        );
        assert_eq!(redact("k4.public.AAAA"), "k4.public.AAAA");
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap_or_default();
        let at = |secs: i64| DateTime::from_timestamp(1_000_000 + secs, 0).unwrap_or_default();
        assert_eq!(relative(&at(2), &now), "now");
        assert_eq!(relative(&at(30), &now), "in 30 seconds");
        assert_eq!(relative(&at(-3_600), &now), "1 hour ago");
        assert_eq!(relative(&at(86_400 * 29 + 5), &now), "in 29 days");
        assert_eq!(relative(&at(86_400 * 90 - 1), &now), "in 90 days");
        assert_eq!(relative(&at(-(3_600 * 2 + 1_799)), &now), "2 hours ago");
    }
}
