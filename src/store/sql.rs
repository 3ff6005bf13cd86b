//! The one way the store's modules talk to a database, whichever it is: statements
//! with `$1`-style parameters, rows of plain values, transactions and savepoints, and
//! errors sorted by what the caller must do about them.
//!
//! Queries are written once, in the SQL that SQLite and PostgreSQL both accept
//! (`ON CONFLICT`, `RETURNING`, `CASE`, `COALESCE`, `lower()`), so the rules they
//! carry (device binding, the ledger's matching, code ownership) are one code on both
//! backends. What differs (the schema, how a write transaction excludes others, the
//! change feed, error codes) lives in `sqlite/` and `postgres/`.

use std::fmt;

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// Something that can be bound to a statement's parameter.
pub trait Arg {
    fn value(&self) -> Value;
}

impl Arg for Value {
    fn value(&self) -> Value {
        self.clone()
    }
}

impl Arg for i64 {
    fn value(&self) -> Value {
        Value::Int(*self)
    }
}

impl Arg for i32 {
    fn value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl Arg for u32 {
    fn value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl Arg for u64 {
    /// Values past `i64::MAX` (never written: counters and seconds) saturate.
    fn value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Arg for usize {
    fn value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Arg for bool {
    /// Stored as 0 or 1 on both backends (the schemas use integer flags).
    fn value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl Arg for str {
    fn value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl Arg for String {
    fn value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl<T: Arg> Arg for Option<T> {
    fn value(&self) -> Value {
        self.as_ref().map_or(Value::Null, Arg::value)
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn value(&self) -> Value {
        (**self).value()
    }
}

/// Parameters of a statement, in order (`$1`, `$2`, ...).
pub type Args<'a> = [&'a dyn Arg];

/// A value as a Rust type, or why not.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Option<Self> {
        Some(v.clone())
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for u32 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u32::try_from(i).ok())
    }
}

impl FromValue for u64 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u64::try_from(i).ok())
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub(super) Vec<Value>);

impl Row {
    /// Column `i` as `T`; a NULL or a value of another type than the schema's is an
    /// error naming the column.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, DbError> {
        let v = self.0.get(i).unwrap_or(&Value::Null);
        T::from_value(v).ok_or_else(|| DbError {
            kind: DbErrorKind::Other,
            message: format!(
                "column {i} holds {v:?}, not a {}",
                std::any::type_name::<T>()
            ),
        })
    }
}

/// What a failed statement means for its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// Another connection holds the write lock (SQLite's busy timeout ran out).
    Busy,
    /// No space left for the write.
    Full,
    /// The database refuses writes (file permissions, a read-only mount, a replica).
    ReadOnly,
    /// A UNIQUE, CHECK or foreign key constraint: this statement's own failure.
    Constraint,
    /// The connection to the database server is lost or could not be made.
    Unreachable,
    /// The file could not be read or written (an I/O error of SQLite's): the whole
    /// batch fails, as before there were two backends.
    Io,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    pub kind: DbErrorKind,
    pub message: String,
}

impl DbError {
    pub fn other(message: impl fmt::Display) -> Self {
        Self {
            kind: DbErrorKind::Other,
            message: message.to_string(),
        }
    }

    /// Whether the failure concerns the whole transaction (the file, the disk, the
    /// lock, the connection) rather than the one statement: a batch is then given up
    /// as a whole.
    pub fn aborts_batch(&self) -> bool {
        !matches!(self.kind, DbErrorKind::Constraint | DbErrorKind::Other)
    }
}

/// What a transaction may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// Reads that must agree with each other (one snapshot).
    Read,
    /// Writes that decide on what they read (a device's place, a code's owner):
    /// excludes every other writer until commit, on every server sharing the database.
    Write,
}

/// A connection to one of the backends. Methods take `&mut self` (a PostgreSQL
/// client is used by one caller at a time); statements are prepared once per
/// connection and cached.
pub trait Db: Send {
    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, args: &Args<'_>) -> Result<u64, DbError>;
    /// Runs a query; returns all its rows.
    fn query(&mut self, sql: &str, args: &Args<'_>) -> Result<Vec<Row>, DbError>;
    /// Runs statements without parameters, separated by `;`.
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// Starts a transaction of `kind` (see [`transaction`]).
    fn begin(&mut self, kind: TxKind) -> Result<(), DbError>;

    /// The first row of a query, if any.
    fn query_opt(&mut self, sql: &str, args: &Args<'_>) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The one row of a query (an aggregate, a `RETURNING`); none is an error.
    fn query_one(&mut self, sql: &str, args: &Args<'_>) -> Result<Row, DbError> {
        self.query_opt(sql, args)?
            .ok_or_else(|| DbError::other(format!("no row returned by: {sql}")))
    }

    /// Whether a query returns a row.
    fn exists(&mut self, sql: &str, args: &Args<'_>) -> Result<bool, DbError> {
        Ok(self.query_opt(sql, args)?.is_some())
    }
}

/// Runs `f` in a transaction of `kind`: committed when it returns `Ok`, rolled back
/// otherwise (including when the commit itself fails).
pub fn transaction<T, E: From<DbError>>(
    db: &mut dyn Db,
    kind: TxKind,
    f: impl FnOnce(&mut dyn Db) -> Result<T, E>,
) -> Result<T, E> {
    if let Err(e) = db.begin(kind) {
        // Whatever BEGIN left behind (a transaction it opened before failing).
        let _ = db.batch("ROLLBACK");
        return Err(e.into());
    }
    match f(db) {
        Ok(out) => match db.batch("COMMIT") {
            Ok(()) => Ok(out),
            Err(e) => {
                let _ = db.batch("ROLLBACK");
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = db.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Runs `f` inside a savepoint of the current transaction: its statements are undone
/// alone when it fails, and the transaction goes on (PostgreSQL refuses every
/// statement of a transaction after a failed one, unless it is rolled back to a
/// savepoint).
pub fn savepoint<T, E: From<DbError>>(
    db: &mut dyn Db,
    f: impl FnOnce(&mut dyn Db) -> Result<T, E>,
) -> Result<T, E> {
    db.batch("SAVEPOINT pinradius_sp")?;
    match f(db) {
        Ok(out) => {
            db.batch("RELEASE pinradius_sp")?;
            Ok(out)
        }
        Err(e) => {
            db.batch("ROLLBACK TO pinradius_sp")?;
            db.batch("RELEASE pinradius_sp")?;
            Err(e)
        }
    }
}

/// A new random token uid (32 lower-case hex digits): no other token will have it.
pub fn new_uid() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
