//! Placeholder for the deterministic fleet simulator of aci-cache: a virtual
//! clock, a seeded RNG and a simulated Redis driving many real engines. It
//! arrives with its own issue; until then this crate only reserves its place
//! in the workspace so the layout of `DESIGN.md` holds.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The engine the simulator will drive.
pub use aci_core::Engine;
