//! The `disk_irq_affinity` check of `shardlog tune`: which CPUs take the
//! interrupts of the disk that holds the log dir.
//!
//! A write's completion interrupt, and the block-layer and file-system work
//! that follows it, runs on the CPU the interrupt is delivered to. On a shard
//! core it preempts that shard's event loop. Keeping disk interrupts off the
//! reactor cores is what Redpanda's disk IRQ tuner does. How much it matters
//! depends on the interrupt rate. On this project's 2-core VM, the disk's only
//! queue interrupt (`virtio1-req.0`) is delivered to a shard core. There,
//! moving the shard to the other core did not change produce p99 at 195 MB/s
//! (bench/results-2026-12-07/irq-placement.txt). So this is advice, not a
//! measured win.
//!
//! blk-mq queue interrupts are often kernel-managed. For those, the mask in
//! `smp_affinity_list` may name every CPU while the kernel delivers to one,
//! and a write to the mask is refused (EIO or EPERM). So the check reads the
//! effective affinity (`effective_affinity_list`) where the kernel exposes
//! it. The fix carries the write, and `--apply` reports it as failed when the
//! kernel refuses. The fix also names the way that always works: shard cores
//! that leave the interrupt's CPU out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{format_cpu_list, parse_cpu_list, parse_interrupts, with_affinity_writes, Finding, Host, QueueIrq, Status};

/// Check name.
pub const NAME: &str = "disk_irq_affinity";

/// The disk (`vda`, `nvme0n1`, `dm-0`) holding `dir`: the block device of its
/// nearest existing ancestor, the whole disk where that is a partition.
pub fn disk_of(host: &Host, dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::path::absolute(dir).ok()?;
    let dev = dir.ancestors().find_map(|d| std::fs::metadata(d).ok())?.dev();
    disk_of_dev(host, libc::major(dev), libc::minor(dev))
}

/// The whole disk behind block device `major:minor` (`/sys/dev/block`).
pub fn disk_of_dev(host: &Host, major: u32, minor: u32) -> Option<String> {
    let dev = std::fs::canonicalize(host.path(format!("/sys/dev/block/{major}:{minor}"))).ok()?;
    let disk = if dev.join("partition").exists() { dev.parent()? } else { dev.as_path() };
    Some(disk.file_name()?.to_str()?.to_string())
}

/// The disks under `disk` that have hardware queues: itself, or for a
/// device-mapper or md device the disks in its `slaves/`, recursively.
fn hardware_disks(host: &Host, disk: &str, depth: usize) -> Vec<String> {
    let slaves = host.list(&format!("/sys/block/{disk}/slaves"));
    if slaves.is_empty() || depth == 0 {
        return vec![disk.to_string()];
    }
    slaves.iter().flat_map(|s| hardware_disks(host, s, depth - 1)).collect()
}

/// Whether `name` looks like a PCI function (`0000:00:02.0`).
fn is_pci_function(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.' && name.chars().enumerate().all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

/// The device directory of `disk` (`/sys/block/DISK/device`, resolved: its
/// name is `virtio1`, `nvme0`, ...) and the MSI vectors of the PCI function
/// at or above it.
fn disk_device(host: &Host, disk: &str) -> Option<(PathBuf, BTreeSet<u32>)> {
    let dev = std::fs::canonicalize(host.path(format!("/sys/block/{disk}/device"))).ok()?;
    let msi = dev
        .ancestors()
        .find(|a| a.file_name().and_then(|n| n.to_str()).is_some_and(is_pci_function))
        .and_then(|pci| std::fs::read_dir(pci.join("msi_irqs")).ok())
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).collect())
        .unwrap_or_default();
    Some((dev, msi))
}

/// Whether an action name is a queue of device `dev` (`virtio1` -> `virtio1-req.0`,
/// `nvme0` -> `nvme0q1`): the fallback where no MSI vectors are listed.
fn is_queue_of(name: &str, dev: &str) -> bool {
    let Some(rest) = name.strip_prefix(dev) else { return false };
    rest.starts_with("-req") || rest.strip_prefix('q').is_some_and(|q| !q.is_empty() && q.chars().all(|c| c.is_ascii_digit()))
}

