//! The queue of Disconnect-Requests (RFC 5176) to send. A change that ends a token's
//! right to be online (revoke, delete, customer deactivated, PIN changed) queues one
//! row per open session *in the same transaction*, so an admin command run while the
//! daemon is down, or from another process, is still acted on; the daemon's
//! disconnector sends them and records the NAS's answer. A row copies what the
//! request needs, so it outlives the session row of a deleted token.

use super::{Store, StoreError, from_ms, ms};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

/// A queued or finished Disconnect-Request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DisconnectRow {
    pub id: i64,
    pub session_id: i64,
    /// The configured client (NAS) name the session was reported by.
    pub client: String,
    /// The address accounting came from.
    pub nas_address: Option<String>,
    /// NAS-IP-Address as the NAS reported it.
    pub nas_ip: Option<String>,
    pub user_name: Option<String>,
    pub acct_session_id: String,
    pub framed_ip: Option<String>,
    pub mac: Option<String>,
    /// Why the session must end (a reject reason label, or "deleted").
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// ack, nak (with the Error-Cause), timeout, no_address, already_stopped, disabled.
    pub result: Option<String>,
}

const COLUMNS: &str = "id, session_id, client, nas_address, nas_ip, user_name, acct_session_id, framed_ip, mac, \
     reason, requested_at, finished_at, result";

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<DisconnectRow> {
    Ok(DisconnectRow {
        id: r.get(0)?,
        session_id: r.get(1)?,
        client: r.get(2)?,
        nas_address: r.get(3)?,
        nas_ip: r.get(4)?,
        user_name: r.get(5)?,
        acct_session_id: r.get(6)?,
        framed_ip: r.get(7)?,
        mac: r.get(8)?,
        reason: r.get(9)?,
        requested_at: from_ms(r.get(10)?),
        finished_at: r.get::<_, Option<i64>>(11)?.map(from_ms),
        result: r.get(12)?,
    })
}

/// Copies the sessions that `filter` selects (its `?1` bound to `key`) into the queue,
/// skipping any with a disconnect still pending. Returns how many were queued.
fn queue_sessions(
    conn: &Connection,
    filter: &str,
    key: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(&format!(
        "INSERT OR IGNORE INTO disconnects (session_id, client, nas_address, nas_ip, user_name, acct_session_id, \
         framed_ip, mac, reason, requested_at) \
         SELECT id, client, nas_address, nas_ip, user_name, acct_session_id, framed_ip, mac, ?2, ?3 \
         FROM sessions WHERE {filter}"
    ))?
    .execute(params![key, reason, ms(now)])
}

/// Queues a disconnect for every open session of `token_id`. Runs inside the
/// caller's transaction.
pub(super) fn queue_for_token(
    conn: &Connection,
    token_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    queue_sessions(
        conn,
        "token_id = ?1 AND stopped_at IS NULL",
        token_id,
        reason,
        now,
    )
}

impl Store {
    /// Queues a disconnect for one session (the reaper's run-out sessions); false when
    /// one is already pending for it.
    pub fn queue_disconnect(
        &self,
        session_id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            queue_sessions(conn, "id = ?1", session_id, reason, now)
                .map(|n| n == 1)
                .map_err(|e| self.sql(e))
        })
    }

    /// Disconnects not yet finished, oldest first.
    pub fn pending_disconnects(&self, limit: usize) -> Result<Vec<DisconnectRow>, StoreError> {
        self.disconnect_rows("WHERE finished_at IS NULL ORDER BY id", limit)
    }

    /// Every disconnect, newest first (for tests and troubleshooting).
    pub fn list_disconnects(&self, limit: usize) -> Result<Vec<DisconnectRow>, StoreError> {
        self.disconnect_rows("ORDER BY id DESC", limit)
    }

    fn disconnect_rows(&self, tail: &str, limit: usize) -> Result<Vec<DisconnectRow>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM disconnects {tail} LIMIT ?1"
            ))
            .and_then(|mut s| {
                s.query_map(params![limit as i64], read)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.sql(e))
        })
    }

    /// Whether the session the row is about was already ended by its NAS (a Stop or
    /// an Accounting-On/Off): then there is nothing to disconnect.
    pub fn session_stopped_by_nas(&self, session_id: i64) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT count(*) FROM sessions WHERE id = ?1 AND closed_by IN ('stop', 'nas-restart')",
            )
            .and_then(|mut s| s.query_row(params![session_id], |r| r.get::<_, i64>(0)))
            .map(|n| n > 0)
            .map_err(|e| self.sql(e))
        })
    }

    /// Records how a disconnect ended; on an ACK the session is closed too (the NAS
    /// has ended it; its Stop, if one comes, still raises the used time).
    pub fn finish_disconnect(
        &self,
        id: i64,
        session_id: i64,
        result: &str,
        acknowledged: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.sql(e))?;
            tx.execute(
                "UPDATE disconnects SET finished_at = ?2, result = ?3 WHERE id = ?1",
                params![id, ms(now), result],
            )
            .map_err(|e| self.sql(e))?;
            if acknowledged {
                tx.execute(
                    "UPDATE sessions SET stopped_at = ?2, closed_by = 'disconnected' WHERE id = ?1 AND stopped_at IS NULL",
                    params![session_id, ms(now)],
                )
                .map_err(|e| self.sql(e))?;
            }
            tx.commit().map_err(|e| self.sql(e))
        })
    }
}
