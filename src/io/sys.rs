//! Safe wrappers over the few raw system calls the rest of the broker needs,
//! so `unsafe` stays in `io/` and `runtime/` (the crate denies it elsewhere).

use std::io;
use std::os::fd::RawFd;
use std::path::Path;

/// `fallocate(0)`: allocates `len` bytes of disk from `offset`, growing the file's
/// size over them (they read as zeros).
pub fn fallocate(fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: fallocate takes only integers; an invalid fd is an error, not UB.
    let r = unsafe { libc::fallocate(fd, 0, offset as i64, len as i64) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `shutdown(SHUT_RDWR)` of a socket: wakes its pending reads with end of file.
/// Errors (a socket already shut down) are ignored: the intent is met.
pub fn shutdown_socket(fd: RawFd) {
    // SAFETY: shutdown takes only integers; an invalid fd is an error, not UB.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// (total, available to this user) bytes of the filesystem holding `path` (statvfs).
pub fn fs_space(path: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value of it.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and an out-struct of the right type.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let bs = st.f_frsize as i64;
    Some((st.f_blocks as i64 * bs, st.f_bavail as i64 * bs))
}

/// `getrlimit(2)` of this process: (soft, hard), `None` meaning unlimited; None on failure.
pub fn getrlimit(resource: libc::__rlimit_resource_t) -> Option<(Option<u64>, Option<u64>)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into our local struct only.
    if unsafe { libc::getrlimit(resource, &mut lim) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on 64-bit Linux, not everywhere
    let conv = |v: libc::rlim_t| if v == libc::RLIM_INFINITY { None } else { Some(v as u64) };
    Some((conv(lim.rlim_cur), conv(lim.rlim_max)))
}

/// The effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `preadv2(RWF_NOWAIT)`: reads from `fd` at `pos` only what is already in the
/// page cache, never waiting for the device. Answers the bytes read (possibly
/// short: part of the range was cached, or end of file), `WouldBlock` when the
/// first byte is not cached, or another error (`Unsupported` on a file system
/// without it): the caller then reads through the ring.
pub fn pread_cached(fd: RawFd, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: one iovec describing `buf`, which we borrow mutably for the call;
    // the kernel writes at most `buf.len()` bytes into it. An invalid fd is an error.
    let n = unsafe { libc::preadv2(fd, &iov, 1, pos as libc::off_t, libc::RWF_NOWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EAGAIN) => io::Error::from(io::ErrorKind::WouldBlock),
            Some(libc::EOPNOTSUPP) => io::Error::from(io::ErrorKind::Unsupported),
            _ => e,
        });
    }
    Ok(n as usize)
}

/// An open directory, for metadata calls relative to it (`openat`, `renameat`,
/// `unlinkat`) and for fsyncing it through the ring (its fd).
///
/// Names resolve in the directory that was opened, not by path: when that
/// directory is removed meanwhile (a deleted topic), every call fails with
/// `NotFound` instead of touching a new directory created at the same path.
/// These are metadata calls (no data to wait for), so they stay plain syscalls.
#[derive(Debug)]
pub struct Dir {
    file: std::fs::File,
}

impl Dir {
    /// Opens the directory at `path` (read-only, close-on-exec).
    pub fn open(path: &Path) -> io::Result<Dir> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(path)?;
        Ok(Dir { file })
    }

    /// The directory's descriptor (for `Ring::fsync`).
    pub fn fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.file.as_raw_fd()
    }

    /// `renameat(2)` of `from` to `to`, both names in this directory.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        // SAFETY: two valid C strings and a directory fd we own for the call.
        let r = unsafe { libc::renameat(self.fd(), from.as_ptr(), self.fd(), to.as_ptr()) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `unlinkat(2)` of `name`; a name that is not there is no error.
    pub fn remove_if_present(&self, name: &str) -> io::Result<()> {
        let name = c_name(name)?;
        // SAFETY: a valid C string and a directory fd we own for the call.
        let r = unsafe { libc::unlinkat(self.fd(), name.as_ptr(), 0) };
        match r {
            0 => Ok(()),
            _ => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::NotFound => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Creates (or truncates) `name` for writing (`openat(2)`, mode 0644).
    pub fn create(&self, name: &str) -> io::Result<std::fs::File> {
        use std::os::fd::FromRawFd;
        let name = c_name(name)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        // SAFETY: a valid C string and a directory fd we own for the call.
        let fd = unsafe { libc::openat(self.fd(), name.as_ptr(), flags, 0o644 as libc::c_uint) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }
}

/// A file name as a C string; a name with a `/` or a NUL is refused (names only).
fn c_name(name: &str) -> io::Result<std::ffi::CString> {
    if name.contains('/') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("not a plain file name: {name}")));
    }
    std::ffi::CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}
