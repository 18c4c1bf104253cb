//! One broker per log dir and per listener port.
//!
//! Two brokers on one log dir interleave appends, recovery and metadata writes
//! and lose acknowledged records. Two on one port split its clients between
//! them, each serving its own log: every shard binds with SO_REUSEPORT, and the
//! kernel lets any process of the same user join such a port. Start-up refuses
//! both, before it reads or writes anything in the log dir:
//!
//! - **Log dir**: an exclusive `flock` (LOCK_EX | LOCK_NB) on `<log.dirs>/.lock`,
//!   Kafka's file name, held by the open file until the process exits; the
//!   kernel drops it even on kill -9, so a stale file never blocks a restart.
//!   The holder writes its pid into the file, so a refusal can name it.
//! - **Port**, three checks, each for a case the others miss:
//!   1. a plain connect to the address (loopback for a wildcard one) before
//!      binding: if anything accepts it, the port is served, whoever serves it
//!      and however it bound. A connect, not a bind without SO_REUSEPORT: such
//!      a bind also fails on the TIME_WAIT sockets a killed broker leaves (they
//!      keep its SO_REUSEPORT but not SO_REUSEADDR), which would refuse every
//!      restart after a crash for a minute;
//!   2. the bind itself: a process that bound the port without SO_REUSEPORT
//!      makes ours fail with EADDRINUSE, reported naming the port;
//!   3. a claim on the port that two starting brokers cannot both win: an
//!      abstract unix socket named after the port (`@shardlog/port/PORT`),
//!      unique per network namespace like the port itself and released by the
//!      kernel when the process dies. Checks 1 and 2 alone would let two brokers
//!      started at the same moment both pass before either listens. One
//!      shardlog per port per host (network namespace), whatever the address.
//!
//! A broker killed a moment ago may still hold its port: its io_uring ring is
//! torn down by the kernel after the process is gone, and the listening
//! sockets the ring references live until then (seen: a restart right after
//! kill -9 under load found the port still accepting). So checks 1 and 3 are
//! retried for up to [`PORT_RELEASE_WAIT`] before the port counts as taken:
//! a dying holder lets go within that time, a live one does not.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use super::StartError;

/// The lock file in the log dir (Kafka's name).
pub const LOCK_FILE: &str = ".lock";

/// How long the connect probe waits for an answer: a live listener on this
/// host answers at once; silence means nobody (or a firewall) is there.
const CONNECT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a port held by another process may take to be released (a killed
/// broker's ring teardown) before start-up gives up on it.
pub const PORT_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Pause between two tries of a port check.
const PORT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Runs `check` until it passes or [`PORT_RELEASE_WAIT`] has passed; the last error counts.
fn retry_while_held<T>(mut check: impl FnMut() -> Result<T, StartError>) -> Result<T, StartError> {
    let deadline = std::time::Instant::now() + PORT_RELEASE_WAIT;
    loop {
        match check() {
            Err(StartError::PortInUse { .. }) if std::time::Instant::now() < deadline => std::thread::sleep(PORT_RETRY_PAUSE),
            other => return other,
        }
    }
}

/// The held lock on a log dir; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct LogDirLock {
    _file: File,
}

/// Takes the exclusive lock on `dir` (which must exist) and writes our pid
/// into the lock file. Fails with [`StartError::LogDirLocked`], naming the
/// lock path and the holder's pid, when another process holds it.
pub fn lock_log_dir(dir: &Path) -> Result<LogDirLock, StartError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StartError::Io(std::io::Error::new(e.kind(), format!("opening the log dir lock {}: {e}", path.display()))))?;
    // std's File::try_lock is flock(LOCK_EX | LOCK_NB) on Linux.
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
            return Err(StartError::LogDirLocked { lock: path, pid });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StartError::Io(std::io::Error::new(e.kind(), format!("locking {}: {e}", path.display()))));
        }
    }
    // The pid is for the message of a refused broker only; failing to write it is harmless.
    let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(LogDirLock { _file: file })
}

/// The port claim (check 3 of the module doc); released on drop or exit.
#[derive(Debug)]
pub struct PortClaim {
    _socket: UnixDatagram,
}

/// Check 1: refuses a port on which something already accepts connections.
/// Port 0 (the kernel picks a free one) needs no check.
pub fn check_port_not_served(addr: SocketAddr) -> Result<(), StartError> {
    if addr.port() == 0 {
        return Ok(());
    }
    let target = SocketAddr::new(
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        },
        addr.port(),
    );
    retry_while_held(|| match TcpStream::connect_timeout(&target, CONNECT_PROBE_TIMEOUT) {
        Ok(_) => Err(StartError::PortInUse { port: addr.port(), why: format!("a connection to {target} was accepted (for {PORT_RELEASE_WAIT:?})") }),
        Err(_) => Ok(()),
    })
}

/// Check 2's report: a bind that failed with EADDRINUSE names the port.
pub fn bind_error(addr: SocketAddr, e: std::io::Error) -> StartError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        StartError::PortInUse { port: addr.port(), why: format!("binding {addr}: {e}") }
    } else {
        StartError::Io(std::io::Error::new(e.kind(), format!("binding {addr}: {e}")))
    }
}

/// Check 3: claims `port` for this process among shardlog brokers on this host.
pub fn claim_port(port: u16) -> Result<PortClaim, StartError> {
    let name = format!("shardlog/port/{port}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    retry_while_held(|| match UnixDatagram::bind_addr(&addr) {
        Ok(socket) => Ok(PortClaim { _socket: socket }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(StartError::PortInUse { port, why: format!("another shardlog broker on this host holds the claim @{name}") })
        }
        Err(e) => Err(StartError::Io(std::io::Error::new(e.kind(), format!("claiming port {port} (@{name}): {e}")))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_dir_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_log_dir(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        // flock locks belong to the open file, so a second open in this process conflicts too.
        match lock_log_dir(dir.path()) {
            Err(StartError::LogDirLocked { lock, pid }) => {
                assert_eq!(lock, dir.path().join(LOCK_FILE));
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected LogDirLocked, got {other:?}"),
        }
        drop(held);
        lock_log_dir(dir.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn a_served_port_is_refused_and_a_free_one_passes() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let e = check_port_not_served(SocketAddr::from(([0, 0, 0, 0], port))).unwrap_err();
        assert!(e.to_string().contains(&format!("port {port}")), "{e}");
        drop(l);
        check_port_not_served(SocketAddr::from(([127, 0, 0, 1], port))).expect("nobody listens any more");
        check_port_not_served(SocketAddr::from(([127, 0, 0, 1], 0))).expect("port 0 is never served");
    }

    #[test]
    fn a_port_claim_is_exclusive() {
        // An unlikely port number, so a broker running on this host does not interfere.
        let port = 65_011;
        let c = claim_port(port).unwrap();
        assert!(matches!(claim_port(port), Err(StartError::PortInUse { port: 65_011, .. })));
        drop(c);
        claim_port(port).expect("released on drop");
    }
}
