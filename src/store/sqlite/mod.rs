//! The embedded backend: SQLite (bundled) in WAL mode, so the admin CLI and the server
//! share one file: readers never block the writer, and a commit of another process
//! is seen by the very next read. A write transaction is `BEGIN IMMEDIATE`: it takes
//! the file's write lock up front, so two writers cannot both pass a check.

pub(super) mod schema;

use super::sql::{Args, Db, DbError, DbErrorKind, Row, TxKind, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the database file.
pub struct SqliteDb {
    conn: Connection,
    /// Each statement's text as SQLite reads it ([`placeholders`]), made once per
    /// text and connection rather than on every call (a login's or a record's writes).
    texts: std::collections::HashMap<String, String>,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteDb")
    }
}

impl SqliteDb {
    /// Opens a connection with the pragmas every connection uses.
    pub fn connect(path: &Path) -> Result<SqliteDb, DbError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
        // WAL: concurrent readers with one writer across processes. synchronous=FULL:
        // a commit is on disk before it returns, as an acknowledged write must be.
        // mmap: pages of the database file are read in place instead of copied by a
        // system call per page (WAL frames are still read by call).
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA mmap_size=268435456;",
        )
        .map_err(classify)?;
        Ok(SqliteDb {
            conn,
            texts: std::collections::HashMap::new(),
        })
    }

    /// How long this connection waits for another's write lock.
    pub fn set_busy_timeout(&mut self, wait: Duration) -> Result<(), DbError> {
        self.conn.busy_timeout(wait).map_err(classify)
    }

    /// Whether SQLite opened the file read-only (no write permission).
    pub fn is_readonly(&self) -> Result<bool, DbError> {
        self.conn.is_readonly(rusqlite::MAIN_DB).map_err(classify)
    }

    /// Migrates to the latest schema.
    pub fn migrate(&mut self) -> Result<(), String> {
        schema::migrate(&mut self.conn)
    }

    /// SQLite's `data_version`: moves whenever another connection commits.
    pub fn data_version(&mut self) -> Result<i64, DbError> {
        self.query_one("PRAGMA data_version", &[])?.get(0)
    }
}

/// Statement texts kept per connection at most (the store's are a fixed set).
const TEXTS: usize = 1024;

impl SqliteDb {
    /// The prepared statement of `sql`, its placeholders rewritten once per text.
    fn prepare(&mut self, sql: &str) -> Result<rusqlite::CachedStatement<'_>, DbError> {
        if !self.texts.contains_key(sql) {
            if self.texts.len() >= TEXTS {
                self.texts.clear();
            }
            self.texts.insert(sql.to_string(), placeholders(sql));
        }
        self.conn.prepare_cached(&self.texts[sql]).map_err(classify)
    }
}

impl Db for SqliteDb {
    fn execute(&mut self, sql: &str, args: &Args<'_>) -> Result<u64, DbError> {
        let mut stmt = self.prepare(sql)?;
        let n = stmt
            .execute(rusqlite::params_from_iter(
                args.iter().map(|a| Bound(a.value())),
            ))
            .map_err(classify)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, args: &Args<'_>) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.prepare(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(
                args.iter().map(|a| Bound(a.value())),
            ))
            .map_err(classify)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(classify)? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match r.get_ref(i).map_err(classify)? {
                    ValueRef::Null | ValueRef::Blob(_) => Value::Null,
                    ValueRef::Integer(i) => Value::Int(i),
                    ValueRef::Real(f) => Value::Real(f),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(sql).map_err(classify)
    }

    fn begin(&mut self, kind: TxKind) -> Result<(), DbError> {
        self.batch(match kind {
            TxKind::Read => "BEGIN",
            TxKind::Write => "BEGIN IMMEDIATE",
        })
    }
}

/// A value as rusqlite binds it.
struct Bound(Value);

impl rusqlite::ToSql for Bound {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match &self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

/// The statement with PostgreSQL's `$1` parameters written as SQLite's `?1` (SQLite
/// reads `$1` as a named parameter, numbered by first appearance, not by its digits).
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '$' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Sorts a rusqlite error by what the caller must do.
pub(super) fn classify(e: rusqlite::Error) -> DbError {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbErrorKind::Busy,
        Some(ErrorCode::DiskFull) => DbErrorKind::Full,
        Some(ErrorCode::ReadOnly) => DbErrorKind::ReadOnly,
        Some(ErrorCode::ConstraintViolation) => DbErrorKind::Constraint,
        Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => DbErrorKind::Io,
        _ => DbErrorKind::Other,
    };
    DbError {
        kind,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_parameters_become_question_marks_outside_strings() {
        assert_eq!(
            placeholders("SELECT '$1', $2 WHERE a = $10"),
            "SELECT '$1', ?2 WHERE a = ?10"
        );
    }

    #[test]
    fn parameters_bind_by_their_number() {
        let mut db = SqliteDb::connect(Path::new(":memory:")).unwrap();
        let row = db
            .query_one("SELECT $2 || '-' || $1, $1 + 0", &[&1i64, &"b"])
            .unwrap();
        assert_eq!(row.get::<String>(0).unwrap(), "b-1");
        assert_eq!(row.get::<i64>(1).unwrap(), 1);
    }
}
