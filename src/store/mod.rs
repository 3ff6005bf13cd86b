//! The only module with SQL. Two backends behind one [`Store`]: SQLite (bundled, one
//! file, the default for a single server) and PostgreSQL (several servers sharing one
//! database). The domain modules (tokens, people, facts, the ledger, ...) write their
//! queries once against [`sql::Db`]; `sqlite/` and `postgres/` hold what differs:
//! connecting, the schema, how a write transaction excludes other writers, errors.
//!
//! The store is blocking: callers on the async side go through `spawn_blocking`.
//! Every multi-statement write is one transaction; writes that decide on what they
//! read (device binding, code uniqueness) are write transactions ([`sql::TxKind`]),
//! which exclude every other writer (other processes, other servers) until commit.

pub(crate) mod batch;
mod cache;
mod disconnects;
mod facts;
pub mod health;
mod holds;
mod ledger;
mod lockouts;
mod login_writes;
mod logins;
mod people;
mod platform;
mod platform_people;
mod postgres;
pub mod sql;
mod sqlite;
#[cfg(test)]
pub(crate) mod testing;
mod tokens;

pub use batch::BatchError;
pub use cache::ReadPoint;
pub use disconnects::DisconnectRow;
pub use facts::{BindOutcome, SharedToken};
pub use ledger::{
    AcctOutcome, AcctRecord, AcctStatus, LedgerError, LedgerWriter, OpenToken, SessionRow,
    TokenRef, UnmatchedRow,
};
pub use lockouts::{LockScope, LockoutRow, SharedFailure};
pub use login_writes::{Bind, Hold as LoginHold, LoginWrite, LoginWriter, WriteDone, Written};
pub use people::VisitorTokenSettings;
pub use platform::{Applied, SyncPass, SyncRow};
pub use platform_people::{PlatformMember, PlatformVisitor};

use postgres::PgDb;
use sql::{Db, DbError, DbErrorKind, TxKind};
use sqlite::SqliteDb;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A statement failed (`location` is filled in by [`Store`] on the way out).
    #[error("database {location}: {source}")]
    Database { location: String, source: DbError },
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

impl From<DbError> for StoreError {
    fn from(source: DbError) -> Self {
        StoreError::Database {
            location: String::new(),
            source,
        }
    }
}

impl StoreError {
    /// What a failed statement means, when this is one.
    pub fn db_kind(&self) -> Option<DbErrorKind> {
        match self {
            StoreError::Database { source, .. } => Some(source.kind),
            _ => None,
        }
    }
}

/// Connections kept open between calls; more are opened on demand under load.
const IDLE_CONNECTIONS: usize = 8;

/// A connection of either backend.
enum Conn {
    Sqlite(SqliteDb),
    /// Boxed: a client with its runtime and statement cache is several times larger.
    Postgres(Box<PgDb>),
}

impl Conn {
    fn db(&mut self) -> &mut dyn Db {
        match self {
            Conn::Sqlite(c) => c,
            Conn::Postgres(c) => c.as_mut(),
        }
    }

    /// A number that moves whenever what a login reads may have changed: SQLite's
    /// `data_version` (any other connection's commit), PostgreSQL's newest change
    /// number (any server's commit touching a login's facts).
    fn version(&mut self) -> Result<i64, DbError> {
        match self {
            Conn::Sqlite(c) => c.data_version(),
            Conn::Postgres(c) => c.newest_change(),
        }
    }

    /// How long a write transaction waits for another's write lock before it fails
    /// as busy (SQLite's busy timeout; PostgreSQL's `lock_timeout`).
    fn set_lock_wait(&mut self, wait: std::time::Duration) -> Result<(), DbError> {
        match self {
            Conn::Sqlite(c) => c.set_busy_timeout(wait),
            Conn::Postgres(c) => c.batch(&format!("SET lock_timeout = {}", wait.as_millis())),
        }
    }

    /// Whether it may be used again (a PostgreSQL connection may have been lost).
    fn reusable(&self) -> bool {
        match self {
            Conn::Sqlite(_) => true,
            Conn::Postgres(c) => !c.is_closed(),
        }
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Sqlite(_) => "Conn::Sqlite",
            Conn::Postgres(_) => "Conn::Postgres",
        })
    }
}

/// Where the data is kept.
#[derive(Debug)]
enum Backend {
    /// A file: `watch` notices it deleted, replaced or read-only (none in memory).
    Sqlite {
        watch: Option<health::FileWatch>,
    },
    Postgres {
        config: Box<::postgres::Config>,
    },
}

