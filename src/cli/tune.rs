//! `shardlog tune`: checks the host for settings a thread-per-core broker
//! depends on, and applies the fixes it can (after Redpanda's
//! `rpk/pkg/tuners/`: a checker per setting, separate from its fixer).
//!
//! Checkers only read (`/proc`, `/sys`, `getrlimit`, one probe
//! `io_uring_setup`) and return a [`Finding`]: `OK`, `WARN` (worth changing)
//! or `INFO` (nothing to do, or nothing this tool can decide). A `WARN` names
//! the exact command that fixes it and, where the fix is a write to
//! `/proc/sys` or `/sys`, carries it as [`Change`]s that `--apply` performs
//! (as root). Per-process limits (memlock, nofile) cannot be raised for a
//! broker that is not running yet, so `--apply` prints the limits.conf line
//! instead. Sysctl writes through `/proc/sys` last until reboot; each fix also
//! names the `/etc/sysctl.d` line that persists it.
//!
//! Output: one line per check, `STATUS  name: finding — fix: command`, or
//! `--output json`. The exit code is 0 whatever the findings (they are
//! advice); 2 only when the tool itself cannot run (bad `--profile`).
//!
//! Shard cores come from `--profile FILE` (the same tuning profiles `start`
//! takes) or, without one, the built-in default: one shard per online core.
//! They decide the memlock need and which cores NIC and disk interrupts
//! should avoid (the disk is the one holding the log dir: `disk_irqs`).
//! The nofile check counts the partitions and segment files in the log dir
//! (`--log-dir`, default `log.dirs` of the profile or the built-in config), or
//! plans for `--partitions N`, with the same estimate `start` logs.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::output::{eprint_line, print_line};
use crate::config::Config;
use crate::runtime::nofile::NofileNeed;
use crate::runtime::shard_cores;

mod disk_irqs;

/// Recommended `vm.swappiness`: a broker's heap and io_memory should never
/// be swapped for page cache (Kafka and Redpanda both recommend 1).
pub const SWAPPINESS_MAX: u64 = 1;
/// Recommended soft `RLIMIT_NOFILE`: one fd per open segment `.log` plus one
/// per client connection; thousands of partitions x segments add up.
pub const NOFILE_MIN: u64 = 100_000;
/// Value the nofile fix sets (the usual systemd/Kafka packaging value).
pub const NOFILE_RECOMMENDED: u64 = 1_048_576;
/// Recommended `net.core.somaxconn`: the accept backlog cap; reconnect storms
/// of many clients overflow the old default of 128 (4096 since Linux 5.4).
pub const SOMAXCONN_MIN: u64 = 4096;
/// Recommended socket buffer maxima (`net.core.{r,w}mem_max` and the third
/// field of `net.ipv4.tcp_{r,w}mem`): a 10 Gb/s x 10 ms path needs ~12 MiB in
/// flight per connection; 16 MiB leaves headroom.
pub const TCP_BUFFER_MIN_BYTES: u64 = 16 << 20;
/// How much RLIMIT_MEMLOCK the runtime wants per byte of glommio io_memory:
/// `runtime::fit_io_memory` gives io_memory half of the limit and leaves the
/// other half to the shards' own io_uring rings.
pub const MEMLOCK_PER_IO_MEMORY: u64 = 2;

/// Options of `shardlog tune`.
#[derive(clap::Args, Debug, Clone)]
pub struct TuneArgs {
    /// Tuning profile (TOML with shard.* keys) whose shard cores the checks use;
    /// without it, one shard per online core (the built-in default).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Output format: one line per check (text) or one JSON document (json).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Apply the fixes that can be applied to the running system (needs root):
    /// sysctls through /proc/sys, transparent hugepages and cpufreq governors
    /// through /sys, NIC IRQ affinity through /proc/irq. Prints what it changed.
    #[arg(long)]
    pub apply: bool,
    /// Log dir whose partitions and segment files the nofile check counts
    /// (default: log.dirs of the profile, or the built-in ./data).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Plan the nofile check for this many partitions (one segment each)
    /// instead of counting those in the log dir.
    #[arg(long, value_name = "N")]
    pub partitions: Option<u64>,
}

/// How `shardlog tune` prints its findings.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// `STATUS  name: finding — fix: command`, one line per check.
    Text,
    /// `{"shard_cores": [...], "checks": [...], "applied": [...]}`.
    Json,
}

/// Verdict of one check.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Set as recommended.
    Ok,
    /// Worth changing; the finding names the fix.
    Warn,
    /// Nothing to change, or nothing this tool can decide (e.g. no cpufreq in a VM).
    Info,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Info => "INFO",
        }
    }
}

/// One write `--apply` performs: `value` into a `/proc/sys`, `/sys` or `/proc/irq` file.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute path of the file to write (relative to the host root).
    pub path: PathBuf,
    /// Text written (a newline is added).
    pub value: String,
}

/// Result of one check.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable check name (see [`CHECK_NAMES`]).
    pub name: &'static str,
    /// Verdict.
    pub status: Status,
    /// What was found, with the numbers.
    pub finding: String,
    /// Exact command(s) that fix a `WARN` (also shown for some `INFO`s).
    pub fix: Option<String>,
    /// Writes `--apply` performs for a `WARN`; empty when the fix is manual.
    #[serde(skip)]
    pub changes: Vec<Change>,
    /// For a `WARN` without changes: why `--apply` cannot fix it.
    #[serde(skip)]
    pub manual: Option<String>,
}

impl Finding {
    fn new(name: &'static str, status: Status, finding: impl Into<String>) -> Finding {
        Finding { name, status, finding: finding.into(), fix: None, changes: Vec::new(), manual: None }
    }
    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
    fn change(mut self, path: impl Into<PathBuf>, value: impl Into<String>) -> Finding {
        self.changes.push(Change { path: path.into(), value: value.into() });
        self
    }
    fn manual(mut self, why: impl Into<String>) -> Finding {
        self.manual = Some(why.into());
        self
    }

    /// The text form: `STATUS  name: finding — fix: command`.
    pub fn line(&self) -> String {
        let mut s = format!("{:<4}  {}: {}", self.status.label(), self.name, self.finding);
        if let Some(fix) = &self.fix {
            let _ = write!(s, " — fix: {fix}");
        }
        s
    }
}

/// Every check, in output order.
pub const CHECK_NAMES: [&str; 11] = [
    "shard_cores",
    "memlock",
    "io_uring",
    "transparent_hugepages",
    "swappiness",
    "cpufreq_governor",
    "nic_irq_affinity",
    "disk_irq_affinity",
    "nofile",
    "somaxconn",
    "tcp_buffers",
];

