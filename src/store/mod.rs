//! The only module with SQL. SQLite (bundled) in WAL mode so the admin CLI and the
//! server share one file: readers never block the writer, and a change committed by
//! `pinradius token revoke` is seen by the server's very next read (no cache).
//!
//! rusqlite is blocking: callers on the async side go through `spawn_blocking`.
//! Every multi-statement write is one transaction; writes that decide on what they
//! read (device binding, code uniqueness) take the write lock up front
//! (`BEGIN IMMEDIATE`) so two processes cannot both pass the check.

pub(crate) mod batch;
mod cache;
mod disconnects;
mod facts;
pub mod health;
mod ledger;
mod lockouts;
mod login_writes;
mod logins;
mod people;
mod platform;
mod platform_people;
mod schema;
#[cfg(test)]
mod testing;
mod tokens;

pub use batch::BatchError;
pub use cache::ReadPoint;
pub use disconnects::DisconnectRow;
pub use facts::{BindOutcome, SharedToken};
pub use ledger::{
    AcctOutcome, AcctRecord, AcctStatus, LedgerError, LedgerWriter, OpenToken, SessionRow,
    TokenRef, UnmatchedRow,
};
pub use lockouts::{LockScope, LockoutRow};
pub use login_writes::{Bind, LoginWrite, LoginWriter, WriteDone, Written};
pub use people::VisitorTokenSettings;
pub use platform::{Applied, SyncPass, SyncRow};
pub use platform_people::{PlatformMember, PlatformVisitor};

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} does not exist: `pinradius serve` creates it on first start, or run `pinradius db init`"
    )]
    Missing { path: PathBuf },
    #[error(
        "database {path} is read-only (file or folder permissions, or a read-only mount): pinradius must write to it"
    )]
    ReadOnly { path: PathBuf },
    #[error(
        "database {path} was replaced by another file while the server runs: restart it to open the new one"
    )]
    Replaced { path: PathBuf },
    #[error("database {path}: migration failed: {message}")]
    Migration { path: PathBuf, message: String },
    #[error("code {code} is already used by {owner} in business {business_id}")]
    CodeTaken {
        business_id: i64,
        code: String,
        owner: String,
    },
    #[error(
        "PIN space of business {business_id} is nearly full: {used} of 100000 five-digit codes in use"
    )]
    PinSpaceFull { business_id: i64, used: i64 },
    #[error("no {what} {id}")]
    NotFound { what: &'static str, id: String },
    #[error("row {row}: {source}")]
    Row { row: usize, source: Box<StoreError> },
    #[error("database holds an invalid {field} ({value}) for token {id}; was it edited by hand?")]
    Corrupt {
        id: i64,
        field: &'static str,
        value: String,
    },
}

/// Connections kept open between calls; more are opened on demand under load.
const IDLE_CONNECTIONS: usize = 8;
/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the database file. Cheap to share (`Arc<Store>`); each call borrows a
/// connection from a small pool, so concurrent calls from `spawn_blocking` threads
/// run in parallel (WAL readers) or queue on SQLite's write lock (writers).
#[derive(Debug)]
pub struct Store {
    /// The database file, for error messages and for opening more connections.
    path: PathBuf,
    /// Idle connections; a call pops one (or opens one) and pushes it back.
    idle: Mutex<Vec<Connection>>,
    /// For an in-memory database: a connection held open for the store's life (the
    /// database vanishes with its last connection).
    _keepalive: Option<Mutex<Connection>>,
    /// Login facts served from memory while the database is unchanged.
    facts_cache: cache::FactsCache,
    /// The file opened (none in memory), to notice it deleted, replaced or read-only.
    watch: Option<health::FileWatch>,
    /// What the writers last found, and the writes they refused.
    health: health::Health,
}