/// Whether an action name is a control vector, not a queue: virtio's
/// `virtio1-config`, NVMe's admin queue `nvme0q0`.
fn is_control_vector(name: &str) -> bool {
    name.ends_with("-config") || name.starts_with("nvme") && name.ends_with("q0")
}

/// The queue interrupts of `disk` (and of the disks under it), with the CPUs
/// they are delivered to. Control vectors are left out.
pub fn disk_irqs(host: &Host, disk: &str) -> Vec<QueueIrq> {
    let Some(text) = host.read("/proc/interrupts") else { return Vec::new() };
    let lines = parse_interrupts(&text);
    let mut out: Vec<QueueIrq> = Vec::new();
    for d in hardware_disks(host, disk, 4) {
        let Some((dev, msi)) = disk_device(host, &d) else { continue };
        let dev_name = dev.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        for l in &lines {
            let Some(name) = l.names.iter().find(|n| !is_control_vector(n) && (msi.contains(&l.irq) || is_queue_of(n, &dev_name))) else { continue };
            if out.iter().any(|o| o.irq == l.irq) {
                continue;
            }
            let read = |file: &str| host.read(format!("/proc/irq/{}/{file}", l.irq)).and_then(|s| parse_cpu_list(&s));
            out.push(QueueIrq { irq: l.irq, name: name.clone(), cpus: read("effective_affinity_list").or_else(|| read("smp_affinity_list")) });
        }
    }
    out
}

/// The `disk_irq_affinity` finding of `host`: the disk holding `log_dir` and
/// where its queue interrupts are delivered.
pub fn check(host: &Host, log_dir: &Path, shard_cores: &[usize], online: &[usize]) -> Finding {
    let disk = disk_of(host, log_dir);
    let irqs = disk.as_deref().map(|d| disk_irqs(host, d)).unwrap_or_default();
    check_disk_irqs(log_dir, disk.as_deref(), &irqs, shard_cores, online)
}

