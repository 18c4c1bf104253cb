//! Command-line tools besides `start`, kept out of `main.rs` so the binary
//! stays a thin clap front.
//!
//! - [`tune`]: `shardlog tune`, host checks (read-only) and their fixes
//!   (`--apply`), after Redpanda's `rpk redpanda tune`.

pub mod tune;
