//! `tessera serve` as real processes: several instances sharing a Redis and an edge following an
//! issuer (`serve_processes`), behind real gateways from their recipes (`gateways`), and
//! delivering webhook events across a crash (`webhook_delivery`).

#[path = "../support/mod.rs"]
mod support;

mod gateways;
mod key_rotation;
mod safe_admin;
mod serve_processes;
mod webhook_delivery;
