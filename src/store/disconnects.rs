//! The queue of Disconnect-Requests (RFC 5176) to send. A change that ends a token's
//! right to be online (revoke, delete, customer deactivated, PIN changed) queues one
//! row per open session *in the same transaction*, so an admin command run while the
//! daemon is down, or from another process, is still acted on; the daemon's
//! disconnector sends them and records the NAS's answer. A row copies what the
//! request needs, so it outlives the session row of a deleted token.

use super::sql::{Db, DbError, Row};
use super::{Store, StoreError, from_ms, ms};
use chrono::{DateTime, Utc};

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

fn read(r: &Row) -> Result<DisconnectRow, DbError> {
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
        finished_at: r.get::<Option<i64>>(11)?.map(from_ms),
        result: r.get(12)?,
    })
}

/// Copies the sessions that `filter` selects (its `$1` bound to `key`) into the queue,
/// skipping any with a disconnect still pending (the partial unique index
/// `disconnects_pending`). Returns how many were queued.
fn queue_sessions(
    db: &mut dyn Db,
    filter: &str,
    key: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbError> {
    // The SELECT's WHERE also keeps SQLite from reading `ON CONFLICT` as a join's ON.
    db.execute(
        &format!(
            "INSERT INTO disconnects (session_id, client, nas_address, nas_ip, user_name, acct_session_id, \
             framed_ip, mac, reason, requested_at) \
             SELECT id, client, nas_address, nas_ip, user_name, acct_session_id, framed_ip, mac, CAST($2 AS TEXT), \
             CAST($3 AS BIGINT) FROM sessions WHERE {filter} ON CONFLICT DO NOTHING"
        ),
        &[&key, &reason, &ms(now)],
    )
}

/// Queues a disconnect for every open session of `token_id`. Runs inside the
/// caller's transaction.
pub(super) fn queue_for_token(
    db: &mut dyn Db,
    token_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbError> {
    queue_sessions(
        db,
        "token_id = $1 AND stopped_at IS NULL",
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
        self.with_db(|db| Ok(queue_sessions(db, "id = $1", session_id, reason, now)? == 1))
    }

    /// Disconnects not yet finished, oldest first (the server claims them instead:
    /// [`Store::claim_disconnects`]).
    #[cfg(test)]
    pub fn pending_disconnects(&self, limit: usize) -> Result<Vec<DisconnectRow>, StoreError> {
        self.disconnect_rows("WHERE finished_at IS NULL ORDER BY id", limit)
    }

    /// Takes up to `limit` queued disconnects for this server to send: those no other
    /// server is sending (unclaimed, or claimed by one whose `lease` ran out: it died
    /// or lost the database), marked as this server's until `now + lease`, in one
    /// write transaction, so of several servers sharing the queue one sends each.
    pub fn claim_disconnects(
        &self,
        limit: usize,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Vec<DisconnectRow>, StoreError> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let me = self.instance().to_string();
        self.write(|db| {
            let mut rows = db
                .query(
                    &format!(
                        "UPDATE disconnects SET claimed_by = $1, claimed_until = $2 WHERE id IN \
                         (SELECT id FROM disconnects WHERE finished_at IS NULL \
                          AND (claimed_until IS NULL OR claimed_until <= $3 OR claimed_by = $1) ORDER BY id LIMIT $4) \
                         RETURNING {COLUMNS}"
                    ),
                    &[&me, &ms(until), &ms(now), &limit],
                )?
                .iter()
                .map(read)
                .collect::<Result<Vec<_>, _>>()?;
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        })
    }

    /// Every disconnect, newest first (for tests and troubleshooting).
    pub fn list_disconnects(&self, limit: usize) -> Result<Vec<DisconnectRow>, StoreError> {
        self.disconnect_rows("ORDER BY id DESC", limit)
    }

    fn disconnect_rows(&self, tail: &str, limit: usize) -> Result<Vec<DisconnectRow>, StoreError> {
        self.with_db(|db| {
            let rows = db.query(
                &format!("SELECT {COLUMNS} FROM disconnects {tail} LIMIT $1"),
                &[&limit],
            )?;
            Ok(rows.iter().map(read).collect::<Result<_, _>>()?)
        })
    }

    /// Whether the session the row is about was already ended by its NAS (a Stop or
    /// an Accounting-On/Off): then there is nothing to disconnect.
    pub fn session_stopped_by_nas(&self, session_id: i64) -> Result<bool, StoreError> {
        self.with_db(|db| {
            Ok(db.exists(
                "SELECT 1 FROM sessions WHERE id = $1 AND closed_by IN ('stop', 'nas-restart')",
                &[&session_id],
            )?)
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
        self.write(|db| {
            db.execute(
                "UPDATE disconnects SET finished_at = $2, result = $3 WHERE id = $1",
                &[&id, &ms(now), &result],
            )?;
            if acknowledged {
                db.execute(
                    "UPDATE sessions SET stopped_at = $2, closed_by = 'disconnected' WHERE id = $1 AND stopped_at IS NULL",
                    &[&session_id, &ms(now)],
                )?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::{TestStore, new, now, on_each_backend};

    /// A token with one open session; returns the session's id.
    fn open_session(s: &TestStore) -> i64 {
        let token = s.create_token(&new("12345"), now()).unwrap();
        s.with_db(|db| {
            Ok(db
                .query_one(
                    "INSERT INTO sessions (token_id, client, nas, acct_session_id, started_at, updated_at, mac) \
                     VALUES ($1, 'ap', 'nas', 'x1', 0, 0, 'AA:BB:CC:DD:EE:FF') RETURNING id",
                    &[&token],
                )?
                .get(0)?)
        })
        .unwrap()
    }

    #[test]
    fn one_pending_disconnect_per_session() {
        on_each_backend(|s| {
            let session = open_session(s);
            assert!(
                s.queue_disconnect(session, "expired", now()).unwrap(),
                "{}",
                s.backend()
            );
            assert!(
                !s.queue_disconnect(session, "expired", now()).unwrap(),
                "already pending"
            );
            let pending = s.pending_disconnects(10).unwrap();
            assert_eq!(pending.len(), 1);
            let row = &pending[0];
            assert_eq!((row.session_id, row.reason.as_str()), (session, "expired"));
            assert_eq!(row.mac.as_deref(), Some("AA:BB:CC:DD:EE:FF"));
            assert_eq!(row.requested_at, now());
            s.finish_disconnect(row.id, session, "nak", false, now())
                .unwrap();
            assert!(s.pending_disconnects(10).unwrap().is_empty());
            assert!(
                s.queue_disconnect(session, "expired", now()).unwrap(),
                "finished: again"
            );
            let all = s.list_disconnects(10).unwrap();
            assert_eq!(all.len(), 2);
            assert!(all[0].id > all[1].id, "newest first");
            assert_eq!(all[1].result.as_deref(), Some("nak"));
            assert_eq!(all[1].finished_at, Some(now()));
        });
    }

    #[test]
    fn a_queued_disconnect_is_claimed_by_one_server_until_its_lease_runs_out() {
        on_each_backend(|s| {
            let other = s.another(); // another server on the same database
            let session = open_session(s);
            s.queue_disconnect(session, "revoked", now()).unwrap();
            let lease = std::time::Duration::from_secs(10);
            let mine = s.claim_disconnects(10, now(), lease).unwrap();
            assert_eq!(mine.len(), 1, "{}", s.backend());
            assert!(
                other
                    .claim_disconnects(10, now(), lease)
                    .unwrap()
                    .is_empty()
            );
            // The claimant asks again (still sending): it keeps it.
            assert_eq!(s.claim_disconnects(10, now(), lease).unwrap().len(), 1);
            // The claimant died: once the lease ran out the other takes it over.
            let later = now() + chrono::Duration::seconds(11);
            assert_eq!(other.claim_disconnects(10, later, lease).unwrap().len(), 1);
            assert!(s.claim_disconnects(10, later, lease).unwrap().is_empty());
            other
                .finish_disconnect(mine[0].id, session, "ack", true, later)
                .unwrap();
            let much_later = later + chrono::Duration::minutes(5);
            assert!(
                s.claim_disconnects(10, much_later, lease)
                    .unwrap()
                    .is_empty()
            );
        });
    }

    #[test]
    fn acknowledged_disconnect_closes_the_session() {
        on_each_backend(|s| {
            let session = open_session(s);
            s.queue_disconnect(session, "revoked", now()).unwrap();
            let id = s.pending_disconnects(1).unwrap()[0].id;
            assert!(!s.session_stopped_by_nas(session).unwrap());
            s.finish_disconnect(id, session, "ack", true, now())
                .unwrap();
            let closed: Option<String> = s
                .with_db(|db| {
                    Ok(db
                        .query_one("SELECT closed_by FROM sessions WHERE id = $1", &[&session])?
                        .get(0)?)
                })
                .unwrap();
            assert_eq!(closed.as_deref(), Some("disconnected"), "{}", s.backend());
            assert!(
                !s.session_stopped_by_nas(session).unwrap(),
                "closed by us, not the NAS"
            );
            s.with_db(|db| {
                Ok(db.execute(
                    "UPDATE sessions SET closed_by = 'stop' WHERE id = $1",
                    &[&session],
                )?)
            })
            .unwrap();
            assert!(s.session_stopped_by_nas(session).unwrap());
        });
    }
}
