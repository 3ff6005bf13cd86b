//! Persisted guessing locks: one row per subject (a device, an account, a client's
//! NAS, the whole server) that has been locked, written when a lock starts and kept
//! after it ends so repeated locks double. Read at startup and whenever the server is
//! about to refuse a subject it remembers as locked, so `lockout clear` from the CLI
//! takes effect on the very next request.

use super::sql::{Db, DbError, Row};
use super::{Store, StoreError, from_ms, ms};
pub use crate::model::LockScope;
use chrono::{DateTime, Utc};

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

/// A row of [`COLUMNS`]; `None` for a scope this version does not know.
fn read(r: &Row) -> Result<Option<LockoutRow>, DbError> {
    let scope: String = r.get(0)?;
    Ok(LockScope::parse(&scope).map(|scope| LockoutRow {
        scope,
        subject: r.get(1).unwrap_or_default(),
        lockouts: r
            .get::<i64>(2)
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
        self.with_db(|db| {
            let row = db.query_opt(
                &format!("SELECT {COLUMNS} FROM guard_locks WHERE scope = $1 AND subject = $2"),
                &[&scope.as_str(), &subject],
            )?;
            Ok(row.map(|r| read(&r)).transpose()?.flatten())
        })
    }

    /// Every lock record (`active_at`: only those still locked at that time).
    pub fn list_lockouts(
        &self,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<LockoutRow>, StoreError> {
        self.with_db(|db| {
            let rows = db.query(
                &format!(
                    "SELECT {COLUMNS} FROM guard_locks WHERE (CAST($1 AS BIGINT) IS NULL OR locked_until > $1) ORDER BY locked_until DESC"
                ),
                &[&active_at.map(ms)],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.extend(read(r)?);
            }
            Ok(out)
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
        self.with_db(|db| {
            let n = db.execute(
                "DELETE FROM guard_locks WHERE scope = $1 AND (CAST($2 AS TEXT) IS NULL OR subject = $2) AND (CAST($3 AS TEXT) IS NULL OR client = $3)",
                &[&scope.as_str(), &subject, &client],
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}

/// Records that a subject is locked until `locked_until` (its `lockouts`-th time): one
/// row per scope and subject, written by the login writer.
pub(super) fn upsert(db: &mut dyn Db, row: &LockoutRow) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO guard_locks (scope, subject, lockouts, locked_until, client, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (scope, subject) DO UPDATE SET lockouts = excluded.lockouts, locked_until = excluded.locked_until, \
         client = excluded.client, updated_at = excluded.updated_at",
        &[
            &row.scope.as_str(),
            &row.subject,
            &row.lockouts,
            &ms(row.locked_until),
            &row.client,
            &ms(row.updated_at),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, on_each_backend};

    fn lock(
        scope: LockScope,
        subject: &str,
        lockouts: u32,
        minutes: i64,
        client: &str,
    ) -> LockoutRow {
        LockoutRow {
            scope,
            subject: subject.into(),
            lockouts,
            locked_until: now() + chrono::Duration::minutes(minutes),
            client: client.into(),
            updated_at: now(),
        }
    }

    #[test]
    fn upsert_keeps_one_row_per_subject_and_clear_filters() {
        on_each_backend(|s| {
            let first = lock(LockScope::Device, "AA:BB:CC:DD:EE:FF", 1, 5, "ap1");
            let again = lock(LockScope::Device, "AA:BB:CC:DD:EE:FF", 2, 10, "ap2");
            let ended = lock(LockScope::Account, "1:a@b.c", 1, -5, "ap1");
            s.with_db(|db| {
                for row in [&first, &again, &ended] {
                    upsert(db, row)?;
                }
                Ok(())
            })
            .unwrap();
            let got = s.lockout(LockScope::Device, "AA:BB:CC:DD:EE:FF").unwrap();
            assert_eq!(got, Some(again.clone()), "{}", s.backend());
            assert_eq!(s.lockout(LockScope::Device, "other").unwrap(), None);
            assert_eq!(
                s.list_lockouts(None).unwrap(),
                vec![again.clone(), ended.clone()]
            );
            assert_eq!(s.list_lockouts(Some(now())).unwrap(), vec![again]);
            assert_eq!(
                s.clear_lockouts(LockScope::Device, None, Some("ap1"))
                    .unwrap(),
                0
            );
            assert_eq!(
                s.clear_lockouts(LockScope::Device, None, Some("ap2"))
                    .unwrap(),
                1
            );
            assert_eq!(
                s.clear_lockouts(LockScope::Account, Some("1:a@b.c"), None)
                    .unwrap(),
                1
            );
            assert!(s.list_lockouts(None).unwrap().is_empty());
        });
    }
}
