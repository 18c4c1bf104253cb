//! The only place that builds glommio executors: one pinned `LocalExecutor`
//! per configured core, each running one shard. Start-up order matters and is
//! commented where it happens.

pub mod exclusive;
pub mod nofile;

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{Config, ShardCores};
use crate::coordinator::Coordinators;
use crate::handlers::Ctx;
use crate::io::ring::Ring;
use crate::log::CLEAN_SHUTDOWN_FILE;
use crate::metadata::log::MetadataLog;
use crate::metadata::ShardPlacement;
use crate::shard::offline::{descriptors_reserved, OfflinePartitions};
use crate::shard::Shard;
use crate::xshard::{self, XShard};

/// Start-up failures worth a clear message.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A file or socket operation of start-up failed (log dir, listener, eventfds).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A shard's executor could not start (pinning, io_uring, binding): its index and why.
    #[error("shard {0} failed to start: {1}")]
    Shard(usize, String),
    /// Another process holds the log dir (see [`exclusive`]).
    #[error("cannot lock {}: the log dir is in use by another shardlog process{}", .lock.display(), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    LogDirLocked {
        /// The lock file in the log dir.
        lock: PathBuf,
        /// The holder's pid, when the lock file names one.
        pid: Option<u32>,
    },
    /// A cluster node's data directory is not formatted for it (see
    /// [`crate::metadata::meta_properties::check_formatted`]).
    #[error("{0}")]
    Storage(#[from] crate::metadata::meta_properties::FormatError),
    /// Another process serves the listener port (see [`exclusive`]).
    #[error("port {port} is already served by another process: {why}")]
    PortInUse {
        /// The listener port.
        port: u16,
        /// What the probe found (who answered, or the bind error).
        why: String,
    },
}

/// Cores to run shards on.
pub fn shard_cores(cfg: &Config) -> Vec<usize> {
    match &cfg.shard_cores {
        ShardCores::List(c) => c.clone(),
        ShardCores::All => {
            let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            (0..n).collect()
        }
    }
}

/// glommio pins io_memory with mlock: raise the soft RLIMIT_MEMLOCK to the hard limit
/// when allowed, and cap io_memory so all shards fit. Returns io_memory per shard.
fn fit_io_memory(cfg: &Config, shards: usize) -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) == 0 {
                tracing::info!(limit = lim.rlim_max, "raised RLIMIT_MEMLOCK soft limit to the hard limit");
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    let budget = if lim.rlim_cur == libc::RLIM_INFINITY { usize::MAX } else { lim.rlim_cur as usize };
    // Leave half of the limit for the shards' own io_uring rings.
    let per_shard = (budget / 2 / shards.max(1)).min(cfg.shard_io_memory_bytes);
    let io_memory = per_shard.max(64 * 1024);
    tracing::info!(io_memory, memlock = budget, shards, "glommio io_memory per shard set within RLIMIT_MEMLOCK");
    io_memory
}

/// One eventfd per shard, written by the SIGTERM/SIGINT handler.
fn stop_eventfds(n: usize) -> std::io::Result<Vec<RawFd>> {
    let fds: Vec<RawFd> = (0..n)
        // SAFETY: plain syscall; each fd is handed to one shard.
        .map(|_| unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })
        .collect();
    if fds.iter().any(|&f| f < 0) {
        return Err(std::io::Error::last_os_error());
    }
    let targets = fds.clone();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let t = targets.clone();
        // SAFETY: the handler only calls write(2), which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                for &fd in &t {
                    let one: u64 = 1;
                    libc::write(fd, &one as *const u64 as *const libc::c_void, 8);
                }
            })?;
        }
    }
    Ok(fds)
}

