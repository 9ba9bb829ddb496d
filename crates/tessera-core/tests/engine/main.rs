//! The engine's rules tested inside `tessera-core`: over a plain in-memory store
//! ([`support`]) with a clock that moves only when told, so each test is fast and exact at
//! the boundaries, and `cargo mutants -p tessera-core` measures what these tests catch (see
//! `docs/reliability.md`, "Mutation testing").
//!
//! One test binary, one module per concern:
//!
//! - `refresh`: refresh-token chains — rotation, the grace window, theft, introspection.
//! - `access`: the session behind an access token — idle and absolute expiry.
//! - `cache`: the session cache — capacity, sweeping, revocations, a slow miss racing one.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod cache;
mod refresh;
mod support;
