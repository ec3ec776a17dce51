//! The command line, black box: keys, verify and inspect (`cli`), the token commands on the
//! embedded store (`cli_token`), the same commands through a server (`cli_remote`), and the
//! exit-code rule, row by row (`exit_codes`).

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod cli_remote;
mod cli_token;
mod exit_codes;
