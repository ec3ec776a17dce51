//! The command line, black box: keys, verify and inspect (`cli`), the token commands on the
//! embedded store (`cli_token`), and the same commands through a server (`cli_remote`).

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod cli_remote;
mod cli_token;
