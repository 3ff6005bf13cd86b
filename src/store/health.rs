//! Is the database file still the one the server writes to, and can it be written?
//! A server keeps its connections to the file it opened: deleted or replaced under it,
//! SQLite would go on writing into the unlinked inode, and everything it acknowledged
//! would be gone at the next start. So the writers ask before each batch and again
//! after committing it ([`FileWatch::check`]: a `stat`, an `access` and a `statvfs`, a
//! few microseconds), and acknowledge nothing while the answer is not "fine"; a full
//! disk is what SQLite says when a commit fails (`SQLITE_FULL`).
//!
//! The state is kept here for the server's watcher task, which logs each change once
//! (and the refused writes once per interval), and for the metrics.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// What is wrong with the database file, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FileState {
    Fine = 0,
    /// The path no longer exists (deleted, or its folder moved).
    Missing = 1,
    /// Another file is at the path now (restored, moved over).
    Replaced = 2,
    /// No write permission any more, or a read-only mount.
    ReadOnly = 3,
    /// The last write failed for want of space.
    Full = 4,
    /// The database server (PostgreSQL) cannot be reached.
    Unreachable = 5,
}

impl FileState {
    pub const ALL: [FileState; 6] = [
        Self::Fine,
        Self::Missing,
        Self::Replaced,
        Self::ReadOnly,
        Self::Full,
        Self::Unreachable,
    ];

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Missing,
            2 => Self::Replaced,
            3 => Self::ReadOnly,
            4 => Self::Full,
            5 => Self::Unreachable,
            _ => Self::Fine,
        }
    }

    /// As metrics and logs name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Fine => "ok",
            Self::Missing => "missing",
            Self::Replaced => "replaced",
            Self::ReadOnly => "read_only",
            Self::Full => "full",
            Self::Unreachable => "unreachable",
        }
    }

    /// What it means for the operator.
    pub fn explain(self, path: &Path) -> String {
        let path = path.display();
        match self {
            Self::Fine => format!("database {path} is writable"),
            Self::Missing => format!(
                "database {path} was deleted while the server runs: nothing is acknowledged until it is restored (same file) or the server is restarted"
            ),
            Self::Replaced => format!(
                "database {path} was replaced by another file while the server runs: nothing is acknowledged until the server is restarted to open it"
            ),
            Self::ReadOnly => format!(
                "database {path} became read-only (permissions or mount): nothing is acknowledged until it is writable again"
            ),
            Self::Full => format!(
                "database {path}: the disk is full: nothing is acknowledged until space is freed"
            ),
            Self::Unreachable => format!(
                "database {path} cannot be reached: logins decided from memory go on, nothing else is acknowledged until it answers again"
            ),
        }
    }
}

/// The file a store opened, by device and inode.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl FileWatch {
    /// Remembers which file is at `path` now.
    pub fn new(path: &Path) -> std::io::Result<FileWatch> {
        let m = std::fs::metadata(path)?;
        Ok(FileWatch {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Whether the file at the path is still the one opened, and writable.
    pub fn check(&self) -> FileState {
        match std::fs::metadata(&self.path) {
            Err(_) => FileState::Missing,
            Ok(m) if (m.dev(), m.ino()) != (self.dev, self.ino) => FileState::Replaced,
            Ok(m) if !writable(&self.path, &m) => FileState::ReadOnly,
            Ok(_) => FileState::Fine,
        }
    }
}

/// Whether `path` can be written: a write bit in its mode (root ignores the mode, but
/// an operator who took every write bit away meant it), write access for this user,
/// and a file system not mounted read-only.
pub fn writable(path: &Path, meta: &std::fs::Metadata) -> bool {
    use nix::unistd::{AccessFlags, access};
    if meta.permissions().mode() & 0o222 == 0 || access(path, AccessFlags::W_OK).is_err() {
        return false;
    }
    !nix::sys::statvfs::statvfs(path)
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// Bytes free to this user on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    let (blocks, size) = (
        u64::from(s.blocks_available()),
        u64::from(s.fragment_size()),
    );
    Some(blocks.saturating_mul(size))
}

/// Free space under which `check-config` warns.
const LOW_SPACE: u64 = 64 << 20;

/// What `check-config` says of the database file: `Err` for what stops the server
/// from keeping data, `Ok` with warnings otherwise.
pub fn check_path(path: &Path) -> Result<Vec<String>, String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            if Path::new(&wal).exists() {
                return Err(format!(
                    "database {shown} is missing but its -wal file is there: it was deleted while a server had it open; restore it, or restart the server (it starts a new, empty one)"
                ));
            }
            return Ok(vec![format!(
                "database {shown} does not exist yet: `pinradius serve` (or `pinradius db init`) creates it"
            )]);
        }
    };
    if !meta.is_file() {
        return Err(format!("database {shown} is not a file"));
    }
    if !writable(path, &meta) {
        return Err(FileState::ReadOnly.explain(path));
    }
    let mut warnings = Vec::new();
    if let Some(free) = free_bytes(path)
        && free < LOW_SPACE
    {
        warnings.push(format!(
            "database {shown}: only {} MiB free on its disk; when it is full, accounting is not acknowledged",
            free >> 20
        ));
    }
    Ok(warnings)
}

