//! `tessera serve` as real processes: several instances sharing a Redis and an edge following an
//! issuer (`serve_processes`), and behind real gateways from their recipes (`gateways`).

#[path = "../support/mod.rs"]
mod support;

mod gateways;
mod key_rotation;
mod safe_admin;
mod serve_processes;
