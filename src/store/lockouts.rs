//! Persisted guessing lockouts: written when a device is locked out, read at startup
//! and whenever the server is about to refuse a device (so `lockout clear` from the
//! CLI takes effect on the very next request).

use super::{Store, StoreError, from_ms, ms};
use crate::model::Mac;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

/// A device's lockout record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockoutRow {
    pub mac: Mac,
    /// How many times it has been locked out (the doubling level).
    pub lockouts: u32,
    pub locked_until: DateTime<Utc>,
    /// The client (NAS) the last failure came through.
    pub client: String,
    pub updated_at: DateTime<Utc>,
}

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<LockoutRow>> {
    let mac: String = r.get(0)?;
    Ok(mac.parse::<Mac>().ok().map(|mac| LockoutRow {
        mac,
        lockouts: r
            .get::<_, i64>(1)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(1),
        locked_until: from_ms(r.get(2).unwrap_or(0)),
        client: r.get(3).unwrap_or_default(),
        updated_at: from_ms(r.get(4).unwrap_or(0)),
    }))
}

const COLUMNS: &str = "mac, lockouts, locked_until, client, updated_at";

impl Store {
    /// Records that `mac` is locked out until `locked_until` (its `lockouts`-th time).
    pub fn save_lockout(&self, row: &LockoutRow) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "INSERT INTO lockouts (mac, lockouts, locked_until, client, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (mac) DO UPDATE SET lockouts = excluded.lockouts, locked_until = excluded.locked_until, \
                 client = excluded.client, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![row.mac.to_string(), row.lockouts, ms(row.locked_until), row.client, ms(row.updated_at)])
            })
            .map(|_| ())
            .map_err(|e| self.sql(e))
        })
    }

    pub fn lockout(&self, mac: Mac) -> Result<Option<LockoutRow>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM lockouts WHERE mac = ?1"))
                .and_then(|mut s| s.query_row(params![mac.to_string()], read).optional())
                .map(Option::flatten)
                .map_err(|e| self.sql(e))
        })
    }

    /// Every lockout record (`active_at`: only those still locked at that time).
    pub fn list_lockouts(
        &self,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<LockoutRow>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM lockouts WHERE (?1 IS NULL OR locked_until > ?1) ORDER BY locked_until DESC"
            ))
            .and_then(|mut s| s.query_map(params![active_at.map(ms)], read)?.collect::<rusqlite::Result<Vec<_>>>())
            .map(|rows| rows.into_iter().flatten().collect())
            .map_err(|e| self.sql(e))
        })
    }

    /// Forgets a device's lockout entirely (level included). False when there was none.
    pub fn clear_lockout(&self, mac: Mac) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            conn.execute(
                "DELETE FROM lockouts WHERE mac = ?1",
                params![mac.to_string()],
            )
            .map(|n| n == 1)
            .map_err(|e| self.sql(e))
        })
    }
}