/// What one `--apply` step did.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The check whose fix this is.
    pub check: &'static str,
    /// `changed`, `failed` or `manual`.
    pub result: &'static str,
    /// The change (`path: old -> new`), the error, or the manual step.
    pub detail: String,
}

/// The JSON document of `--output json`.
#[derive(Serialize, Debug)]
struct Report<'a> {
    profile: Option<&'a Path>,
    shard_cores: &'a [usize],
    checks: &'a [Finding],
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<&'a [Applied]>,
}

// ---------------------------------------------------------------------------
// Reading the host

/// Where `/proc` and `/sys` are read from: `/` on a real host, a fixture tree in tests.
#[derive(Debug, Clone)]
pub struct Host {
    root: PathBuf,
}

impl Host {
    /// The running system.
    pub fn real() -> Host {
        Host { root: PathBuf::from("/") }
    }

    /// A fixture tree laid out like `/` (tests).
    pub fn at(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    /// `path` (absolute, e.g. `/proc/sys/vm/swappiness`) under this host's root.
    pub fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        self.root.join(path.as_ref().strip_prefix("/").unwrap_or(path.as_ref()))
    }

    /// The file's text, trimmed; None when it cannot be read.
    pub fn read(&self, path: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(self.path(path)).ok().map(|s| s.trim().to_string())
    }

    fn read_u64(&self, path: &str) -> Option<u64> {
        self.read(path)?.parse().ok()
    }

    /// Names in a directory (unsorted input, sorted output); empty when absent.
    fn list(&self, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(dir))
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Online CPUs (`/sys/devices/system/cpu/online`), else 0..available_parallelism.
    pub fn online_cpus(&self) -> Vec<usize> {
        self.read("/sys/devices/system/cpu/online")
            .and_then(|s| parse_cpu_list(&s))
            .unwrap_or_else(|| (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect())
    }
}

/// `/proc/sys` path of a dotted sysctl name (`net.core.somaxconn`).
pub fn sysctl_path(name: &str) -> String {
    format!("/proc/sys/{}", name.replace('.', "/"))
}

/// A process resource limit: (soft, hard); `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// Soft limit (what the process gets), None = unlimited.
    pub soft: Option<u64>,
    /// Hard limit (how far the process may raise the soft one), None = unlimited.
    pub hard: Option<u64>,
}

/// getrlimit(2) of this process (the shell's limits, which a broker started from it inherits).
pub fn getrlimit(resource: libc::__rlimit_resource_t) -> Option<Rlimit> {
    let (soft, hard) = crate::io::sys::getrlimit(resource)?;
    Some(Rlimit { soft, hard })
}

/// Sets up (and drops) a small io_uring instance: the same syscall the broker
/// makes at start, so seccomp filters and the sysctl are both covered.
pub fn probe_io_uring() -> Result<(), String> {
    io_uring::IoUring::new(8).map(drop).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Parsers (pure; unit-tested)

/// Parses a kernel CPU list (`0-3,8,10-11`; empty = no CPUs). None when malformed.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out.into_iter().collect())
}

/// Formats CPUs the way the kernel does (`0-3,8`), for messages and for `smp_affinity_list`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let set: BTreeSet<usize> = cpus.iter().copied().collect();
    let mut parts = Vec::new();
    let mut it = set.into_iter().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
    }
    parts.join(",")
}

/// The selected value of a sysfs multiple-choice file (`always [madvise] never` -> `madvise`).
pub fn parse_bracketed(s: &str) -> Option<&str> {
    let start = s.find('[')? + 1;
    let end = start + s[start..].find(']')?;
    Some(&s[start..end])
}

/// One numbered line of `/proc/interrupts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqLine {
    /// IRQ number (the `/proc/irq/N` directory).
    pub irq: u32,
    /// Interrupt count per CPU column.
    pub counts: Vec<u64>,
    /// Action names (the device's handlers, e.g. `virtio2-input.0`), usually one.
    pub names: Vec<String>,
}

/// Parses `/proc/interrupts`: numbered lines only (NMI, LOC, ... are per-CPU
/// and cannot be steered). The header gives the number of CPU columns; after
/// the counts come the chip, the hardware IRQ and trigger (`5-edge`,
/// `1572864-edge`, `PCI-MSI-edge`, `fasteoi`), then the action names,
/// comma-separated when shared.
pub fn parse_interrupts(text: &str) -> Vec<IrqLine> {
    let mut lines = text.lines();
    let ncpu = lines.next().map(|h| h.split_whitespace().filter(|t| t.starts_with("CPU")).count()).unwrap_or(0);
    let mut out = Vec::new();
    for line in lines {
        let Some((num, rest)) = line.split_once(':') else { continue };
        let Ok(irq) = num.trim().parse::<u32>() else { continue };
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        let counts: Vec<u64> = tokens.iter().take(ncpu).map_while(|t| t.parse().ok()).collect();
        let after = &tokens[counts.len()..];
        // The trigger token ends the chip/hwirq part; names follow it. Without
        // one (unusual chips), take the last token as the name.
        let trigger = after.iter().rposition(|t| {
            let t = t.to_ascii_lowercase();
            t.ends_with("-edge") || t.ends_with("-level") || t.ends_with("-fasteoi") || t == "edge" || t == "level" || t == "fasteoi"
        });
        let name_tokens = match trigger {
            Some(i) => &after[i + 1..],
            None => &after[after.len().saturating_sub(1)..],
        };
        let names = name_tokens.join(" ").split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        out.push(IrqLine { irq, counts, names });
    }
    out
}

/// Whether an interrupt action name is a NIC queue: virtio-net queues
/// (`virtio2-input.0`, `virtio2-output.0`), names carrying a network
/// interface (`eth0-TxRx-0`, `enp3s0f0-rx-1`), or common NIC drivers
/// (`mlx5_comp3@pci:...`, `i40e-...`, `ixgbe`, `ice-`, `bnxt_en`, `ena-`).
/// Config/control vectors (`virtio2-config`) are not queues.
pub fn is_nic_queue_name(name: &str, ifaces: &[String]) -> bool {
    if name.ends_with("-config") {
        return false;
    }
    if let Some(rest) = name.strip_prefix("virtio") {
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        if let Some(q) = rest.strip_prefix("-input.").or_else(|| rest.strip_prefix("-output.")) {
            return !q.is_empty() && q.chars().all(|c| c.is_ascii_digit());
        }
        return false;
    }
    const PREFIXES: [&str; 12] = ["eth", "ens", "enp", "eno", "enx", "mlx4", "mlx5", "i40e", "ixgbe", "ice-", "bnxt", "ena-"];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || ifaces.iter().any(|i| i != "lo" && !i.is_empty() && name.starts_with(i.as_str()) && name[i.len()..].starts_with(['-', '_', '@']))
}

