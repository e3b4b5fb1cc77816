//! What identifies a file's version without reading it: modification time, length and inode. Watched
//! files (the config file, certificate files) are polled by comparing stamps, which sees editors that
//! replace the file, symlink swaps (Kubernetes ConfigMaps) and network filesystems alike.

use std::path::Path;
use std::time::SystemTime;

/// A file's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The stamp of `path`, or `None` if it cannot be read.
pub(crate) fn of(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&m),
        #[cfg(not(unix))]
        inode: 0,
    })
}
