//! The command line, black box: keys, verify and inspect (`cli`), the token commands on the
//! embedded store (`cli_token`), the same commands through a server (`cli_remote`), plain-date
//! expiries, "not found", last use and the lock's way round (`cli_token_details`), and the
//! exit-code rule, row by row (`exit_codes`).

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod cli_keys_rotation;
mod cli_remote;
mod cli_token;
mod cli_token_details;
mod exit_codes;