/// The third field of `net.ipv4.tcp_rmem`/`tcp_wmem` (`min default max`).
pub fn parse_tcp_mem_max(s: &str) -> Option<u64> {
    s.split_whitespace().nth(2)?.parse().ok()
}

/// Bytes for people: `16 MiB`, `1.5 MiB`, `273 KiB`.
fn mib(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= 1024 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn limit_text(v: Option<u64>, unit_bytes: bool) -> String {
    match v {
        None => "unlimited".to_string(),
        Some(v) if unit_bytes => mib(v),
        Some(v) => v.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Checkers (read-only; each takes what it needs, so tests can feed fixtures)

/// The profile's shard cores against the online CPUs: a shard pinned to a
/// core that does not exist fails at start.
pub fn check_shard_cores(shard_cores: &[usize], online: &[usize], profile: Option<&Path>) -> Finding {
    const NAME: &str = "shard_cores";
    let source = match profile {
        Some(p) => format!("profile {}", p.display()),
        None => "default profile (one shard per core)".to_string(),
    };
    let missing: Vec<usize> = shard_cores.iter().copied().filter(|c| !online.contains(c)).collect();
    let what = format!("{source}: shards on cores {}; online cores {}", format_cpu_list(shard_cores), format_cpu_list(online));
    if missing.is_empty() {
        return Finding::new(NAME, Status::Ok, what);
    }
    let usable: Vec<usize> = shard_cores.iter().copied().filter(|c| online.contains(c)).collect();
    let suggest = if usable.is_empty() { format_cpu_list(online) } else { format_cpu_list(&usable) };
    Finding::new(NAME, Status::Warn, format!("{what}: cores {} are not online, so start cannot pin those shards", format_cpu_list(&missing)))
        .fix(format!("set `cores = \"{suggest}\"` under [shard] in the profile (or start with --set shard.cores={suggest})"))
        .manual("the profile is a file you own")
}

/// RLIMIT_MEMLOCK against glommio's io_memory: `io_memory_per_shard x shards`,
/// doubled because the runtime gives io_memory half the limit (the rings get
/// the rest). The runtime raises the soft limit to the hard one at start, so
/// the hard limit is what counts; below the need, io_memory is capped.
pub fn check_memlock(lim: Option<Rlimit>, shards: usize, io_memory_per_shard: u64) -> Finding {
    const NAME: &str = "memlock";
    let fix = "add `* - memlock unlimited` to /etc/security/limits.conf (systemd unit: LimitMEMLOCK=infinity), \
               or run `ulimit -l unlimited` as root in the shell that starts shardlog";
    let Some(lim) = lim else {
        return Finding::new(NAME, Status::Info, "getrlimit(RLIMIT_MEMLOCK) failed");
    };
    let shards = shards.max(1) as u64;
    let need = io_memory_per_shard * shards * MEMLOCK_PER_IO_MEMORY;
    let what = format!(
        "soft {}, hard {}; {} shards x {} io_memory x {} (rings) needs {}",
        limit_text(lim.soft, true),
        limit_text(lim.hard, true),
        shards,
        mib(io_memory_per_shard),
        MEMLOCK_PER_IO_MEMORY,
        mib(need)
    );
    match lim.hard {
        None => Finding::new(NAME, Status::Ok, what),
        Some(hard) if hard >= need => Finding::new(NAME, Status::Ok, format!("{what} (start raises soft to hard)")),
        Some(hard) => {
            let capped = (hard / 2 / shards).max(64 * 1024);
            Finding::new(NAME, Status::Warn, format!("{what}: shards would start with io_memory capped to {}", mib(capped))).fix(fix).manual(
                "RLIMIT_MEMLOCK is per process: add `* - memlock unlimited` to /etc/security/limits.conf \
                         (or LimitMEMLOCK=infinity to the systemd unit) and start shardlog from a new login",
            )
        }
    }
}

/// io_uring allowed (`kernel.io_uring_disabled` = 0, sysctl since Linux 6.6)
/// and usable (a probe `io_uring_setup`, which also catches seccomp filters).
pub fn check_io_uring(disabled: Option<String>, probe: Result<(), String>) -> Finding {
    const NAME: &str = "io_uring";
    let path = sysctl_path("kernel.io_uring_disabled");
    let sysctl_fix = "sysctl -w kernel.io_uring_disabled=0; persist: echo 'kernel.io_uring_disabled = 0' > /etc/sysctl.d/90-shardlog-io_uring.conf";
    match (disabled.as_deref(), probe) {
        (Some("0"), Ok(())) => Finding::new(NAME, Status::Ok, "kernel.io_uring_disabled = 0 and io_uring_setup works"),
        (None, Ok(())) => Finding::new(NAME, Status::Ok, "io_uring_setup works (no kernel.io_uring_disabled sysctl on this kernel)"),
        (Some(v @ ("1" | "2")), probe) => {
            let meaning = if v == "1" { "only root and kernel.io_uring_group may use io_uring" } else { "io_uring is disabled for everyone" };
            let probe = match probe {
                Ok(()) => "this process can still set one up".to_string(),
                Err(e) => format!("io_uring_setup failed: {e}"),
            };
            Finding::new(NAME, Status::Warn, format!("kernel.io_uring_disabled = {v}: {meaning}; {probe}")).fix(sysctl_fix).change(path, "0")
        }
        (v, Err(e)) => Finding::new(
            NAME,
            Status::Warn,
            format!("io_uring_setup failed: {e} (kernel.io_uring_disabled = {}); a seccomp filter may block it", v.unwrap_or("absent")),
        )
        .fix("allow io_uring_setup, io_uring_enter and io_uring_register in the container's seccomp profile (docker: --security-opt seccomp=<profile>)")
        .manual("a seccomp policy is set by whoever starts the container"),
        (Some(v), Ok(())) => Finding::new(NAME, Status::Info, format!("kernel.io_uring_disabled = {v} (unknown value); io_uring_setup works")),
    }
}

/// Transparent hugepages: `madvise` lets allocators that ask get huge pages
/// (fewer TLB misses on per-shard heaps) without khugepaged compaction
/// stalls on everything else, which `always` risks in a page-cache-heavy
/// broker; `never` gives up the TLB win.
pub fn check_thp(enabled: Option<String>) -> Finding {
    const NAME: &str = "transparent_hugepages";
    const PATH: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
    let fix = format!("echo madvise > {PATH}");
    let Some(raw) = enabled else {
        return Finding::new(NAME, Status::Info, format!("{PATH} absent: kernel built without THP"));
    };
    match parse_bracketed(&raw) {
        Some("madvise") => Finding::new(NAME, Status::Ok, "madvise"),
        Some("always") => Finding::new(NAME, Status::Info, "always: works; madvise avoids khugepaged compaction stalls on shard cores").fix(fix),
        Some(other) => Finding::new(NAME, Status::Warn, format!("{other}: huge pages unavailable to the allocator")).fix(fix).change(PATH, "madvise"),
        None => Finding::new(NAME, Status::Info, format!("cannot parse {PATH}: `{raw}`")),
    }
}

/// `vm.swappiness` <= 1: a swapped-out heap or io_memory page turns a
/// microsecond path into a disk read. Without swap the value has no effect.
pub fn check_swappiness(value: Option<u64>, swap_total_kb: Option<u64>) -> Finding {
    const NAME: &str = "swappiness";
    let fix = format!("sysctl -w vm.swappiness={SWAPPINESS_MAX}; persist: echo 'vm.swappiness = {SWAPPINESS_MAX}' > /etc/sysctl.d/90-shardlog-swap.conf");
    match value {
        None => Finding::new(NAME, Status::Info, "cannot read /proc/sys/vm/swappiness"),
        Some(v) if v <= SWAPPINESS_MAX => Finding::new(NAME, Status::Ok, format!("vm.swappiness = {v}")),
        Some(v) if swap_total_kb == Some(0) => {
            Finding::new(NAME, Status::Info, format!("vm.swappiness = {v} (recommended <= {SWAPPINESS_MAX}), but no swap is configured, so it has no effect"))
                .fix(fix)
        }
        Some(v) => Finding::new(NAME, Status::Warn, format!("vm.swappiness = {v}, recommended <= {SWAPPINESS_MAX}"))
            .fix(fix)
            .change(sysctl_path("vm.swappiness"), SWAPPINESS_MAX.to_string()),
    }
}

/// cpufreq governor per online CPU (`None` = no cpufreq for that CPU):
/// shards poll and spin, and a power-saving governor adds wake-up latency to
/// every hop. Without cpufreq (most VMs) the host controls frequency.
pub fn check_cpufreq(governors: &[(usize, Option<String>)], shard_cores: &[usize]) -> Finding {
    const NAME: &str = "cpufreq_governor";
    let path = |c: usize| format!("/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor");
    if governors.iter().all(|(_, g)| g.is_none()) {
        return Finding::new(NAME, Status::Info, "no cpufreq on any CPU (typical in a VM): frequency is set by the host or firmware");
    }
    let slow: Vec<(usize, &str)> =
        governors.iter().filter_map(|(c, g)| g.as_deref().filter(|g| *g != "performance").map(|g| (*c, g))).filter(|(c, _)| shard_cores.contains(c)).collect();
    let all: Vec<String> = governors.iter().map(|(c, g)| format!("cpu{c}={}", g.as_deref().unwrap_or("none"))).collect();
    if slow.is_empty() {
        return Finding::new(NAME, Status::Ok, format!("shard cores run `performance` ({})", all.join(", ")));
    }
    let paths: Vec<String> = slow.iter().map(|&(c, _)| path(c)).collect();
    let mut f = Finding::new(
        NAME,
        Status::Warn,
        format!("shard cores not on `performance`: {}", slow.iter().map(|(c, g)| format!("cpu{c}={g}")).collect::<Vec<_>>().join(", ")),
    )
    .fix(format!("echo performance | tee {}", paths.join(" ")));
    for p in paths {
        f = f.change(p, "performance");
    }
    f
}

/// One queue interrupt (of a NIC or a disk) and the CPUs it is delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueIrq {
    /// IRQ number.
    pub irq: u32,
    /// Its action name.
    pub name: String,
    /// CPUs from `/proc/irq/N/...` (None = unreadable): `smp_affinity_list`
    /// for a NIC, the effective affinity where known for a disk.
    pub cpus: Option<Vec<usize>>,
}

impl QueueIrq {
    /// `36 virtio1-req.0 -> 1`.
    fn describe(&self) -> String {
        format!("{} {} -> {}", self.irq, self.name, self.cpus.as_deref().map(format_cpu_list).unwrap_or_else(|| "?".into()))
    }

    /// Whether it may be delivered to one of `cores`.
    fn reaches(&self, cores: &[usize]) -> bool {
        self.cpus.as_deref().is_some_and(|c| c.iter().any(|c| cores.contains(c)))
    }
}

/// `f` with the fix that writes every IRQ of `irqs` to the `target` cores
/// (after stopping irqbalance, which would move them back), then `fallback`
/// when there is one, and those writes as the changes `--apply` performs.
fn with_affinity_writes(f: Finding, irqs: &[&QueueIrq], target: &str, fallback: Option<&str>) -> Finding {
    let cmds: Vec<String> = irqs.iter().map(|i| format!("echo {target} > /proc/irq/{}/smp_affinity_list", i.irq)).collect();
    let mut fix = format!("systemctl stop irqbalance (it would move them back); {}", cmds.join("; "));
    if let Some(fb) = fallback {
        let _ = write!(fix, "; {fb}");
    }
    let mut f = f.fix(fix);
    for i in irqs {
        f = f.change(format!("/proc/irq/{}/smp_affinity_list", i.irq), target.to_string());
    }
    f
}

/// NIC queue interrupts should land on cores that run no shard: a softirq
/// on a shard core runs inside that shard's time slice and stretches every
/// request it holds. When every core runs a shard there is nowhere to move
/// them; the fix is a profile that reserves a core.
pub fn check_nic_irqs(irqs: &[QueueIrq], shard_cores: &[usize], online: &[usize]) -> Finding {
    const NAME: &str = "nic_irq_affinity";
    if irqs.is_empty() {
        return Finding::new(
            NAME,
            Status::Info,
            "no NIC queue interrupts found in /proc/interrupts (loopback only, or a driver naming its queues differently)",
        );
    }
    let spare: Vec<usize> = online.iter().copied().filter(|c| !shard_cores.contains(c)).collect();
    let on_shards: Vec<&QueueIrq> = irqs.iter().filter(|i| i.reaches(shard_cores)).collect();
    let shards = format_cpu_list(shard_cores);
    if on_shards.is_empty() {
        let all: Vec<String> = irqs.iter().map(QueueIrq::describe).collect();
        return Finding::new(NAME, Status::Ok, format!("{} NIC queue IRQs, none on shard cores {shards} ({})", irqs.len(), all.join(", ")));
    }
    let hits: Vec<String> = on_shards.iter().map(|i| i.describe()).collect();
    let what = format!("{} of {} NIC queue IRQs may land on shard cores {shards}: {}", on_shards.len(), irqs.len(), hits.join(", "));
    if spare.is_empty() {
        return Finding::new(NAME, Status::Warn, format!("{what}; every online core runs a shard, so there is no core to move them to"))
            .fix("reserve a core for interrupts with a profile whose shard.cores leaves it out (e.g. --profile tuning/profiles/dedicated.toml), then rerun `shardlog tune --profile FILE --apply`")
            .manual("choosing the cores is a profile decision");
    }
    let target = format_cpu_list(&spare);
    with_affinity_writes(Finding::new(NAME, Status::Warn, format!("{what}; spare cores {target}")), &on_shards, &target, None)
}

/// Where the nofile need comes from: partitions counted in a log dir, or planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionSource {
    /// Counted in this log dir (its metadata image and segment files).
    LogDir(PathBuf),
    /// Given with `--partitions`.
    Planned,
}

/// The descriptors the broker would need with `lim`: the partitions and
/// segment files of `log_dir` (none when it has no metadata yet), or `planned`
/// partitions of one segment each.
pub fn nofile_need(lim: Option<Rlimit>, log_dir: &Path, planned: Option<u64>, shards: usize) -> (NofileNeed, PartitionSource) {
    let limit = lim.and_then(|l| l.hard).unwrap_or(NOFILE_RECOMMENDED);
    match planned {
        Some(n) => (NofileNeed::estimate(n, shards, limit), PartitionSource::Planned),
        None => {
            let image = crate::metadata::log::read_image(log_dir).ok().flatten();
            let need = match image {
                Some(image) => NofileNeed::of_partitions(&crate::runtime::nofile::startup_partitions(&image, log_dir), shards, limit),
                None => NofileNeed::estimate(0, shards, limit),
            };
            (need, PartitionSource::LogDir(log_dir.to_path_buf()))
        }
    }
}

/// RLIMIT_NOFILE: one fd per open segment file, a few per shard, and the
/// connections (the estimate of `runtime::nofile`, for the partitions found
/// in the log dir or planned), and at least [`NOFILE_MIN`] for growth. Start
/// raises the soft limit to the hard one, so the hard limit is what counts.
pub fn check_nofile(lim: Option<Rlimit>, need: &NofileNeed, source: &PartitionSource) -> Finding {
    const NAME: &str = "nofile";
    let Some(lim) = lim else {
        return Finding::new(NAME, Status::Info, "getrlimit(RLIMIT_NOFILE) failed");
    };
    let whose = match source {
        PartitionSource::LogDir(d) => format!("the {} partitions in {}", need.partitions, d.display()),
        PartitionSource::Planned => format!("{} planned partitions", need.partitions),
    };
    let what = format!("soft {}, hard {}; {whose} need {}", limit_text(lim.soft, false), limit_text(lim.hard, false), need.describe());
    let want = need.total().max(NOFILE_MIN);
    let target = need.total().max(NOFILE_RECOMMENDED);
    match lim.hard {
        None => Finding::new(NAME, Status::Ok, what),
        Some(hard) if hard >= want => Finding::new(NAME, Status::Ok, format!("{what} (start raises soft to hard)")),
        Some(hard) => {
            let short = if hard < need.total() {
                "partitions that do not fit would be offline (KAFKA_STORAGE_ERROR)".to_string()
            } else {
                format!("recommended >= {NOFILE_MIN} to leave room for more partitions and connections")
            };
            Finding::new(NAME, Status::Warn, format!("{what}: {short}"))
                .fix(format!("`ulimit -Hn {target} && ulimit -n {target}` as root in the shell that starts shardlog; persist: add `* - nofile {target}` to /etc/security/limits.conf (systemd unit: LimitNOFILE={target})"))
                .manual(format!("RLIMIT_NOFILE is per process: add `* - nofile {target}` to /etc/security/limits.conf (or LimitNOFILE={target} to the systemd unit)"))
        }
    }
}

/// `net.core.somaxconn`: caps every listen backlog.
pub fn check_somaxconn(value: Option<u64>) -> Finding {
    const NAME: &str = "somaxconn";
    match value {
        None => Finding::new(NAME, Status::Info, "cannot read /proc/sys/net/core/somaxconn"),
        Some(v) if v >= SOMAXCONN_MIN => Finding::new(NAME, Status::Ok, format!("net.core.somaxconn = {v}")),
        Some(v) => Finding::new(NAME, Status::Warn, format!("net.core.somaxconn = {v}, recommended >= {SOMAXCONN_MIN}"))
            .fix(format!(
                "sysctl -w net.core.somaxconn={SOMAXCONN_MIN}; persist: echo 'net.core.somaxconn = {SOMAXCONN_MIN}' > /etc/sysctl.d/90-shardlog-net.conf"
            ))
            .change(sysctl_path("net.core.somaxconn"), SOMAXCONN_MIN.to_string()),
    }
}

/// Socket buffer ceilings: `net.core.rmem_max`/`wmem_max` cap SO_RCVBUF/SO_SNDBUF,
/// the third field of `net.ipv4.tcp_rmem`/`tcp_wmem` caps autotuning.
/// Inputs are the raw sysctl texts.
pub fn check_tcp_buffers(rmem_max: Option<String>, wmem_max: Option<String>, tcp_rmem: Option<String>, tcp_wmem: Option<String>) -> Finding {
    const NAME: &str = "tcp_buffers";
    let min = TCP_BUFFER_MIN_BYTES;
    let mut found = Vec::new();
    let mut low: Vec<(String, String)> = Vec::new(); // (sysctl name, new value)
    let mut unreadable = Vec::new();
    for (name, raw) in [("net.core.rmem_max", &rmem_max), ("net.core.wmem_max", &wmem_max)] {
        match raw.as_deref().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(v) => {
                found.push(format!("{name} = {}", mib(v)));
                if v < min {
                    low.push((name.to_string(), min.to_string()));
                }
            }
            None => unreadable.push(name),
        }
    }
    for (name, raw) in [("net.ipv4.tcp_rmem", &tcp_rmem), ("net.ipv4.tcp_wmem", &tcp_wmem)] {
        match raw.as_deref().and_then(|s| {
            let f: Vec<&str> = s.split_whitespace().collect();
            Some((f.first()?.to_string(), f.get(1)?.to_string(), parse_tcp_mem_max(s)?))
        }) {
            Some((lo, def, max)) => {
                found.push(format!("{name} max = {}", mib(max)));
                if max < min {
                    low.push((name.to_string(), format!("{lo} {def} {min}")));
                }
            }
            None => unreadable.push(name),
        }
    }
    if found.is_empty() {
        return Finding::new(NAME, Status::Info, "cannot read net.core.{r,w}mem_max or net.ipv4.tcp_{r,w}mem");
    }
    let mut what = found.join(", ");
    if !unreadable.is_empty() {
        let _ = write!(what, " (unreadable: {})", unreadable.join(", "));
    }
    if low.is_empty() {
        return Finding::new(NAME, Status::Ok, what);
    }
    let cmds: Vec<String> = low.iter().map(|(n, v)| if v.contains(' ') { format!("sysctl -w {n}='{v}'") } else { format!("sysctl -w {n}={v}") }).collect();
    let persist: Vec<String> = low.iter().map(|(n, v)| format!("{n} = {v}")).collect();
    let mut f = Finding::new(NAME, Status::Warn, format!("{what}; recommended >= {}", mib(min))).fix(format!(
        "{}; persist: printf '{}\\n' > /etc/sysctl.d/90-shardlog-tcp.conf",
        cmds.join("; "),
        persist.join("\\n")
    ));
    for (n, v) in low {
        f = f.change(sysctl_path(&n), v);
    }
    f
}

