//! Where a token comes from: the command-line argument, `TESSERA_TOKEN` (both through clap),
//! or stdin when the argument is omitted or `-`. Reading stdin keeps the token out of shell
//! history and out of `ps`. The token text is never echoed, not even in an error.

use super::report::{eprint_line, Failure};
use std::io::{self, IsTerminal as _, Read as _};

/// The most bytes read from stdin: far more than any token (4 KiB), so a longer input is still
/// refused as too long rather than cut to a valid-looking prefix.
const MAX_INPUT: u64 = 64 * 1024;

/// The token to work on: the argument unless it is absent or `-`, else stdin. Surrounding
/// whitespace (a trailing newline from `echo` or a file) is dropped.
pub(crate) fn token(arg: Option<&str>) -> Result<String, Failure> {
    let text = match arg {
        Some(arg) if arg != "-" => arg.trim().to_owned(),
        _ => from_stdin()?,
    };
    if text.is_empty() {
        return Err(Failure::new("no token given")
            .hint("pass it on stdin (`< token.txt`), as an argument, or in TESSERA_TOKEN"));
    }
    Ok(text)
}

fn from_stdin() -> Result<String, Failure> {
    let stdin = io::stdin();
    let unreadable =
        |e: io::Error| Failure::new(format_args!("cannot read the token from stdin: {e}"));
    let bytes = if stdin.is_terminal() {
        eprint_line("paste the token, then press Enter:");
        let mut line = String::new();
        stdin.read_line(&mut line).map_err(unreadable)?;
        line.into_bytes()
    } else {
        let mut bytes = Vec::new();
        stdin
            .lock()
            .take(MAX_INPUT)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        bytes
    };
    // Bytes that are not UTF-8 become U+FFFD, which no token contains: the token is then
    // refused as malformed like any other garbage.
    Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
}