impl Store {
    /// Opens the existing database at `path` (admin commands: they never create one,
    /// so a typo in the path is an error, not a new empty database) and migrates it.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        Self::open(path)
    }

    /// Opens (creating if needed, mode 0600) and migrates the database at `path`
    /// (`serve` and `db init`). A database it cannot write to is an error.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        create_private_file(path)?;
        // Migrate first: the cache's probe connection must see the final schema.
        let mut conn = connect(path)?;
        let meta = std::fs::metadata(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if !health::writable(path, &meta)
            || conn
                .is_readonly(rusqlite::MAIN_DB)
                .map_err(|source| StoreError::Sqlite {
                    path: path.to_path_buf(),
                    source,
                })?
        {
            return Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
            });
        }
        schema::migrate(&mut conn).map_err(|e| StoreError::Migration {
            path: path.to_path_buf(),
            message: e,
        })?;
        let store = Store {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![conn]),
            _keepalive: None,
            facts_cache: cache::FactsCache::new(connect(path)?),
            watch: Some(
                health::FileWatch::new(path).map_err(|source| StoreError::Open {
                    path: path.to_path_buf(),
                    source,
                })?,
            ),
            health: health::Health::default(),
        };
        Ok(store)
    }

    /// A private in-memory database (shared between this store's connections only):
    /// for the fuzzers, which must not touch the disk.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let uri = format!(
            "file:pinradius-memory-{}-{n}?mode=memory&cache=shared",
            std::process::id()
        );
        let path = PathBuf::from(uri);
        let mut conn = connect(&path)?;
        schema::migrate(&mut conn).map_err(|e| StoreError::Migration {
            path: path.clone(),
            message: e,
        })?;
        let probe = connect(&path)?;
        Ok(Store {
            path,
            idle: Mutex::new(Vec::new()),
            _keepalive: Some(Mutex::new(conn)),
            facts_cache: cache::FactsCache::new(probe),
            watch: None,
            health: health::Health::default(),
        })
    }

    /// Now, as the point a request's reads must be at least as fresh as: take it when
    /// the request arrives and pass it to [`Store::login_facts`].
    pub fn read_point(&self) -> ReadPoint {
        self.facts_cache.read_point()
    }

    /// The database's version (SQLite's `data_version`) as of a probe started after
    /// `point`: it moves with every commit, so equal versions mean nothing changed.
    pub fn data_version(&self, point: ReadPoint) -> Result<i64, StoreError> {
        self.facts_cache.version_after(point, self)
    }

    /// Whether the file at the database's path is still the one opened, and
    /// writable (always fine in memory).
    pub fn file_state(&self) -> health::FileState {
        self.watch
            .as_ref()
            .map_or(health::FileState::Fine, health::FileWatch::check)
    }

    /// What the writers last found, and the writes they refused.
    pub fn health(&self) -> &health::Health {
        &self.health
    }

    /// Login-fact lookups the cache could not answer (each read the database).
    pub fn facts_cache_misses(&self) -> u64 {
        self.facts_cache.misses()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn connect(&self) -> Result<Connection, StoreError> {
        connect(&self.path)
    }

    /// Runs `f` with a pooled connection.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            // A new connection opens whatever file is at the path now: not another
            // file than the one the store has open (replaced under a running server).
            None if self.file_state() == health::FileState::Replaced => {
                return Err(StoreError::Replaced {
                    path: self.path.clone(),
                });
            }
            None => self.connect()?,
        };
        let result = f(&mut conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(conn);
        }
        result
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// Opens a connection with the pragmas every connection uses.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let sql = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    // WAL: concurrent readers with one writer across processes. synchronous=FULL:
    // a commit is on disk before it returns, as an acknowledged write must be.
    // mmap: pages of the database file are read in place instead of copied by a
    // system call per page (WAL frames are still read by call).
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA mmap_size=268435456;",
    )
    .map_err(sql)?;
    Ok(conn)
}

/// Stored times are INTEGER milliseconds since the Unix epoch, UTC.
fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

/// The time of a stored millisecond value (out-of-range values read as the epoch;
/// the CHECK-free columns are only ever written through [`ms`]).
fn from_ms(v: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(v).unwrap_or_default()
}

/// Creates the database file readable and writable by its owner only (SPEC section 4:
/// it holds every code). SQLite gives its -wal and -shm files the same mode.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Open {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_owner_only_file_and_migrates_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        Store::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        Store::open(&path).unwrap();
    }

    #[test]
    fn missing_folder_is_a_clear_error() {
        let e = Store::open(Path::new("/nonexistent-dir/p.db"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent-dir/p.db"), "{e}");
    }
}
