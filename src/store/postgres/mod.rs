//! The shared backend: PostgreSQL, for several pinradius servers on one database.
//!
//! A write transaction takes one transaction-scoped advisory lock ([`WRITE_LOCK`])
//! before anything else, so writers are serialised across every server exactly as
//! SQLite's `BEGIN IMMEDIATE` serialises them across processes: a check and the write
//! that depends on it (the last device place, a code's owner, a session's seconds)
//! cannot interleave with another server's. Statements of READ COMMITTED transactions
//! taken after the lock see every commit made before it. Reads take no lock.
//!
//! The client is the synchronous `postgres` crate: the store is called from threads
//! of its own (auth threads, writer threads, `spawn_blocking`), and a synchronous
//! call avoids a hop to an async runtime per statement (README: 58,439 reads/s against
//! 23,824/s for `tokio-postgres` with a pool through `block_on`). It runs a small
//! runtime of its own per connection, which may not be entered from an async task:
//! calls made on a Tokio thread run on a short-lived plain thread instead.

pub(super) mod schema;

use super::sql::{Args, Db, DbError, DbErrorKind, Row, TxKind, Value};
use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};
use std::collections::HashMap;
use std::time::Duration;

/// The advisory lock of write transactions: a key of pinradius's ("pinr") and one of
/// the schema's, so pinradius installations in different schemas of one database do
/// not wait for each other.
pub(super) const WRITE_LOCK: &str = "pg_advisory_xact_lock(1885957746, hashtext(current_schema()))";

/// How long a write transaction waits for another's write lock, by default.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// How long an unanswered database server counts as alive (keepalive and
/// unacknowledged-data limits).
const DEAD_PEER: Duration = Duration::from_secs(5);

/// How long a connection attempt may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the database server, with its prepared statements.
pub struct PgDb {
    /// Always `Some` but while being dropped (see the `Drop` impl).
    client: Option<Client>,
    /// Statements prepared on this connection, by their text.
    statements: HashMap<String, Statement>,
}

impl std::fmt::Debug for PgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgDb")
    }
}

impl PgDb {
    /// Connects with `config` (a connect timeout is set unless it has one).
    pub fn connect(config: &postgres::Config) -> Result<PgDb, DbError> {
        let mut config = config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("pinradius");
        }
        // A server gone without a word (a cable, a firewall) is noticed in seconds,
        // not after the system's TCP timeouts of many minutes.
        config.keepalives(true);
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(DEAD_PEER);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(DEAD_PEER);
        }
        let client = off_runtime(move || config.connect(NoTls)).map_err(classify)?;
        let mut db = PgDb {
            client: Some(client),
            statements: HashMap::new(),
        };
        // As SQLite's busy timeout: a writer waits this long for another's write lock.
        db.batch(&format!("SET lock_timeout = {}", LOCK_WAIT.as_millis()))?;
        Ok(db)
    }

    /// Whether the connection is gone (it is then dropped, not pooled).
    pub fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(Client::is_closed)
    }

    /// Migrates to the latest schema.
    pub fn migrate(&mut self) -> Result<(), DbError> {
        schema::migrate(self)
    }

    /// The newest change number (`fact_changes.seq`): it moves with every commit that
    /// touches what a login reads, on any server.
    pub fn newest_change(&mut self) -> Result<i64, DbError> {
        self.query_one("SELECT COALESCE(max(seq), 0) FROM fact_changes", &[])?
            .get(0)
    }

    fn client(&mut self) -> Result<&mut Client, DbError> {
        self.client
            .as_mut()
            .ok_or_else(|| DbError::other("connection closed"))
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let client = self.client()?;
        let stmt = off_runtime(|| client.prepare(sql)).map_err(classify)?;
        self.statements.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

impl Db for PgDb {
    fn execute(&mut self, sql: &str, args: &Args<'_>) -> Result<u64, DbError> {
        let stmt = self.statement(sql)?;
        let args: Vec<PgArg> = args.iter().map(|a| PgArg(a.value())).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        let client = self.client()?;
        off_runtime(|| client.execute(&stmt, &refs)).map_err(classify)
    }

    fn query(&mut self, sql: &str, args: &Args<'_>) -> Result<Vec<Row>, DbError> {
        let stmt = self.statement(sql)?;
        let args: Vec<PgArg> = args.iter().map(|a| PgArg(a.value())).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        let client = self.client()?;
        let rows = off_runtime(|| client.query(&stmt, &refs)).map_err(classify)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| value_of(r, i))
                    .collect::<Result<_, _>>()
                    .map(Row)
            })
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        let client = self.client()?;
        off_runtime(|| client.batch_execute(sql)).map_err(classify)
    }

    fn begin(&mut self, kind: TxKind) -> Result<(), DbError> {
        match kind {
            // One snapshot for all the reads, as SQLite's read transaction gives.
            TxKind::Read => self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
            // Waiting for the lock may time out (`lock_timeout`): the transaction is
            // then aborted, and `sql::transaction` rolls it back.
            TxKind::Write => {
                self.batch("BEGIN")?;
                self.batch(&format!("SELECT {WRITE_LOCK}"))
            }
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // The client's runtime may not be dropped on a Tokio thread either.
        if let Some(client) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("pinradius-pg-close".into())
                .spawn(move || drop(client));
        }
    }
}

