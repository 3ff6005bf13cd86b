//! Persisted guessing locks: one row per subject (a device, an account, a client's
//! NAS, the whole server) that has been locked, written when a lock starts and kept
//! after it ends so repeated locks double. Read at startup and whenever the server is
//! about to refuse a subject it remembers as locked, so `lockout clear` from the CLI
//! takes effect on the very next request.

use super::{Store, StoreError, from_ms, ms};
pub use crate::model::LockScope;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

/// A lock record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockoutRow {
    pub scope: LockScope,
    /// Who is locked, as text: a normalised MAC, `business_id:email`, a NAS
    /// (`source [nas-ip] [nas-id]`), or `server`.
    pub subject: String,
    /// How many times it has been locked (the doubling level).
    pub lockouts: u32,
    pub locked_until: DateTime<Utc>,
    /// The client (NAS) the last failure came through.
    pub client: String,
    pub updated_at: DateTime<Utc>,
}

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<LockoutRow>> {
    let scope: String = r.get(0)?;
    Ok(LockScope::parse(&scope).map(|scope| LockoutRow {
        scope,
        subject: r.get(1).unwrap_or_default(),
        lockouts: r
            .get::<_, i64>(2)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(1),
        locked_until: from_ms(r.get(3).unwrap_or(0)),
        client: r.get(4).unwrap_or_default(),
        updated_at: from_ms(r.get(5).unwrap_or(0)),
    }))
}

const COLUMNS: &str = "scope, subject, lockouts, locked_until, client, updated_at";

impl Store {
    pub fn lockout(
        &self,
        scope: LockScope,
        subject: &str,
    ) -> Result<Option<LockoutRow>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM guard_locks WHERE scope = ?1 AND subject = ?2"
            ))
            .and_then(|mut s| {
                s.query_row(params![scope.as_str(), subject], read)
                    .optional()
            })
            .map(Option::flatten)
            .map_err(|e| self.sql(e))
        })
    }

    /// Every lock record (`active_at`: only those still locked at that time).
    pub fn list_lockouts(
        &self,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<LockoutRow>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM guard_locks WHERE (?1 IS NULL OR locked_until > ?1) ORDER BY locked_until DESC"
            ))
            .and_then(|mut s| s.query_map(params![active_at.map(ms)], read)?.collect::<rusqlite::Result<Vec<_>>>())
            .map(|rows| rows.into_iter().flatten().collect())
            .map_err(|e| self.sql(e))
        })
    }

    /// Forgets locks entirely (level included): of `scope`, the one of `subject` when
    /// given, and only those last seen through `client` when given. Returns how many.
    pub fn clear_lockouts(
        &self,
        scope: LockScope,
        subject: Option<&str>,
        client: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.with_conn(|conn| {
            conn.execute(
                "DELETE FROM guard_locks WHERE scope = ?1 AND (?2 IS NULL OR subject = ?2) AND (?3 IS NULL OR client = ?3)",
                params![scope.as_str(), subject, client],
            )
            .map_err(|e| self.sql(e))
        })
    }
}

/// Records that a subject is locked until `locked_until` (its `lockouts`-th time): one
/// row per scope and subject, written by the login writer.
pub(super) fn upsert(conn: &rusqlite::Connection, row: &LockoutRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO guard_locks (scope, subject, lockouts, locked_until, client, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (scope, subject) DO UPDATE SET lockouts = excluded.lockouts, locked_until = excluded.locked_until, \
         client = excluded.client, updated_at = excluded.updated_at",
    )?
    .execute(params![
        row.scope.as_str(),
        row.subject,
        row.lockouts,
        ms(row.locked_until),
        row.client,
        ms(row.updated_at)
    ])
    .map(|_| ())
}