// ---------------------------------------------------------------------------
// Gathering and applying

/// Network interface names with a device behind them (skips `lo` and purely virtual ones).
fn physical_ifaces(host: &Host) -> Vec<String> {
    host.list("/sys/class/net").into_iter().filter(|i| i != "lo" && host.path(format!("/sys/class/net/{i}/device")).exists()).collect()
}

/// IRQ numbers owned by NIC PCI devices (their `msi_irqs`, on the device or,
/// for virtio, its PCI parent): catches queue names no pattern knows.
fn nic_msi_irqs(host: &Host, ifaces: &[String]) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for i in ifaces {
        let Ok(dev) = std::fs::canonicalize(host.path(format!("/sys/class/net/{i}/device"))) else { continue };
        for d in [Some(dev.as_path()), dev.parent()].into_iter().flatten() {
            if let Ok(rd) = std::fs::read_dir(d.join("msi_irqs")) {
                out.extend(rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()));
                break;
            }
        }
    }
    out
}

/// NIC queue interrupts from `/proc/interrupts`, with their affinity.
pub fn nic_irqs(host: &Host) -> Vec<QueueIrq> {
    let Some(text) = host.read("/proc/interrupts") else { return Vec::new() };
    let ifaces = physical_ifaces(host);
    let msi = nic_msi_irqs(host, &ifaces);
    parse_interrupts(&text)
        .into_iter()
        .filter_map(|l| {
            let name = l.names.iter().find(|n| is_nic_queue_name(n, &ifaces) || msi.contains(&l.irq) && !n.ends_with("-config"))?;
            Some(QueueIrq {
                irq: l.irq,
                name: name.clone(),
                cpus: host.read(format!("/proc/irq/{}/smp_affinity_list", l.irq)).and_then(|s| parse_cpu_list(&s)),
            })
        })
        .collect()
}

