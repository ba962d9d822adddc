//! Placeholder for the transports of aci-cache: the `Transport` trait, the
//! Redis implementation (feature `redis`) and an in-memory one. They arrive
//! with the drop-in cache; until then this crate only reserves its place in
//! the workspace so the layout of `DESIGN.md` holds.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The wire-format version of the engine these transports carry.
pub use aci_core::wire;
