//! What the reaper reads: the tokens of open sessions with the time they have spent,
//! in one pass over the open sessions (the cost is linear in them: one read of each
//! token and its used time, however many sessions it has open).

use super::super::facts::owner_of;
use super::super::tokens::token_in;
use super::super::{Store, StoreError, ms};
use crate::model::{AccessToken, TokenOwner};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A token with open sessions, as the reaper judges it.
#[derive(Debug, Clone)]
pub struct OpenToken {
    pub token: AccessToken,
    pub owner: TokenOwner,
    /// Used time in the ledger plus the live time of its open sessions since their
    /// last update (those updated since `stale_before`), in whole seconds.
    pub spent_seconds: u64,
    /// Its open sessions with no Disconnect-Request pending (a pending one is the
    /// disconnector's until the NAS answers).
    pub sessions: Vec<i64>,
}

impl Store {
    /// Every token with open sessions, read in one transaction.
    pub fn open_tokens(
        &self,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Vec<OpenToken>, StoreError> {
        let (now, stale_before) = (ms(now), ms(stale_before));
        self.read(|db| {
            // token -> (live ms, sessions not pending a disconnect)
            let mut open: BTreeMap<i64, (i64, Vec<i64>)> = BTreeMap::new();
            let rows = db.query(
                "SELECT s.id, s.token_id, s.updated_at, CASE WHEN EXISTS (SELECT 1 FROM disconnects d \
                   WHERE d.session_id = s.id AND d.finished_at IS NULL) THEN 1 ELSE 0 END \
                 FROM sessions s WHERE s.stopped_at IS NULL",
                &[],
            )?;
            for r in &rows {
                let (id, token, updated, pending): (i64, i64, i64, bool) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                let entry = open.entry(token).or_default();
                if updated >= stale_before {
                    entry.0 += (now - updated).max(0);
                }
                if !pending {
                    entry.1.push(id);
                }
            }
            let mut out = Vec::with_capacity(open.len());
            for (token_id, (live_ms, sessions)) in open {
                let Some(token) = token_in(db, token_id)? else { continue };
                let owner = owner_of(db, &token)?;
                let used: i64 = db
                    .query_one(
                        "SELECT CAST(COALESCE(SUM(session_time), 0) AS BIGINT) FROM sessions WHERE token_id = $1",
                        &[&token_id],
                    )?
                    .get(0)?;
                let live = u64::try_from(live_ms).unwrap_or(0).div_ceil(1000);
                out.push(OpenToken {
                    token,
                    owner,
                    spent_seconds: u64::try_from(used).unwrap_or(0) + live,
                    sessions,
                });
            }
            Ok(out)
        })
    }
}
