//! Records from the coworking platform: which local token each platform record
//! became (`platform_links`), and where each entity's pull stands (`platform_sync`).
//! One code, one owner still holds: a platform record whose code a local record
//! already owns is a clash, counted and left alone, never an overwrite.

use super::tokens::{Fail, code_owner, insert_token, token_in, update_token_in};
use super::{Store, StoreError, from_ms, ms};
use crate::model::NewAccessToken;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

/// What applying one platform record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A local token was created (its id).
    Created(i64),
    /// The local token was changed (its id).
    Updated(i64),
    /// Nothing to change.
    Unchanged(i64),
    /// The code belongs to another owner here (`owner`): nothing was written.
    Clash { owner: String },
}

/// Where one entity's sync stands (`sync status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncRow {
    pub entity: String,
    /// The newest `UpdatedOn` applied: the next pull asks for records from there.
    pub cursor: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_full: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Records applied, clashes and removals, since the database was created.
    pub applied: i64,
    pub clashes: i64,
    pub removed: i64,
}

/// One finished pull of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncPass {
    pub cursor: Option<DateTime<Utc>>,
    pub applied: usize,
    pub clashes: usize,
    pub removed: usize,
    pub full: bool,
}

pub(super) const ACCESS_TOKENS: &str = "accesstokens";
pub(super) const COWORKERS: &str = "coworkers";
pub(super) const VISITORS: &str = "visitors";

