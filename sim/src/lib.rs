//! # aci-sim
//!
//! A deterministic fleet simulator for aci-cache. Every instance runs the real
//! engine and the real near-cache logic ([`aci_cache::instance::Instance`], the
//! code the blocking and async caches run) against a simulated Redis, with a
//! virtual clock and one seeded random stream: the same seed gives the same
//! run, bit for bit, in a fraction of the time the real thing would take.
//!
//! The simulated Redis is not a [`Transport`](aci_cache::transports::Transport):
//! that trait is blocking and lives in real time, while here every request
//! and reply is an event on the virtual clock, so that a reply can be
//! overtaken by an invalidation, or a message lost, exactly when a seed says.
//! The instances are driven through the same sans-IO [`Instance`](aci_cache::instance::Instance)
//! calls the blocking and async caches make around their transports.
//! Faults are one struct ([`faults::Faults`]) applied by the link model; the
//! same struct, applied by [`faulty::FaultyTransport`] around any real
//! transport (Redis included), puts a real cache through the same faults in
//! real time.
//!
//! It answers two questions: what adaptivity does to a given traffic (stale
//! reads vs messages, [`compare`](scenario::compare)), and whether the
//! invariants of the design hold under faults no real test can schedule
//! (message loss, duplication, partitions, a crashing controller). The fleet
//! elects its controller through the simulated Redis's lease, as the library
//! does by default; the run checks that two instances never act as
//! controller at once and measures how long a crashed one takes to replace.
//!
//! ```
//! use aci_sim::scenario::{self, Scenario};
//! let mut config = scenario::config(Scenario::Ramp, 7, 3, aci_core::Duration::from_secs(120));
//! let obs = aci_sim::Sim::new(config.clone())?.run(|_| {})?;
//! assert_eq!(obs.violation_count, 0, "{:?}", obs.violations);
//! // Same seed, same run.
//! assert_eq!(aci_sim::Sim::new(config)?.run(|_| {})?.trace_hash, obs.trace_hash);
//! # Ok::<(), aci_sim::SimError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod faults;
pub mod faulty;
pub mod observe;
pub mod report;
pub mod rng;
pub mod scenario;
mod server;
mod sim;
mod slab;
pub mod svg;
pub mod tune;
pub mod units;
pub mod workload;

pub use config::{CacheParams, Cluster, Policy, SimConfig};
pub use observe::Observations;
pub use sim::{Sim, SimError, MAX_COST, MAX_INSTANCES};