/// The connection settings for `url`: what the URL leaves out comes from the
/// standard environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
/// `PGCONNECT_TIMEOUT`), and the password from the URL, else `password_file` (its
/// first line), else `PGPASSWORD`.
pub fn config_for(
    url: &str,
    password_file: Option<&std::path::Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<postgres::Config, String> {
    let shown = crate::model::without_password(url);
    let port = match env("PGPORT") {
        Some(p) if !url_names_port(url) => Some(
            p.parse::<u16>()
                .map_err(|_| format!("PGPORT={p} is not a port number"))?,
        ),
        _ => None,
    };
    // The URL parser gives each host without a port the default one, so a port from
    // the environment goes into the URL's text.
    let url = match port {
        Some(p) => with_port(url, p),
        None => url.to_string(),
    };
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e| format!("{shown} is not a PostgreSQL URL: {e}"))?;
    if config.get_hosts().is_empty() {
        config.host(&env("PGHOST").unwrap_or_else(|| "localhost".into()));
        if let Some(p) = port {
            config.port(p);
        }
    }
    if config.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .ok_or_else(|| format!("{shown} names no user, and PGUSER is not set"))?;
        config.user(&user);
    }
    if config.get_dbname().is_none() {
        let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or_default().into());
        config.dbname(&db);
    }
    if config.get_connect_timeout().is_none()
        && let Some(t) = env("PGCONNECT_TIMEOUT")
    {
        let secs: u64 = t
            .parse()
            .map_err(|_| format!("PGCONNECT_TIMEOUT={t} is not a number of seconds"))?;
        config.connect_timeout(Duration::from_secs(secs.max(1)));
    }
    if config.get_password().is_none() {
        let password = match password_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("database password file {}: {e}", f.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
            None => env("PGPASSWORD"),
        };
        if let Some(p) = password {
            config.password(p);
        }
    }
    Ok(config)
}

/// Whether the URL's host part has a `:port`.
fn url_names_port(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // IPv6 hosts are bracketed: a port follows the closing bracket.
    let after = hosts.rsplit_once(']').map_or(hosts, |(_, p)| p);
    after.contains(':')
}

/// `url` with `:port` after each of its hosts (it names none).
fn with_port(url: &str, port: u16) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    if hosts.is_empty() {
        return url.to_string();
    }
    let hosts: Vec<String> = hosts.split(',').map(|h| format!("{h}:{port}")).collect();
    format!("{scheme}://{user}{}{tail}", hosts.join(","))
}

/// Runs `f` here, or on a plain thread when this one runs Tokio tasks (the
/// synchronous client blocks on a runtime of its own, which Tokio forbids there).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A value bound to whatever type PostgreSQL inferred for the parameter (integers
/// to any integer type that holds them, text to any text type).
#[derive(Debug)]
struct PgArg(Value);

