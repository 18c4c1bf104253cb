//! Ground-floor I/O: the per-shard io_uring ring (segment writes, splice) and
//! zero-copy sends. With `runtime/`, the only places that use `unsafe`.

pub mod durable;
pub mod ring;
pub mod sys;
pub mod zero_copy;