/// The finding for the disk holding `log_dir` (`disk`, None when unknown) and
/// its queue interrupts `irqs`: OK when none reaches a shard core; INFO when
/// every shard core has a queue of its own; else WARN with the affinity
/// writes to the spare cores, or with a profile change when every core runs
/// a shard.
pub fn check_disk_irqs(log_dir: &Path, disk: Option<&str>, irqs: &[QueueIrq], shard_cores: &[usize], online: &[usize]) -> Finding {
    let Some(disk) = disk else {
        return Finding::new(NAME, Status::Info, format!("no block device found behind {} (tmpfs, or no /sys/dev/block entry)", log_dir.display()));
    };
    if irqs.is_empty() {
        return Finding::new(
            NAME,
            Status::Info,
            format!(
                "no queue interrupts found for disk {disk}, which holds {} (a loop device or tmpfs, or a driver naming its queues differently)",
                log_dir.display()
            ),
        );
    }
    let on_shards: Vec<&QueueIrq> = irqs.iter().filter(|i| i.reaches(shard_cores)).collect();
    let shards = format_cpu_list(shard_cores);
    if on_shards.is_empty() {
        let all: Vec<String> = irqs.iter().map(QueueIrq::describe).collect();
        return Finding::new(NAME, Status::Ok, format!("disk {disk}: {} queue IRQs, none delivered to shard cores {shards} ({})", irqs.len(), all.join(", ")));
    }
    let hit_cpus: BTreeSet<usize> = on_shards.iter().flat_map(|i| i.cpus.iter().flatten().copied()).filter(|c| shard_cores.contains(c)).collect();
    if irqs.len() >= shard_cores.len() && shard_cores.iter().all(|c| hit_cpus.contains(c)) {
        // blk-mq with a queue per CPU: each shard's I/O completes on its own
        // core, by the kernel's design; there is nothing to move.
        return Finding::new(
            NAME,
            Status::Info,
            format!("disk {disk}: {} queue IRQs reach every shard core {shards} (a queue per core: each shard completes its own I/O)", irqs.len()),
        );
    }
    // Always possible, managed interrupt or not: shards off the CPUs the
    // interrupts are delivered to, so they run beside the shards.
    let around = format!("leave cores {} out of shard.cores (a profile)", format_cpu_list(&hit_cpus.into_iter().collect::<Vec<_>>()));
    let hits: Vec<String> = on_shards.iter().map(|i| i.describe()).collect();
    let what = format!(
        "disk {disk} (holds {}): {} of {} queue IRQs are delivered to shard cores {shards}: {}",
        log_dir.display(),
        on_shards.len(),
        irqs.len(),
        hits.join(", ")
    );
    let spare: Vec<usize> = online.iter().copied().filter(|c| !shard_cores.contains(c)).collect();
    if spare.is_empty() {
        return Finding::new(NAME, Status::Warn, format!("{what}; every online core runs a shard, so there is no core to move them to"))
            .fix(format!("{around}, so the interrupts run beside the shards, not inside them"))
            .manual("choosing the cores is a profile decision");
    }
    let target = format_cpu_list(&spare);
    let fallback = format!("if the kernel refuses (EIO/EPERM: a kernel-managed blk-mq queue interrupt), {around}");
    with_affinity_writes(Finding::new(NAME, Status::Warn, format!("{what}; spare cores {target}")), &on_shards, &target, Some(&fallback))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// A fixture host: a virtio-blk disk `vda` (partition `vda1`) on PCI
    /// function 0000:00:02.0 with MSI vectors 35 (config) and 36 (queue), and
    /// an NVMe disk on 0000:01:00.0 without `msi_irqs` (names decide).
    fn fixture(dir: &Path) -> io::Result<Host> {
        let host = Host::at(dir);
        let parent_of = |p: &Path| -> io::Result<()> { std::fs::create_dir_all(p.parent().unwrap_or(p)) };
        let put = |p: &str, v: &str| -> io::Result<()> {
            let path = host.path(p);
            parent_of(&path)?;
            std::fs::write(path, v)
        };
        let link = |p: &str, to: &str| -> io::Result<()> {
            let path = host.path(p);
            parent_of(&path)?;
            std::fs::create_dir_all(host.path(to))?;
            std::os::unix::fs::symlink(host.path(to), path)
        };
        put(
            "/proc/interrupts",
            "           CPU0       CPU1       CPU2       CPU3
 35:          0          0          0          0 PCI-MSIX-0000:00:02.0   0-edge      virtio1-config
 36:          0     207820          0          0 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 38:          0       5250          0          0 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
 50:          1          0          0          0 PCI-MSIX-0000:01:00.0   0-edge      nvme0q0
 51:        100          0          0          0 PCI-MSIX-0000:01:00.0   1-edge      nvme0q1
 52:          0        100          0          0 PCI-MSIX-0000:01:00.0   2-edge      nvme0q2
",
        )?;
        let vda = "/sys/devices/pci0000:00/0000:00:02.0/virtio1";
        put(&format!("{vda}/../msi_irqs/35"), "msix")?;
        put(&format!("{vda}/../msi_irqs/36"), "msix")?;
        put(&format!("{vda}/block/vda/vda1/partition"), "1")?;
        link("/sys/block/vda/device", vda)?;
        link("/sys/dev/block/253:0", &format!("{vda}/block/vda"))?;
        link("/sys/dev/block/253:1", &format!("{vda}/block/vda/vda1"))?;
        link("/sys/block/nvme0n1/device", "/sys/devices/pci0000:00/0000:01:00.0/nvme/nvme0")?;
        link("/sys/block/dm-0/slaves/nvme0n1", "/sys/block/nvme0n1")?;
        put("/proc/irq/36/smp_affinity_list", "0-3\n")?;
        put("/proc/irq/36/effective_affinity_list", "1\n")?;
        put("/proc/irq/50/smp_affinity_list", "0\n")?;
        put("/proc/irq/51/smp_affinity_list", "0\n")?;
        put("/proc/irq/52/smp_affinity_list", "1\n")?;
        Ok(host)
    }

    #[test]
    fn finds_the_disk_and_its_queue_interrupts() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let host = fixture(dir.path())?;
        assert_eq!(disk_of_dev(&host, 253, 0).as_deref(), Some("vda"));
        assert_eq!(disk_of_dev(&host, 253, 1).as_deref(), Some("vda"), "a partition resolves to its disk");
        assert_eq!(disk_of_dev(&host, 8, 0), None);
        // MSI vectors of the PCI function; the config vector is not a queue;
        // the effective affinity wins over the mask.
        assert_eq!(disk_irqs(&host, "vda"), vec![QueueIrq { irq: 36, name: "virtio1-req.0".into(), cpus: Some(vec![1]) }]);
        // No msi_irqs listed: the names decide; dm-0 resolves to its slave;
        // the admin queue (nvme0q0) is no data queue.
        let nvme: Vec<(u32, Option<Vec<usize>>)> = disk_irqs(&host, "dm-0").into_iter().map(|i| (i.irq, i.cpus)).collect();
        assert_eq!(nvme, vec![(51, Some(vec![0])), (52, Some(vec![1]))]);
        assert!(disk_irqs(&host, "loop0").is_empty());
        assert!(is_pci_function("0000:00:02.0") && !is_pci_function("0:0:0:0") && !is_pci_function("target0:0:0"));
        Ok(())
    }

    #[test]
    fn warns_when_a_queue_interrupt_reaches_a_shard_core() {
        let log = Path::new("/data");
        let irqs = vec![
            QueueIrq { irq: 36, name: "virtio1-req.0".into(), cpus: Some(vec![1]) },
            QueueIrq { irq: 37, name: "virtio1-req.1".into(), cpus: Some(vec![0]) },
        ];
        // Shards on 1-3, core 0 spare: move 36 there (or keep the shards off 1).
        let f = check_disk_irqs(log, Some("vda"), &irqs, &[1, 2, 3], &[0, 1, 2, 3]);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(f.changes.len(), 1);
        assert_eq!((f.changes[0].path.to_str(), f.changes[0].value.as_str()), (Some("/proc/irq/36/smp_affinity_list"), "0"));
        let fix = f.fix.unwrap_or_default();
        assert!(fix.contains("echo 0 > /proc/irq/36/smp_affinity_list") && fix.contains("leave cores 1 out of shard.cores"), "{fix}");
        // The 2-core VM: both cores run shards, IRQ 36 on core 1.
        let f = check_disk_irqs(log, Some("vda"), &irqs[..1], &[0, 1], &[0, 1]);
        assert_eq!(f.status, Status::Warn);
        assert!(f.changes.is_empty() && f.manual.is_some());
        assert!(f.fix.unwrap_or_default().starts_with("leave cores 1 out of shard.cores"));
        // A queue per CPU (NVMe): every shard completes its own I/O.
        let per_cpu: Vec<QueueIrq> = (0..4).map(|c| QueueIrq { irq: 60 + c as u32, name: format!("nvme0q{}", c + 1), cpus: Some(vec![c]) }).collect();
        assert_eq!(check_disk_irqs(log, Some("nvme0n1"), &per_cpu, &[0, 1, 2, 3], &[0, 1, 2, 3]).status, Status::Info);
        // Only core 0 takes interrupts and shards run on 1-3.
        assert_eq!(check_disk_irqs(log, Some("vda"), &irqs[1..], &[1, 2, 3], &[0, 1, 2, 3]).status, Status::Ok);
        assert_eq!(check_disk_irqs(log, Some("loop0"), &[], &[0], &[0]).status, Status::Info);
        assert_eq!(check_disk_irqs(log, None, &irqs, &[0], &[0]).status, Status::Info);
    }
}