impl ToSql for PgArg {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (&self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), _) if <&str as ToSql>::accepts(ty) => {
                i.to_string().as_str().to_sql(ty, out)
            }
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Text(s), _) => s.as_str().to_sql(ty, out),
            (v, ty) => Err(format!("cannot bind {v:?} to a parameter of type {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Column `i` of `row` as a plain value.
fn value_of(row: &postgres::Row, i: usize) -> Result<Value, DbError> {
    let ty = row.columns()[i].type_().clone();
    let get = |e: postgres::Error| DbError::other(format!("column {i}: {e}"));
    Ok(match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(get)?
            .map_or(Value::Null, Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(get)?
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(get)?
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(get)?
            .map_or(Value::Null, |v| Value::Int(v.into())),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(get)?
            .map_or(Value::Null, Value::Real),
        ref t if <&str as postgres::types::FromSql>::accepts(t) => row
            .try_get::<_, Option<String>>(i)
            .map_err(get)?
            .map_or(Value::Null, Value::Text),
        t => {
            return Err(DbError::other(format!(
                "column {} has type {t}, which the store does not read (cast it to BIGINT or TEXT)",
                row.columns()[i].name()
            )));
        }
    })
}

/// Sorts a PostgreSQL error by what the caller must do.
pub(super) fn classify(e: postgres::Error) -> DbError {
    let kind = match e.code() {
        _ if e.is_closed() => DbErrorKind::Unreachable,
        None => DbErrorKind::Unreachable,
        Some(c)
            if *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::FOREIGN_KEY_VIOLATION
                || *c == SqlState::CHECK_VIOLATION
                || *c == SqlState::NOT_NULL_VIOLATION =>
        {
            DbErrorKind::Constraint
        }
        Some(c) if *c == SqlState::DISK_FULL => DbErrorKind::Full,
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => DbErrorKind::ReadOnly,
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::LOCK_NOT_AVAILABLE =>
        {
            DbErrorKind::Busy
        }
        Some(c)
            if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || c.code().starts_with("08") =>
        {
            DbErrorKind::Unreachable
        }
        Some(_) => DbErrorKind::Other,
    };
    // The server's own words (its message names the constraint or the column).
    let message = match (e.as_db_error(), std::error::Error::source(&e)) {
        (Some(db), _) => db.message().to_string(),
        // "error connecting to server" alone does not say why.
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    };
    DbError { kind, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_wins_then_the_password_file_then_the_environment() {
        let env = |k: &str| match k {
            "PGHOST" => Some("db.internal".to_string()),
            "PGPORT" => Some("6432".to_string()),
            "PGUSER" => Some("envuser".to_string()),
            "PGPASSWORD" => Some("envpass".to_string()),
            _ => None,
        };
        let c = config_for("postgres://radius:urlpass@db.example/pin", None, &env).unwrap();
        assert_eq!(c.get_user(), Some("radius"));
        assert_eq!(c.get_password(), Some(&b"urlpass"[..]));
        assert_eq!(c.get_dbname(), Some("pin"));
        assert_eq!(c.get_ports(), &[6432], "a port the URL leaves out");
        let c = config_for("postgres:///pin", None, &env).unwrap();
        assert_eq!(
            c.get_hosts(),
            &[postgres::config::Host::Tcp("db.internal".into())]
        );
        assert_eq!(c.get_user(), Some("envuser"));
        assert_eq!(c.get_password(), Some(&b"envpass"[..]));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "filepass\n").unwrap();
        let c = config_for("postgres:///pin", Some(&file), &env).unwrap();
        assert_eq!(c.get_password(), Some(&b"filepass"[..]));
        let e = config_for("postgres:///pin", Some(&dir.path().join("none")), &env).unwrap_err();
        assert!(e.contains("database password file"), "{e}");
        let e = config_for("postgres://u:secret@h:nope/pin", None, &env).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }
}