/// Runs every checker against `host`, in [`CHECK_NAMES`] order.
/// `planned_partitions`: `--partitions`; without it the nofile check counts those in `cfg.log_dir`.
pub fn run_checks(host: &Host, cfg: &Config, shard_cores: &[usize], profile: Option<&Path>, planned_partitions: Option<u64>) -> Vec<Finding> {
    let online = host.online_cpus();
    let swap_total_kb =
        host.read("/proc/meminfo").and_then(|m| m.lines().find_map(|l| l.strip_prefix("SwapTotal:").and_then(|v| v.split_whitespace().next()?.parse().ok())));
    let governors: Vec<(usize, Option<String>)> =
        online.iter().map(|&c| (c, host.read(format!("/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor")))).collect();
    let sysctl = |n: &str| host.read(sysctl_path(n));
    let nofile = getrlimit(libc::RLIMIT_NOFILE);
    let (need, source) = nofile_need(nofile, &cfg.log_dir, planned_partitions, shard_cores.len());
    vec![
        check_shard_cores(shard_cores, &online, profile),
        check_memlock(getrlimit(libc::RLIMIT_MEMLOCK), shard_cores.len(), cfg.shard_io_memory_bytes as u64),
        check_io_uring(sysctl("kernel.io_uring_disabled"), probe_io_uring()),
        check_thp(host.read("/sys/kernel/mm/transparent_hugepage/enabled")),
        check_swappiness(host.read_u64(&sysctl_path("vm.swappiness")), swap_total_kb),
        check_cpufreq(&governors, shard_cores),
        check_nic_irqs(&nic_irqs(host), shard_cores, &online),
        disk_irqs::check(host, &cfg.log_dir, shard_cores, &online),
        check_nofile(nofile, &need, &source),
        check_somaxconn(host.read_u64(&sysctl_path("net.core.somaxconn"))),
        check_tcp_buffers(sysctl("net.core.rmem_max"), sysctl("net.core.wmem_max"), sysctl("net.ipv4.tcp_rmem"), sysctl("net.ipv4.tcp_wmem")),
    ]
}