/// Runs the broker until SIGTERM/SIGINT; returns after a clean stop.
pub fn run(cfg: Config) -> Result<(), StartError> {
    let cores = shard_cores(&cfg);
    let n = cores.len();
    // 0. Exclusive use of the log dir and the port before anything in the dir is
    //    read or written: a second broker must leave the first one's data alone.
    //    Both are held until this function returns (the process exits).
    std::fs::create_dir_all(&cfg.log_dir)?;
    let _log_dir_lock = exclusive::lock_log_dir(&cfg.log_dir)?;
    //    A cluster node only starts on a directory `shardlog storage format` made
    //    for it (a single node, without voters, writes its own meta.properties).
    let cluster_id =
        if cfg.is_cluster() { Some(crate::metadata::meta_properties::check_formatted(&cfg.log_dir, cfg.broker_id, None)?.cluster_id) } else { None };
    // A controller-only node (`process.roles=controller`) serves no clients:
    // no client listener, no port claim; its shards run and wait for the stop.
    let serves_clients = cfg.process_roles.broker;
    if serves_clients {
        exclusive::check_port_not_served(cfg.listener)?;
    }
    // 1. Data dir and crash detection first: the clean-shutdown marker decides
    //    whether active segments get full CRC recovery. It is removed before any
    //    shard starts, so a crash during start-up still means "recover" next time.
    let marker = cfg.log_dir.join(CLEAN_SHUTDOWN_FILE);
    let recover = !marker.exists();
    let _ = std::fs::remove_file(&marker);
    if recover {
        tracing::info!("no clean-shutdown marker: active segments will be validated by CRC");
    }
    // Metadata: replay the log (migrating a legacy image), then fit this broker's
    // placement of partitions on shards to the image and the shard count.
    // A cluster node's metadata is the Raft quorum's log instead (cluster/).
    let mut cluster_boot = None;
    let (metadata_log, image, legacy) = match cluster_id {
        Some(id) => {
            let boot = crate::cluster::boot::open(&cfg, id)?;
            let image = boot.image.clone();
            cluster_boot = Some(boot);
            (None, image, None)
        }
        None => {
            let (log, image, legacy) = MetadataLog::open(&cfg.log_dir, cfg.broker_id, cfg.metadata_log_max_record_bytes_between_snapshots)?;
            (Some(log), image, legacy)
        }
    };
    let migrated = legacy.is_some();
    let (placement, placement_changed) = ShardPlacement::at_start(&cfg.log_dir, &image, n, cfg.broker_id, legacy)?;
    if placement_changed {
        placement.save_at_start(&cfg.log_dir)?;
        tracing::info!(shards = n, per_shard = ?placement.partitions_per_shard(), "partitions placed on shards");
    }
    if migrated {
        MetadataLog::finish_migration(&cfg.log_dir)?;
    }
    let image = Arc::new(image);
    let placement = Arc::new(placement);
    let mut metadata_log = metadata_log;
    crate::coordinator::warn_partition_count_mismatch(&cfg, &image);
    // 2. Resolve port 0 once, so every shard's SO_REUSEPORT listener joins one
    //    port, and claim that port among shardlog brokers (exclusive.rs).
    //    (Not on a controller-only node: `client` stays None.)
    let (probe, bound, _port_claim) = if serves_clients {
        let probe = socket2::Socket::new(socket2::Domain::for_address(cfg.listener), socket2::Type::STREAM, None)?;
        probe.set_reuse_port(true)?;
        probe.set_reuse_address(true)?;
        probe.bind(&cfg.listener.into()).map_err(|e| exclusive::bind_error(cfg.listener, e))?;
        let bound: SocketAddr = probe.local_addr()?.as_socket().ok_or_else(|| std::io::Error::other("listener is not an IP socket"))?;
        let claim = exclusive::claim_port(bound.port())?;
        (Some(probe), Some(bound), Some(claim))
    } else {
        (None, None, None)
    };
    // What the shards' Metadata would advertise (a controller-only node advertises nothing).
    let shown = bound.unwrap_or(cfg.listener);
    // Descriptors before the shards open their logs: raise the limit, estimate
    // the need from the data dir, and keep some free for connections.
    let nofile = nofile::raise_nofile();
    let parts = nofile::startup_partitions(&image, &cfg.log_dir);
    nofile::check_need(&nofile, &nofile::NofileNeed::of_partitions(&parts, n, nofile.soft));
    let offline = Arc::new(OfflinePartitions::new(descriptors_reserved(nofile.soft)));
    // The partitions past the budget stay offline from the start (the shards
    // skip them), so which ones open does not depend on which shard is first.
    let budget = nofile::startup_budget(nofile.soft, n);
    let skipped = nofile::over_budget(&parts, budget);
    if let Some(first) = skipped.first() {
        let reason = format!(
            "not opened at start-up: RLIMIT_NOFILE {} leaves room for {budget} segment files, taken by the {} partitions before it",
            nofile.soft,
            parts.len() - skipped.len()
        );
        for p in skipped {
            offline.mark(&p.tp, p.topic_id, reason.clone());
        }
        tracing::error!(
            offline = skipped.len(),
            "{} partitions, from {}-{} on in start-up order (internal topics first, then by name), are offline \
             (KAFKA_STORAGE_ERROR): {reason}",
            skipped.len(),
            first.tp.topic,
            first.tp.partition
        );
    }
    let advertised = cfg.advertised_listener.clone().unwrap_or_else(|| {
        let host = if shown.ip().is_unspecified() { "127.0.0.1".to_string() } else { shown.ip().to_string() };
        (host, shown.port())
    });
    // The admin listener binds here too, so a port in use stops the start with a clear error.
    let admin = match cfg.admin_listener {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr).map_err(|e| {
                StartError::Io(std::io::Error::new(
                    e.kind(),
                    format!("admin.listener http://{addr}: {e} (choose another port, or admin.listener=0 to run without it)"),
                ))
            })?;
            let bound = l.local_addr()?;
            Some((std::os::fd::IntoRawFd::into_raw_fd(l), bound))
        }
        None => None,
    };
    let mut admin_fd = admin.map(|(fd, _)| fd);
    // 3. Signals before shards, so a SIGTERM during start-up is not lost.
    let stop_fds = stop_eventfds(n)?;
    let io_memory = fit_io_memory(&cfg, n);
    let cfg = Arc::new(cfg);
    let endpoints = xshard::mesh(n, cfg.xshard_channel_capacity);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();
    let drained = Arc::new(AtomicUsize::new(0));
    // Set by the controller shard once this node may stop (after a cluster
    // broker's controlled shutdown); the other shards serve until then.
    let may_stop = Arc::new(AtomicBool::new(false));
    let quotas = crate::net::connection_quotas::ConnectionQuotas::new(&cfg);
    let mut handles = Vec::new();
    for (id, (core, eps)) in cores.iter().copied().zip(endpoints).enumerate() {
        let (cfg, image, placement, advertised, ready_tx, drained, offline, quotas) =
            (cfg.clone(), image.clone(), placement.clone(), advertised.clone(), ready_tx.clone(), drained.clone(), offline.clone(), quotas.clone());
        let may_stop = may_stop.clone();
        // The controller shard owns the metadata log.
        let metadata_log = if id == crate::shard::CONTROLLER_SHARD { metadata_log.take() } else { None };
        // ... or, on a cluster node, the quorum's log.
        let cluster_boot = if id == crate::shard::CONTROLLER_SHARD { cluster_boot.take() } else { None };
        // The admin listener runs on the controller shard (shard 0).
        let admin_fd = if id == crate::shard::CONTROLLER_SHARD { admin_fd.take() } else { None };
        let stop_fd = stop_fds[id];
        let builder = LocalExecutorBuilder::new(Placement::Fixed(core))
            .name(&format!("shard-{id}"))
            .io_memory(io_memory)
            .spin_before_park(Duration::from_micros(cfg.shard_spin_before_park_us));
        let h = builder
            .spawn(move || async move {
                // Every line logged on this thread, by any of its tasks, carries the
                // shard: the span is entered here, in the executor's main task, and
                // stays entered until it ends (glommio polls every task of the shard
                // on this thread, in between). ERROR level: on whenever any line is.
                let _shard_span = tracing::error_span!("shard", shard = id).entered();
                let fail = |e: String| {
                    let _ = ready_tx.send(Err(e));
                };
                let ring = match Ring::start() {
                    Ok(r) => r,
                    Err(e) => return fail(format!("io_uring: {e}")),
                };
                let shard = Shard::new(id, n, cfg.clone(), ring, advertised, image, placement, metadata_log, recover, offline);
                // The coordinators listen before the logs open: they take over their internal partitions.
                let coordinators = Coordinators::new(shard.clone());
                shard.open_at_start();
                let x = XShard::connect(shard.clone(), coordinators.clone(), eps).await;
                // The quorum member starts once the shards are connected: what it
                // applies is published to all of them.
                let _cluster_node = match cluster_boot.map(|boot| crate::cluster::start(shard.clone(), boot)) {
                    Some(Err(e)) => return fail(format!("metadata quorum: {e}")),
                    Some(Ok(node)) => Some(node),
                    None => None,
                };
                // Every core's coordinators may write markers to partitions other
                // brokers lead: each core has its own client to them, held here.
                let _inter_broker = if cfg.is_cluster() {
                    let client = crate::cluster::inter_broker::InterBrokerClient::new(shard.clone());
                    let weak: std::rc::Weak<dyn crate::xshard::RemoteBrokers> = std::rc::Rc::downgrade(&client) as _;
                    x.set_remote_brokers(weak);
                    Some(client)
                } else {
                    None
                };
                // Followers fetch from leaders and leaders watch their ISRs, on every core.
                if cfg.is_cluster() && cfg.process_roles.broker {
                    crate::cluster::replica_fetcher::start(shard.clone());
                    crate::cluster::isr::start(x.clone());
                    spawn_high_watermark_checkpoints(shard.clone());
                }
                let ctx = Ctx::new(x);
                let listener = match bound.map(|b| (b, crate::net::listener::bind(b))) {
                    None => None,
                    Some((_, Ok(l))) => Some(l),
                    Some((b, Err(e))) => return fail(exclusive::bind_error(b, e).to_string()),
                };
                if let Some(fd) = admin_fd {
                    use std::os::fd::FromRawFd;
                    // SAFETY: the listener's descriptor was released by its std owner
                    // (into_raw_fd) and is handed to this shard alone.
                    let admin_listener = unsafe { glommio::net::TcpListener::from_raw_fd(fd) };
                    crate::admin::start(ctx.clone(), admin_listener);
                }
                spawn_stop_watcher(coordinators.clone(), stop_fd, may_stop);
                spawn_flusher(shard.clone());
                spawn_group_ticker(coordinators.clone());
                spawn_txn_ticker(coordinators);
                spawn_retention(shard.clone());
                spawn_cleaner(shard.clone());
                let _ = ready_tx.send(Ok(id));
                match listener {
                    Some(listener) => crate::net::listener::serve(ctx, listener, quotas).await,
                    None => {
                        // A controller-only node: shard 0 hosts the quorum member; every
                        // shard waits for SIGTERM/SIGINT.
                        let _serving = ctx;
                        while !shard.stopping.get() {
                            let stop = shard.stop_signal.wait();
                            if shard.stopping.get() {
                                break;
                            }
                            stop.await;
                        }
                    }
                }
                // Every shard stops taking requests before any closes its logs,
                // since connections on one shard append to partitions of others.
                drained.fetch_add(1, Ordering::SeqCst);
                while drained.load(Ordering::SeqCst) < n {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
                if let Err(e) = shard.close_logs().await {
                    tracing::error!("closing logs failed: {e}");
                }
            })
            .map_err(|e| StartError::Shard(id, e.to_string()))?;
        handles.push(h);
    }
    drop(ready_tx);
    for _ in 0..n {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(StartError::Shard(0, e)),
            Err(_) => return Err(StartError::Shard(0, "a shard exited during start-up".into())),
        }
    }
    drop(probe);
    // Tests and scripts wait for these exact lines (a closed stdout is ignored);
    // the admin line comes first, so it is there once the listening line is.
    if let Some((_, admin)) = admin {
        crate::logging::stdout_line(&format!("shardlog admin listening on http://{admin}"));
        tracing::info!(%admin, "admin listener started: /metrics, /api/v1, console at /");
    }
    match (bound, cfg.controller_listener) {
        (Some(bound), _) => {
            crate::logging::stdout_line(&format!("shardlog listening on {bound}"));
            tracing::info!(%bound, shards = n, ?cores, "broker started");
        }
        (None, controller) => {
            let controller = controller.map_or_else(String::new, |c| c.to_string());
            crate::logging::stdout_line(&format!("shardlog controller listening on {controller}"));
            tracing::info!(%controller, shards = n, ?cores, "controller started (process.roles=controller: no client listener)");
        }
    }
    let mut failed = false;
    for h in handles {
        failed |= h.join().is_err();
    }
    if !failed {
        std::fs::write(&marker, b"")?;
    }
    tracing::info!("broker stopped cleanly");
    Ok(())
}

