//! Simultaneous-use places held in the database, for servers sharing it: the same
//! rule as one server's memory (`server/holds.rs`), checked and taken in the login
//! writer's write transaction, so of devices racing through several servers for the
//! last place, one wins. The ledger gives a device's place up when its session opens.

use super::sql::{Db, DbError};
use super::{LoginHold, ms, sql};
use crate::model::Mac;
use chrono::{DateTime, Utc};

/// The holder text of `device` (a login without one holds a place of its own).
fn holder(device: Option<Mac>) -> String {
    device.map_or_else(|| format!("login {}", sql::new_uid()), |m| m.to_string())
}

/// Holds a place for `h.device` until `h.until`, unless the places are taken; true
/// when held.
pub(super) fn hold(db: &mut dyn Db, h: &LoginHold, now: DateTime<Utc>) -> Result<bool, DbError> {
    db.execute(
        "DELETE FROM login_holds WHERE token_id = $1 AND until <= $2",
        &[&h.token_id, &ms(now)],
    )?;
    let mac = h.device.map(|m| m.to_string());
    let taken: i64 = db
        .query_one(
            "SELECT (SELECT count(*) FROM sessions WHERE token_id = $1 AND stopped_at IS NULL \
                     AND updated_at >= $2 AND (mac IS NULL OR CAST($3 AS TEXT) IS NULL OR mac <> $3)) \
                  + (SELECT count(*) FROM login_holds WHERE token_id = $1 \
                     AND (CAST($3 AS TEXT) IS NULL OR holder <> $3))",
            &[&h.token_id, &ms(h.stale_before), &mac],
        )?
        .get(0)?;
    if taken >= i64::from(h.limit) {
        return Ok(false);
    }
    db.execute(
        "INSERT INTO login_holds (token_id, holder, until) VALUES ($1, $2, $3) \
         ON CONFLICT (token_id, holder) DO UPDATE SET until = excluded.until",
        &[&h.token_id, &holder(h.device), &ms(h.until)],
    )?;
    Ok(true)
}

impl super::Store {
    /// Gives up `device`'s place on the token in the database (a login refused after
    /// its place was held).
    pub fn release_hold(
        &self,
        token_id: i64,
        device: Option<Mac>,
    ) -> Result<(), super::StoreError> {
        self.write(|db| Ok(release(db, token_id, device)?))
    }
}

/// Gives up `device`'s place on the token (its session opened, or it was refused).
pub(super) fn release(db: &mut dyn Db, token_id: i64, device: Option<Mac>) -> Result<(), DbError> {
    if let Some(mac) = device {
        db.execute(
            "DELETE FROM login_holds WHERE token_id = $1 AND holder = $2",
            &[&token_id, &mac.to_string()],
        )?;
    }
    Ok(())
}