/// A handle on the database. Cheap to share (`Arc<Store>`); each call borrows a
/// connection from a small pool, so concurrent calls from `spawn_blocking` threads
/// run in parallel (readers) or queue on the write lock (writers).
#[derive(Debug)]
pub struct Store {
    /// The database file, or the PostgreSQL server and database (no password): for
    /// messages, and the file for opening more connections.
    path: PathBuf,
    backend: Backend,
    /// Idle connections; a call pops one (or opens one) and pushes it back.
    idle: Mutex<Vec<Conn>>,
    /// For an in-memory database: a connection held open for the store's life (the
    /// database vanishes with its last connection).
    _keepalive: Option<Mutex<Conn>>,
    /// Login facts served from memory while the database is unchanged.
    facts_cache: cache::FactsCache,
    /// What the writers last found, and the writes they refused.
    health: health::Health,
    /// This process among the servers sharing the database (host, pid and a random
    /// part): who claimed a disconnect, who shared a failure.
    instance: String,
}

/// A name for this process no other will have: host, pid, random.
fn new_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!("{host}/{}/{}", std::process::id(), &sql::new_uid()[..8])
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
        let at = |source: DbError| StoreError::Database {
            location: path.display().to_string(),
            source,
        };
        create_private_file(path)?;
        // Migrate first: the cache's probe connection must see the final schema.
        let mut conn = SqliteDb::connect(path).map_err(at)?;
        let meta = std::fs::metadata(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if !health::writable(path, &meta) || conn.is_readonly().map_err(at)? {
            return Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
            });
        }
        conn.migrate().map_err(|e| StoreError::Migration {
            path: path.to_path_buf(),
            message: e,
        })?;
        let probe = SqliteDb::connect(path).map_err(at)?;
        Ok(Store {
            path: path.to_path_buf(),
            backend: Backend::Sqlite {
                watch: Some(
                    health::FileWatch::new(path).map_err(|source| StoreError::Open {
                        path: path.to_path_buf(),
                        source,
                    })?,
                ),
            },
            idle: Mutex::new(vec![Conn::Sqlite(conn)]),
            _keepalive: None,
            facts_cache: cache::FactsCache::new(Conn::Sqlite(probe)),
            health: health::Health::default(),
            instance: new_instance(),
        })
    }

    /// Opens the database `db` names for `serve` and `db init`: an SQLite file is
    /// created if missing; PostgreSQL's schema is created or migrated.
    pub fn open_database(db: &crate::model::Database) -> Result<Store, StoreError> {
        match db {
            crate::model::Database::File(path) => Self::open(path),
            crate::model::Database::Postgres { url, password_file } => {
                Self::open_postgres_url(url, password_file.as_deref())
            }
        }
    }

    /// Opens the database `db` names for the admin commands: an SQLite file must
    /// exist already.
    pub fn open_existing_database(db: &crate::model::Database) -> Result<Store, StoreError> {
        match db {
            crate::model::Database::File(path) => Self::open_existing(path),
            db => Self::open_database(db),
        }
    }

    /// What `check-config` says of the database, without changing it: `Err` for what
    /// stops the server from keeping data, `Ok` with warnings otherwise. A PostgreSQL
    /// database is connected to and its schema version read.
    pub fn check_database(db: &crate::model::Database) -> Result<Vec<String>, String> {
        let (url, password_file) = match db {
            crate::model::Database::File(path) => return health::check_path(path),
            crate::model::Database::Postgres { url, password_file } => (url, password_file),
        };
        let shown = crate::model::without_password(url);
        let config =
            postgres::config_for(url, password_file.as_deref(), &|k| std::env::var(k).ok())?;
        let mut conn = PgDb::connect(&config).map_err(|e| format!("database {shown}: {e}"))?;
        Ok(postgres::schema::check(&mut conn)
            .map_err(|e| format!("database {shown}: {e}"))?
            .into_iter()
            .map(|w| format!("database {shown}: {w}"))
            .collect())
    }

    fn open_postgres_url(url: &str, password_file: Option<&Path>) -> Result<Store, StoreError> {
        let shown = crate::model::without_password(url);
        let config = postgres::config_for(url, password_file, &|k| std::env::var(k).ok()).map_err(
            |message| StoreError::Database {
                location: shown.clone(),
                source: DbError::other(message),
            },
        )?;
        Self::open_postgres(config, &shown)
    }

    /// Connects to PostgreSQL with `config` and migrates its schema (`serve`, `db
    /// init` and the admin commands alike: the database itself is the operator's).
    /// `shown` names it in messages (server and database, never the password).
    pub fn open_postgres(config: ::postgres::Config, shown: &str) -> Result<Store, StoreError> {
        let at = |source: DbError| StoreError::Database {
            location: shown.to_string(),
            source,
        };
        let mut conn = PgDb::connect(&config).map_err(at)?;
        conn.migrate().map_err(|e| StoreError::Migration {
            path: PathBuf::from(shown),
            message: e.to_string(),
        })?;
        let probe = PgDb::connect(&config).map_err(at)?;
        Ok(Store {
            path: PathBuf::from(shown),
            backend: Backend::Postgres {
                config: Box::new(config),
            },
            idle: Mutex::new(vec![Conn::Postgres(Box::new(conn))]),
            _keepalive: None,
            facts_cache: cache::FactsCache::new(Conn::Postgres(Box::new(probe))),
            health: health::Health::default(),
            instance: new_instance(),
        })
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
        let at = |source: DbError| StoreError::Database {
            location: "memory".into(),
            source,
        };
        let mut conn = SqliteDb::connect(&path).map_err(at)?;
        conn.migrate().map_err(|e| StoreError::Migration {
            path: path.clone(),
            message: e,
        })?;
        let probe = SqliteDb::connect(&path).map_err(at)?;
        Ok(Store {
            path,
            backend: Backend::Sqlite { watch: None },
            idle: Mutex::new(Vec::new()),
            _keepalive: Some(Mutex::new(Conn::Sqlite(conn))),
            facts_cache: cache::FactsCache::new(Conn::Sqlite(probe)),
            health: health::Health::default(),
            instance: new_instance(),
        })
    }

    /// This process's name among the servers sharing the database.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether the data is on PostgreSQL (shared with other servers).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// Now, as the point a request's reads must be at least as fresh as: take it when
    /// the request arrives and pass it to [`Store::login_facts`].
    pub fn read_point(&self) -> ReadPoint {
        self.facts_cache.read_point()
    }

    /// The database's version as of a probe started after `point`: it moves with
    /// every commit that may change a login's facts, so equal versions mean nothing
    /// changed.
    ///
    /// With the database server unreachable (PostgreSQL), the last version read: what
    /// memory holds as of it still decides logins that need nothing more (a device
    /// bound to a code whose facts are cached), and the rest are refused in time.
    pub fn data_version(&self, point: ReadPoint) -> Result<i64, StoreError> {
        let result = self.facts_cache.version_after(point, self);
        self.note_reach(&result);
        match result {
            Err(e) if self.is_shared() && e.db_kind() == Some(DbErrorKind::Unreachable) => {
                self.facts_cache.last_version().ok_or(e)
            }
            other => other,
        }
    }

    /// Whether the file at the database's path is still the one opened, and
    /// writable (always fine in memory and on PostgreSQL, whose state the writes
    /// tell).
    pub fn file_state(&self) -> health::FileState {
        match &self.backend {
            Backend::Sqlite { watch: Some(w) } => w.check(),
            _ => health::FileState::Fine,
        }
    }

    /// What the writers last found, and the writes they refused.
    pub fn health(&self) -> &health::Health {
        &self.health
    }

    /// Login-fact lookups the cache could not answer (each read the database).
    pub fn facts_cache_misses(&self) -> u64 {
        self.facts_cache.misses()
    }

    /// The database file, or the PostgreSQL server and database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection of the store's backend (the writer threads keep their own).
    fn connect(&self) -> Result<Conn, StoreError> {
        match &self.backend {
            // A new connection opens whatever file is at the path now: not another
            // file than the one the store has open (replaced under a running server).
            Backend::Sqlite { .. } if self.file_state() == health::FileState::Replaced => {
                return Err(StoreError::Replaced {
                    path: self.path.clone(),
                });
            }
            Backend::Sqlite { .. } => SqliteDb::connect(&self.path).map(Conn::Sqlite),
            Backend::Postgres { config } => {
                PgDb::connect(config).map(|c| Conn::Postgres(Box::new(c)))
            }
        }
        .map_err(|e| self.located(e.into()))
    }

    /// Runs `f` with a pooled connection (statements outside a transaction commit one
    /// by one).
    pub(crate) fn with_db<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect().inspect_err(|e| self.note_unreachable(e))?,
        };
        let result = f(conn.db());
        self.note_reach(&result);
        if conn.reusable() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(conn);
            }
        }
        result.map_err(|e| self.located(e))
    }

    /// Records whether the database server answered (PostgreSQL: an unreachable
    /// server refuses logins in time and acknowledges no accounting until it is back).
    fn note_reach<T>(&self, result: &Result<T, StoreError>) {
        match result {
            Ok(_) if self.is_shared() => self.health.set_reach(health::FileState::Fine),
            Ok(_) => {}
            Err(e) => self.note_unreachable(e),
        }
    }

    fn note_unreachable(&self, e: &StoreError) {
        if self.is_shared() && e.db_kind() == Some(DbErrorKind::Unreachable) {
            self.health.set_reach(health::FileState::Unreachable);
        }
    }

    /// Runs `f` in a read transaction: its reads agree with each other.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_db(|db| sql::transaction(db, TxKind::Read, f))
    }

    /// Runs `f` in a write transaction, which excludes every other writer (see
    /// [`TxKind::Write`]) and commits when `f` returns `Ok`.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut dyn Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_db(|db| sql::transaction(db, TxKind::Write, f))
    }

    /// Runs one statement outside the store's rules: for tests and tools that stand
    /// in for an operator's own SQL.
    #[doc(hidden)]
    pub fn execute_sql(&self, sql: &str, args: &sql::Args<'_>) -> Result<u64, StoreError> {
        self.with_db(|db| Ok(db.execute(sql, args)?))
    }

    /// A statement's error with the database named.
    fn located(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Database { location, source } if location.is_empty() => {
                StoreError::Database {
                    location: self.path.display().to_string(),
                    source,
                }
            }
            e => e,
        }
    }
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