/// Stops this shard on SIGTERM/SIGINT. The controller shard first runs the
/// cluster's controlled shutdown (`cluster::shutdown`) and then lets every
/// shard stop (`may_stop`); the others keep serving until then, since the
/// partitions they own are led here until the controller has moved them.
fn spawn_stop_watcher(coordinators: std::rc::Rc<Coordinators>, fd: RawFd, may_stop: Arc<AtomicBool>) {
    use std::os::fd::FromRawFd;
    // SAFETY: the eventfd belongs to this shard alone from here on.
    let f = unsafe { glommio::io::BufferedFile::from_raw_fd(fd) };
    glommio::spawn_local(async move {
        let _ = f.read_at(0, 8).await;
        let shard = &coordinators.shard;
        if shard.id == crate::shard::CONTROLLER_SHARD {
            if let Some(quorum) = shard.quorum() {
                quorum.controlled_shutdown().await;
            }
            may_stop.store(true, Ordering::SeqCst);
        } else {
            while !may_stop.load(Ordering::SeqCst) {
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
        tracing::info!("stopping");
        shard.stopping.set(true);
        shard.stop_signal.notify_all();
        // Parked JoinGroup/SyncGroup would hold their connections open forever.
        coordinators.group.shutdown();
    })
    .detach();
}

/// Applies `flush.ms`: checks partitions every second, or at the broker's
/// `log.flush.interval.ms` when shorter (a topic may set flush.ms at any time).
fn spawn_flusher(shard: std::rc::Rc<Shard>) {
    let ms = shard.cfg.log_flush_interval_ms.unwrap_or(1000);
    glommio::spawn_local(async move {
        while !shard.stopping.get() {
            glommio::timer::sleep(Duration::from_millis(ms.clamp(1, 1000))).await;
            shard.flush_due().await;
        }
    })
    .detach();
}

/// Writes this shard's moved high watermarks every
/// `replica.high.watermark.checkpoint.interval.ms` (cluster brokers).
fn spawn_high_watermark_checkpoints(shard: std::rc::Rc<Shard>) {
    let ms = shard.cfg.replica_high_watermark_checkpoint_interval_ms;
    spawn_every(shard, ms, Shard::checkpoint_high_watermarks);
}

/// Runs `job` on this shard every `ms` (at least 1) until the broker stops.
fn spawn_every(shard: std::rc::Rc<Shard>, ms: u64, job: fn(&Shard)) {
    glommio::spawn_local(async move {
        while !shard.stopping.get() {
            glommio::timer::sleep(Duration::from_millis(ms.max(1))).await;
            job(&shard);
        }
    })
    .detach();
}

/// Applies retention (`retention.ms`, `retention.bytes`) to this shard's
/// partitions every `log.retention.check.interval.ms`.
fn spawn_retention(shard: std::rc::Rc<Shard>) {
    let ms = shard.cfg.log_retention_check_interval_ms;
    spawn_every(shard, ms, Shard::apply_retention);
}

/// Runs the log cleaner (compaction) on a low-priority task queue of this
/// shard, so cleaning yields to produce, fetch and group traffic.
fn spawn_cleaner(shard: std::rc::Rc<Shard>) {
    if !shard.cfg.log_cleaner_enable || shard.cfg.log_cleaner_threads == 0 {
        return;
    }
    let tq = glommio::executor().create_task_queue(glommio::Shares::Static(25), glommio::Latency::NotImportant, "log-cleaner");
    let ms = shard.cfg.log_cleaner_backoff_ms.max(1);
    let task = glommio::spawn_local_into(
        async move {
            while !shard.stopping.get() {
                glommio::timer::sleep(Duration::from_millis(ms)).await;
                shard.clean_logs().await;
            }
        },
        tq,
    );
    match task {
        Ok(t) => {
            t.detach();
        }
        Err(e) => tracing::error!("starting the log cleaner failed: {e}"),
    }
}

/// Drives group timeouts (sessions, rebalances, offset retention) every 100 ms.
fn spawn_group_ticker(coordinators: std::rc::Rc<Coordinators>) {
    glommio::spawn_local(async move {
        while !coordinators.shard.stopping.get() {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            coordinators.group.tick();
        }
    })
    .detach();
}

/// Drives the transaction coordinator: a first pass right away (recovery:
/// transactions replayed in PrepareCommit/PrepareAbort get their markers and
/// complete; only now can markers reach other shards), then every
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (timeout
/// aborts, expiry of idle transactional ids, retries of failed marker writes).
fn spawn_txn_ticker(coordinators: std::rc::Rc<Coordinators>) {
    let ms = coordinators.shard.cfg.transaction_abort_timed_out_transaction_cleanup_interval_ms.max(1);
    glommio::spawn_local(async move {
        while !coordinators.shard.stopping.get() {
            coordinators.txn.tick(&coordinators).await;
            glommio::timer::sleep(Duration::from_millis(ms)).await;
        }
    })
    .detach();
}
