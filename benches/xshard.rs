//! Hot path guarded: the cross-core hop every request to a partition owned by
//! another shard takes (`xshard/`: request out, response back).
//!
//! This is a channel-level bench of the same primitive, not of the xshard
//! module itself: benching `xshard` directly would need whole `Shard`s. Two
//! glommio 0.9 `LocalExecutor`s pinned to cores 0 and 1, joined by
//! `glommio::channels::shared_channel` bounded channels (the mesh xshard
//! builds), measure
//! - `pingpong/*`: one message out, one back, awaited before the next; the
//!   figure is per round trip, with the receiver parked when idle and with
//!   `spin_before_park(50us)` (config `shard.spin.before.park.us`);
//! - `stream/100k`: 100k messages one way through a 1024-slot channel, one
//!   reply at the end; the figure is per message (batching hops amortises this).
//!
//! Executors are started once per bench and driven from criterion's
//! `iter_custom`, so start-up is not measured. Needs 2 cores.
//!
//! Run: `cargo bench --bench xshard -- --warm-up-time 1 --measurement-time 2`

// Generated code: `criterion_group!` expands to an undocumented `pub fn` (the
// benchmark group), which the workspace's `missing_docs` lint would report.
#![allow(missing_docs)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glommio::channels::shared_channel;
use glommio::{LocalExecutorBuilder, Placement};

/// Slots per channel direction (as `xshard.channel.capacity`, default 1024).
const CHANNEL_CAPACITY: usize = 1024;
/// Messages per streaming iteration.
const STREAM_MESSAGES: u64 = 100_000;
/// glommio io_memory per executor: these executors do no file I/O, and the
/// default (10 MiB) exceeds an 8 MiB RLIMIT_MEMLOCK.
const IO_MEMORY_BYTES: usize = 512 * 1024;
/// Value the echo side does not answer (streaming); every other value is echoed.
const NO_REPLY: u64 = u64::MAX;

enum Cmd {
    PingPong(u64),
    Stream(u64),
}

/// A pinned pair of executors: "ping" on core 0 (driven by commands from the
/// bench thread) and "echo" on core 1.
struct Pair {
    cmd: Option<mpsc::Sender<Cmd>>,
    done: mpsc::Receiver<Duration>,
    joins: Vec<glommio::ExecutorJoinHandle<()>>,
}

impl Pair {
    fn start(spin: Duration) -> Pair {
        let (ping_tx, ping_rx) = shared_channel::new_bounded::<u64>(CHANNEL_CAPACITY);
        let (pong_tx, pong_rx) = shared_channel::new_bounded::<u64>(CHANNEL_CAPACITY);
        let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
        let (done_tx, done_rx) = mpsc::channel::<Duration>();
        let echo = LocalExecutorBuilder::new(Placement::Fixed(1))
            .name("echo")
            .io_memory(IO_MEMORY_BYTES)
            .spin_before_park(spin)
            .spawn(move || async move {
                let rx = ping_rx.connect().await;
                let tx = pong_tx.connect().await;
                while let Some(v) = rx.recv().await {
                    if v != NO_REPLY && tx.send(v).await.is_err() {
                        break;
                    }
                }
            })
            .expect("spawn echo executor on core 1");
        let ping = LocalExecutorBuilder::new(Placement::Fixed(0))
            .name("ping")
            .io_memory(IO_MEMORY_BYTES)
            .spin_before_park(spin)
            .spawn(move || async move {
                let tx = ping_tx.connect().await;
                let rx = pong_rx.connect().await;
                // Blocking here is fine: this executor runs nothing else between commands.
                while let Ok(cmd) = cmd_rx.recv() {
                    let start = Instant::now();
                    match cmd {
                        Cmd::PingPong(n) => {
                            for i in 0..n {
                                tx.send(i).await.expect("echo alive");
                                let v = rx.recv().await.expect("echo alive");
                                debug_assert_eq!(v, i);
                            }
                        }
                        Cmd::Stream(n) => {
                            for _ in 1..n {
                                tx.send(NO_REPLY).await.expect("echo alive");
                            }
                            tx.send(0).await.expect("echo alive");
                            rx.recv().await.expect("echo alive");
                        }
                    }
                    done_tx.send(start.elapsed()).expect("bench thread alive");
                }
            })
            .expect("spawn ping executor on core 0");
        Pair { cmd: Some(cmd_tx), done: done_rx, joins: vec![ping, echo] }
    }

    fn run(&self, cmd: Cmd) -> Duration {
        self.cmd.as_ref().expect("running").send(cmd).expect("ping executor alive");
        self.done.recv().expect("ping executor alive")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Closing the command channel ends "ping", which drops its sender and ends "echo".
        self.cmd = None;
        for j in self.joins.drain(..) {
            let _ = j.join();
        }
    }
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("xshard_channel");
    for (name, spin) in [("pingpong/parked", Duration::ZERO), ("pingpong/spin_50us", Duration::from_micros(50))] {
        let pair = Pair::start(spin);
        pair.run(Cmd::PingPong(100)); // connect and warm both sides
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| b.iter_custom(|iters| pair.run(Cmd::PingPong(iters))));
    }
    let pair = Pair::start(Duration::ZERO);
    pair.run(Cmd::PingPong(100));
    g.throughput(Throughput::Elements(STREAM_MESSAGES));
    g.bench_function("stream/100k", |b| b.iter_custom(|iters| (0..iters).map(|_| pair.run(Cmd::Stream(STREAM_MESSAGES))).sum()));
    g.finish();
}

criterion_group!(xshard, benches);
criterion_main!(xshard);