/// Performs the changes of every `WARN` finding; manual fixes are reported, not done.
pub fn apply(host: &Host, findings: &[Finding]) -> Vec<Applied> {
    let mut out = Vec::new();
    for f in findings.iter().filter(|f| f.status == Status::Warn) {
        if f.changes.is_empty() {
            let detail = f.manual.clone().or_else(|| f.fix.clone()).unwrap_or_default();
            out.push(Applied { check: f.name, result: "manual", detail });
            continue;
        }
        for c in &f.changes {
            let path = host.path(&c.path);
            let old = host.read(&c.path).unwrap_or_else(|| "?".into());
            match std::fs::write(&path, format!("{}\n", c.value)) {
                Ok(()) => {
                    let new = host.read(&c.path).unwrap_or_else(|| "?".into());
                    out.push(Applied { check: f.name, result: "changed", detail: format!("{}: {old} -> {new}", c.path.display()) });
                }
                Err(e) => out.push(Applied { check: f.name, result: "failed", detail: format!("{}: {e}", c.path.display()) }),
            }
        }
    }
    out
}

/// `shardlog tune`. Exit code 0 whatever the findings; 2 when the profile cannot be loaded.
pub fn run(args: TuneArgs) -> ExitCode {
    let cfg = match Config::load(args.profile.as_deref(), None, &[]) {
        Ok(mut c) => {
            if let Some(d) = &args.log_dir {
                c.log_dir = d.clone();
            }
            c
        }
        Err(e) => {
            eprint_line(&format!("shardlog tune: {e}"));
            return ExitCode::from(2);
        }
    };
    let cores = shard_cores(&cfg);
    let host = Host::real();
    let findings = run_checks(&host, &cfg, &cores, args.profile.as_deref(), args.partitions);
    let applied = if !args.apply {
        None
    } else if crate::io::sys::geteuid() != 0 {
        Some(vec![Applied { check: "apply", result: "failed", detail: "not root: nothing applied (rerun as root)".into() }])
    } else {
        Some(apply(&host, &findings))
    };
    match args.output {
        OutputFormat::Text => {
            for f in &findings {
                print_line(&f.line());
            }
            if let Some(applied) = &applied {
                if applied.is_empty() {
                    print_line("apply: nothing to change");
                }
                for a in applied {
                    print_line(&format!("apply {} {}: {}", a.result, a.check, a.detail));
                }
            }
        }
        OutputFormat::Json => {
            let report = Report { profile: args.profile.as_deref(), shard_cores: &cores, checks: &findings, applied: applied.as_deref() };
            match serde_json::to_string_pretty(&report) {
                Ok(s) => print_line(&s),
                Err(e) => {
                    eprint_line(&format!("shardlog tune: {e}"));
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/interrupts of a 2-vCPU VM (virtio-net eth0 on virtio2) plus lines
    /// in the formats of bare-metal drivers and older kernels.
    const INTERRUPTS: &str = "           CPU0       CPU1       
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 26:          0         13  IO-APIC   4-edge      ttyS0
 28:          0          0 PCI-MSIX-0000:00:01.0   0-edge      virtio0-config
 34:         63          0 PCI-MSIX-0000:00:05.0   1-edge      virtio4-input
 36:          0     207820 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 37:          0          0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config
 38:          0       5250 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
 39:       3688          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0
 41:       3250          0 PCI-MSIX-0000:00:04.0   1-edge      virtio3-rx
 60:          5          7  IR-PCI-MSI 1572864-edge      enp3s0f0-TxRx-0
 61:          0          0  PCI-MSI-edge      eth1
 62:          1          2  IR-IO-APIC    8-fasteoi   rtc0, i8042
 63:          9          9  PCI-MSIX-0000:81:00.0  17-edge  mlx5_comp0@pci:0000:81:00.0
NMI:          0          0   Non-maskable interrupts
LOC:     581603     694614   Local timer interrupts
ERR:          0
";

    #[test]
    fn parses_interrupts_lines() {
        let lines = parse_interrupts(INTERRUPTS);
        assert_eq!(lines.len(), 13, "numbered lines only");
        assert_eq!(lines[0], IrqLine { irq: 24, counts: vec![1, 0], names: vec!["ACPI:Ged".into()] });
        let l38 = lines.iter().find(|l| l.irq == 38).unwrap();
        assert_eq!(l38.counts, vec![0, 5250]);
        assert_eq!(l38.names, vec!["virtio2-input.0".to_string()]);
        assert_eq!(lines.iter().find(|l| l.irq == 60).unwrap().names, vec!["enp3s0f0-TxRx-0".to_string()]);
        assert_eq!(lines.iter().find(|l| l.irq == 61).unwrap().names, vec!["eth1".to_string()]);
        assert_eq!(lines.iter().find(|l| l.irq == 62).unwrap().names, vec!["rtc0".to_string(), "i8042".to_string()]);
    }

    #[test]
    fn nic_queue_names() {
        let ifaces = vec!["eth0".to_string(), "lo".to_string(), "bond0".to_string()];
        let nic: Vec<u32> = parse_interrupts(INTERRUPTS).into_iter().filter(|l| l.names.iter().any(|n| is_nic_queue_name(n, &ifaces))).map(|l| l.irq).collect();
        assert_eq!(nic, vec![38, 39, 60, 61, 63]);
        assert!(!is_nic_queue_name("virtio2-config", &ifaces));
        assert!(!is_nic_queue_name("virtio4-input", &ifaces), "virtio-input device (keyboard), not a queue");
        assert!(!is_nic_queue_name("virtio1-req.0", &ifaces), "virtio-blk");
        assert!(is_nic_queue_name("bond0-rx-1", &ifaces));
        assert!(!is_nic_queue_name("bond0x", &ifaces));
        assert!(!is_nic_queue_name("lo-foo", &ifaces));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list("1"), Some(vec![1]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(format_cpu_list(&[3, 0, 1, 2, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[5]), "5");
        assert_eq!(format_cpu_list(&[]), "");
    }

    #[test]
    fn bracketed_and_tcp_mem() {
        assert_eq!(parse_bracketed("always [madvise] never"), Some("madvise"));
        assert_eq!(parse_bracketed("[always] madvise never"), Some("always"));
        assert_eq!(parse_bracketed("always madvise never"), None);
        assert_eq!(parse_tcp_mem_max("4096\t131072\t6291456"), Some(6_291_456));
        assert_eq!(parse_tcp_mem_max("4096 131072"), None);
    }

    #[test]
    fn nic_irq_check_moves_queues_off_shard_cores() {
        let irqs = vec![
            QueueIrq { irq: 38, name: "virtio2-input.0".into(), cpus: Some(vec![0, 1]) },
            QueueIrq { irq: 39, name: "virtio2-output.0".into(), cpus: Some(vec![0]) },
        ];
        // Dedicated profile: shards on 1-3, core 0 spare.
        let f = check_nic_irqs(&irqs, &[1, 2, 3], &[0, 1, 2, 3]);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.changes, vec![Change { path: "/proc/irq/38/smp_affinity_list".into(), value: "0".into() }]);
        assert!(f.fix.as_deref().unwrap().contains("echo 0 > /proc/irq/38/smp_affinity_list"));
        // All cores run shards: warn, nothing to apply.
        let f = check_nic_irqs(&irqs, &[0, 1], &[0, 1]);
        assert_eq!(f.status, Status::Warn);
        assert!(f.changes.is_empty() && f.manual.is_some());
        // Queues already off the shard cores.
        let f = check_nic_irqs(&irqs[1..], &[1, 2, 3], &[0, 1, 2, 3]);
        assert_eq!(f.status, Status::Ok);
        assert_eq!(check_nic_irqs(&[], &[0], &[0]).status, Status::Info);
    }

    #[test]
    fn shard_cores_check() {
        assert_eq!(check_shard_cores(&[0, 1], &[0, 1], None).status, Status::Ok);
        let f = check_shard_cores(&(1..=15).collect::<Vec<_>>(), &[0, 1], Some(Path::new("dedicated.toml")));
        assert_eq!(f.status, Status::Warn);
        assert!(f.finding.contains("cores 2-15 are not online"), "{}", f.finding);
        assert!(f.fix.unwrap().contains("shard.cores=1"));
    }

    #[test]
    fn memlock_check() {
        const MIB: u64 = 1 << 20;
        let f = check_memlock(Some(Rlimit { soft: Some(8 * MIB), hard: Some(8 * MIB) }), 2, 4 * MIB);
        assert_eq!(f.status, Status::Warn);
        assert!(f.finding.contains("needs 16 MiB") && f.finding.contains("capped to 2 MiB"), "{}", f.finding);
        assert!(f.changes.is_empty(), "per-process limit: never applied");
        let f = check_memlock(Some(Rlimit { soft: Some(8 * MIB), hard: Some(64 * MIB) }), 2, 4 * MIB);
        assert_eq!(f.status, Status::Ok, "start raises soft to hard");
        assert_eq!(check_memlock(Some(Rlimit { soft: None, hard: None }), 16, 4 * MIB).status, Status::Ok);
    }

    #[test]
    fn sysctl_checks() {
        let f = check_swappiness(Some(60), Some(1024));
        assert_eq!((f.status, f.changes.len()), (Status::Warn, 1));
        assert_eq!(f.changes[0], Change { path: "/proc/sys/vm/swappiness".into(), value: "1".into() });
        assert_eq!(check_swappiness(Some(60), Some(0)).status, Status::Info);
        assert_eq!(check_swappiness(Some(1), Some(1024)).status, Status::Ok);
        assert_eq!(check_somaxconn(Some(4096)).status, Status::Ok);
        assert_eq!(check_somaxconn(Some(128)).changes[0].value, "4096");
        let f = check_tcp_buffers(Some("4194304".into()), Some("16777216".into()), Some("4096 131072 6291456".into()), Some("4096 16384 33554432".into()));
        assert_eq!(f.status, Status::Warn);
        assert_eq!(
            f.changes,
            vec![
                Change { path: "/proc/sys/net/core/rmem_max".into(), value: "16777216".into() },
                Change { path: "/proc/sys/net/ipv4/tcp_rmem".into(), value: "4096 131072 16777216".into() },
            ]
        );
        assert!(f.fix.unwrap().starts_with("sysctl -w net.core.rmem_max=16777216; sysctl -w net.ipv4.tcp_rmem='4096 131072 16777216'"));
    }

    #[test]
    fn io_uring_thp_cpufreq_nofile() {
        assert_eq!(check_io_uring(Some("0".into()), Ok(())).status, Status::Ok);
        let f = check_io_uring(Some("2".into()), Err("Operation not permitted".into()));
        assert_eq!((f.status, f.changes[0].value.as_str()), (Status::Warn, "0"));
        assert!(check_io_uring(Some("0".into()), Err("EPERM".into())).changes.is_empty(), "seccomp: manual");
        assert_eq!(check_thp(Some("always [madvise] never".into())).status, Status::Ok);
        assert_eq!(check_thp(Some("always madvise [never]".into())).changes[0].value, "madvise");
        assert_eq!(check_thp(None).status, Status::Info);
        assert_eq!(check_cpufreq(&[(0, None), (1, None)], &[0, 1]).status, Status::Info);
        let f = check_cpufreq(&[(0, Some("powersave".into())), (1, Some("performance".into())), (2, Some("schedutil".into()))], &[0, 1]);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.changes, vec![Change { path: "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor".into(), value: "performance".into() }]);
        let none = NofileNeed::estimate(0, 2, 1 << 20);
        let dir = PartitionSource::LogDir("/data".into());
        assert_eq!(check_nofile(Some(Rlimit { soft: Some(20000), hard: Some(20000) }), &none, &dir).status, Status::Warn);
        let f = check_nofile(Some(Rlimit { soft: Some(1024), hard: Some(1 << 20) }), &none, &dir);
        assert_eq!(f.status, Status::Ok, "start raises soft to hard: {}", f.finding);
        assert_eq!(check_nofile(Some(Rlimit { soft: Some(1 << 20), hard: None }), &none, &dir).status, Status::Ok);
        // 500 partitions do not fit in 256: the finding says so and names the need.
        let f = check_nofile(Some(Rlimit { soft: Some(256), hard: Some(256) }), &NofileNeed::estimate(500, 2, 256), &dir);
        assert_eq!(f.status, Status::Warn);
        assert!(f.finding.contains("the 500 partitions in /data need 1088 = ") && f.finding.contains("offline"), "{}", f.finding);
        assert!(f.fix.unwrap().starts_with("`ulimit -Hn 1048576 && ulimit -n 1048576`"));
        // Planned partitions beyond even the recommended limit: the fix asks for the need.
        let big = NofileNeed::estimate(2_000_000, 2, 1 << 20);
        let f = check_nofile(Some(Rlimit { soft: Some(1 << 20), hard: Some(1 << 20) }), &big, &PartitionSource::Planned);
        assert_eq!(f.status, Status::Warn);
        assert!(f.finding.contains("2000000 planned partitions"), "{}", f.finding);
        assert!(f.fix.unwrap().contains(&format!("LimitNOFILE={}", big.total())));
    }

    #[test]
    fn line_format() {
        let f = Finding::new("somaxconn", Status::Warn, "net.core.somaxconn = 128").fix("sysctl -w net.core.somaxconn=4096");
        assert_eq!(f.line(), "WARN  somaxconn: net.core.somaxconn = 128 — fix: sysctl -w net.core.somaxconn=4096");
        assert_eq!(Finding::new("nofile", Status::Ok, "soft 1").line(), "OK    nofile: soft 1");
    }

    #[test]
    fn reads_and_applies_against_a_fixture_root() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::at(dir.path());
        let put = |p: &str, v: &str| {
            let path = host.path(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, v).unwrap();
        };
        put("/proc/interrupts", INTERRUPTS);
        put("/proc/irq/38/smp_affinity_list", "0-1\n");
        put("/proc/irq/39/smp_affinity_list", "1\n");
        put("/proc/sys/vm/swappiness", "60\n");
        put("/sys/devices/system/cpu/online", "0-1\n");
        std::fs::create_dir_all(host.path("/sys/class/net/eth0/device")).unwrap();
        assert_eq!(host.online_cpus(), vec![0, 1]);
        let irqs = nic_irqs(&host);
        assert_eq!(irqs.iter().map(|i| i.irq).collect::<Vec<_>>(), vec![38, 39, 60, 61, 63]);
        assert_eq!(irqs[0].cpus, Some(vec![0, 1]));
        let f = check_nic_irqs(&irqs[..2], &[1], &[0, 1]);
        let sw = check_swappiness(host.read_u64("/proc/sys/vm/swappiness"), Some(4));
        let applied = apply(&host, &[f, sw]);
        assert_eq!(applied.len(), 3, "{applied:?}");
        assert!(applied.iter().all(|a| a.result == "changed"));
        assert_eq!(host.read("/proc/irq/38/smp_affinity_list").as_deref(), Some("0"));
        assert_eq!(host.read("/proc/sys/vm/swappiness").as_deref(), Some("1"));
        assert_eq!(applied[2].detail, "/proc/sys/vm/swappiness: 60 -> 1");
    }
}
