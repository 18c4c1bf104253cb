//! Ground-floor I/O: the per-shard io_uring ring (DMA segment writes, splice), aligned buffers,
//! zero-copy sends, and hyper's I/O traits over glommio sockets (the admin listener). With `runtime/`, the only places that use `unsafe`.

pub mod aligned;
pub mod durable;
pub mod hyper_io;
pub mod ring;
pub mod sys;
pub mod zero_copy;

/// Tests: runs `f` on a fresh glommio executor and returns its output (small
/// io_memory: tests run side by side under an 8 MiB RLIMIT_MEMLOCK).
#[cfg(test)]
pub(crate) fn run_on_executor<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound).io_memory(64 * 1024).spawn(f).unwrap().join().unwrap()
}