/// The local record a platform record became: (local id, token id).
pub(super) fn linked(
    tx: &Connection,
    entity: &str,
    platform_id: i64,
) -> rusqlite::Result<Option<(Option<String>, Option<i64>)>> {
    tx.prepare_cached(
        "SELECT local_id, token_id FROM platform_links WHERE entity = ?1 AND platform_id = ?2",
    )?
    .query_row(params![entity, platform_id], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// Records (or moves) the link of a platform record to its local record.
#[allow(clippy::too_many_arguments)]
pub(super) fn link(
    tx: &Connection,
    entity: &str,
    platform_id: i64,
    business_id: i64,
    local_id: Option<&str>,
    token_id: Option<i64>,
    updated_on: DateTime<Utc>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO platform_links (entity, platform_id, business_id, local_id, token_id, updated_on, linked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (entity, platform_id) DO UPDATE SET \
         business_id = excluded.business_id, local_id = excluded.local_id, token_id = excluded.token_id, \
         updated_on = excluded.updated_on",
    )?
    .execute(params![entity, platform_id, business_id, local_id, token_id, ms(updated_on), ms(now)])?;
    Ok(())
}

impl Store {
    /// Creates or updates the local token of the platform's access token
    /// `platform_id`, in one transaction.
    pub fn apply_platform_token(
        &self,
        platform_id: i64,
        token: &NewAccessToken,
        updated_on: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let outcome = self.write(|tx| {
            let linked = linked(tx, ACCESS_TOKENS, platform_id)?.and_then(|(_, token)| token);
            let applied = match linked {
                Some(id) if token_in(tx, id)?.is_some() => {
                    match update_token_in(tx, id, token, now) {
                        Ok(true) => Applied::Updated(id),
                        Ok(false) => Applied::Unchanged(id),
                        Err(Fail::Store(StoreError::CodeTaken { owner, .. })) => {
                            return Ok(Applied::Clash { owner });
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ => {
                    if let Some(owner) = code_owner(tx, token.business_id, &token.access_code)? {
                        return Ok(Applied::Clash { owner });
                    }
                    Applied::Created(insert_token(tx, token, None, now)?)
                }
            };
            let id = match applied {
                Applied::Created(id) | Applied::Updated(id) | Applied::Unchanged(id) => id,
                Applied::Clash { .. } => unreachable!("returned above"),
            };
            link(
                tx,
                ACCESS_TOKENS,
                platform_id,
                token.business_id,
                None,
                Some(id),
                updated_on,
                now,
            )?;
            Ok(applied)
        })?;
        Ok(outcome)
    }

    /// The platform ids of `entity` linked here, in `business_ids`, that a full
    /// listing did not have (`listed`): to be read again before anything is removed.
    pub fn unlisted_platform_ids(
        &self,
        entity: &str,
        business_ids: &[i64],
        listed: &std::collections::HashSet<i64>,
    ) -> Result<Vec<i64>, StoreError> {
        self.with_conn(|conn| {
            let links: Vec<(i64, i64)> = conn
                .prepare_cached(
                    "SELECT platform_id, business_id FROM platform_links WHERE entity = ?1",
                )
                .and_then(|mut s| {
                    s.query_map(params![entity], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(|e| self.sql(e))?;
            Ok(links
                .into_iter()
                .filter(|(id, business)| business_ids.contains(business) && !listed.contains(id))
                .map(|(id, _)| id)
                .collect())
        })
    }

    /// Removes here the platform record `platform_id` of `entity` that the platform
    /// no longer has. A member is deactivated and keeps their link (the platform has
    /// no member deletion: one who comes back is the same member, reactivated); an
    /// access token or a visitor is deleted with its link. False when nothing changed.
    pub fn remove_platform_record(
        &self,
        entity: &str,
        platform_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some((local_id, token_id)) = linked(tx, entity, platform_id)? else {
                return Ok(false);
            };
            let changed = super::platform_people::remove_local(
                tx,
                entity,
                local_id.as_deref(),
                token_id,
                now,
            )?;
            if entity != COWORKERS {
                tx.execute(
                    "DELETE FROM platform_links WHERE entity = ?1 AND platform_id = ?2",
                    params![entity, platform_id],
                )?;
            }
            Ok(changed)
        })
    }

    /// The platform id of the `entity` record whose local record is `local_id` (a
    /// customer's id, a visitor's guid), if it came from the platform.
    pub fn platform_id_of(&self, entity: &str, local_id: &str) -> Result<Option<i64>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT platform_id FROM platform_links WHERE entity = ?1 AND local_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![entity, local_id], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.sql(e))
        })
    }

    /// The platform record a local token came from (`entity`, platform id), if any:
    /// such a token is changed at the platform, not here.
    pub fn platform_source(&self, token_id: i64) -> Result<Option<(String, i64)>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT entity, platform_id FROM platform_links WHERE token_id = ?1",
            )
            .and_then(|mut s| {
                s.query_row(params![token_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.sql(e))
        })
    }

    /// Where the pull of `entity` stands: the newest `UpdatedOn` applied.
    pub fn sync_cursor(&self, entity: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached("SELECT cursor FROM platform_sync WHERE entity = ?1")
                .and_then(|mut s| {
                    s.query_row(params![entity], |r| r.get::<_, Option<i64>>(0))
                        .optional()
                })
                .map(|v| v.flatten().map(from_ms))
                .map_err(|e| self.sql(e))
        })
    }

    /// Records a finished pull of `entity` (its cursor only moves forward).
    pub fn record_sync(
        &self,
        entity: &str,
        pass: &SyncPass,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "INSERT INTO platform_sync (entity, cursor, last_success, last_full, applied, clashes, removed) \
                 VALUES (?1, ?2, ?3, CASE WHEN ?4 THEN ?3 END, ?5, ?6, ?7) \
                 ON CONFLICT (entity) DO UPDATE SET cursor = max(COALESCE(cursor, 0), COALESCE(excluded.cursor, 0)), \
                 last_success = excluded.last_success, last_full = COALESCE(excluded.last_full, last_full), \
                 applied = applied + excluded.applied, clashes = clashes + excluded.clashes, removed = removed + excluded.removed",
            )
            .and_then(|mut s| {
                s.execute(params![
                    entity,
                    pass.cursor.map(ms),
                    ms(now),
                    pass.full,
                    pass.applied as i64,
                    pass.clashes as i64,
                    pass.removed as i64
                ])
            })
            .map(|_| ())
            .map_err(|e| self.sql(e))
        })
    }

    /// Records a failed pull of `entity`.
    pub fn record_sync_error(
        &self,
        entity: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT INTO platform_sync (entity, last_error, last_error_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (entity) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at",
                params![entity, error, ms(now)],
            )
            .map(|_| ())
            .map_err(|e| self.sql(e))
        })
    }

    /// Every entity's sync state.
    pub fn sync_status(&self) -> Result<Vec<SyncRow>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT entity, cursor, last_success, last_full, last_error, last_error_at, applied, clashes, removed \
                 FROM platform_sync ORDER BY entity",
            )
            .and_then(|mut s| {
                s.query_map([], |r| {
                    let time = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(from_ms));
                    Ok(SyncRow {
                        entity: r.get(0)?,
                        cursor: time(1)?,
                        last_success: time(2)?,
                        last_full: time(3)?,
                        last_error: r.get(4)?,
                        last_error_at: time(5)?,
                        applied: r.get(6)?,
                        clashes: r.get(7)?,
                        removed: r.get(8)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.sql(e))
        })
    }
}
