//! The token stores: every lifecycle rule on each backend (`store_conformance`), the Redis
//! store itself (`redis_store`), on a cluster (`redis_cluster`), with replicas and under Sentinel
//! (`redis_failover`; what a failover loses is measured by `benches/failover_loss.rs`), the
//! embedded store killed mid-write (`embedded_crash`), and a state mirror whose Redis goes
//! away (`mirror_faults`).

#[path = "../support/mod.rs"]
mod support;

mod delivery;
mod embedded_crash;
mod mirror_faults;
mod outbox_conformance;
mod redis_cluster;
mod redis_failover;
mod redis_store;
mod store_conformance;