/// The store's health: what the last look at the file found (anyone who looks: the
/// writers before and after each batch, the watcher every second), what the last
/// write found (the writers only: a full disk or a read-only error is known only by
/// writing), and the writes refused. Each half has one kind of owner, so neither
/// undoes what only the other can know: a full disk ends with the next write that
/// succeeds, not with a `statvfs` that sees free space.
#[derive(Debug, Default)]
pub struct Health {
    file: AtomicU8,
    /// Whether the database server (PostgreSQL) answered the last call of anyone:
    /// `Fine` or `Unreachable` (always `Fine` for a file).
    reach: AtomicU8,
    write: AtomicU8,
    refused: AtomicU64,
}

impl Health {
    /// The file's problem if it has one, else the database server's, else the last
    /// write's.
    pub fn state(&self) -> FileState {
        [&self.file, &self.reach, &self.write]
            .into_iter()
            .map(|s| FileState::from_u8(s.load(Ordering::Relaxed)))
            .find(|s| *s != FileState::Fine)
            .unwrap_or(FileState::Fine)
    }

    /// Whether the database server answered (`Fine`) or could not be reached.
    pub(super) fn set_reach(&self, state: FileState) {
        self.reach.store(state as u8, Ordering::Relaxed);
    }

    /// What a look at the file found.
    pub fn set_file(&self, state: FileState) {
        self.file.store(state as u8, Ordering::Relaxed);
    }

    /// What the last write found (`Fine` when it committed).
    pub(super) fn set_write(&self, state: FileState) {
        self.write.store(state as u8, Ordering::Relaxed);
    }

    /// Counts writes not acknowledged (the file's state, a full disk, or the lock
    /// held by another process past the wait).
    pub(super) fn refuse(&self, n: usize) {
        self.refused.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Writes refused so far (a counter: the watcher reports the difference).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_a_deleted_replaced_or_read_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        std::fs::write(&path, b"one").unwrap();
        let watch = FileWatch::new(&path).unwrap();
        assert_eq!(watch.check(), FileState::Fine);
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        perms.set_mode(0o400);
        std::fs::set_permissions(&path, perms.clone()).unwrap();
        assert_eq!(watch.check(), FileState::ReadOnly);
        perms.set_mode(0o600);
        std::fs::set_permissions(&path, perms).unwrap();
        assert_eq!(watch.check(), FileState::Fine);
        let moved = dir.path().join("moved.db");
        std::fs::rename(&path, &moved).unwrap();
        assert_eq!(watch.check(), FileState::Missing);
        std::fs::write(&path, b"another").unwrap();
        assert_eq!(watch.check(), FileState::Replaced);
        std::fs::rename(&moved, &path).unwrap();
        assert_eq!(watch.check(), FileState::Fine, "the same file back");
    }
}
