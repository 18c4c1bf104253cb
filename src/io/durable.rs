//! Replacing a small file durably without blocking the shard: the new content is
//! written to `<name>.tmp` and fdatasynced through the ring, renamed over the old
//! file, and the directory fsynced through the ring, so a crash leaves either the
//! old or the new file, whole. Used for the metadata log's checkpoints and the
//! shard placement table.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::ring::Ring;

/// Atomically replaces `path` with `content` (see the module doc).
pub async fn replace_file(ring: &Ring, path: &Path, content: Bytes) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other(format!("{} has no directory", path.display())))?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // open/rename are metadata calls (no data to wait for); writes and syncs go through the ring.
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    let keep = Rc::new(content);
    let iov = vec![libc::iovec { iov_base: keep.as_ptr() as *mut libc::c_void, iov_len: keep.len() }];
    ring.writev_all(file.as_raw_fd(), iov, keep.clone(), 0).await?;
    ring.fdatasync(file.as_raw_fd()).await?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let dir_file = std::fs::File::open(dir)?;
    ring.fsync(dir_file.as_raw_fd()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.json");
        let p = path.clone();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(64 * 1024)
            .spawn(move || async move {
                let ring = Ring::start().unwrap();
                replace_file(&ring, &p, Bytes::from_static(b"first, longer content")).await.unwrap();
                replace_file(&ring, &p, Bytes::from_static(b"second")).await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert!(!dir.path().join("table.json.tmp").exists());
    }
}
