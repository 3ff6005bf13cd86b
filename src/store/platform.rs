//! Records from the coworking platform: which local token each platform record
//! became (`platform_links`), and where each entity's pull stands (`platform_sync`).
//! One code, one owner still holds: a platform record whose code a local record
//! already owns is a clash, counted and left alone, never an overwrite.

use super::sql::{Db, DbError};
use super::tokens::{code_owner, insert_token, token_in, update_token_in};
use super::{Store, StoreError, from_ms, ms};
use crate::model::NewAccessToken;
use chrono::{DateTime, Utc};

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
pub(super) type Link = (Option<String>, Option<i64>);

/// The local record a platform record became, if it was applied here.
pub(super) fn linked(
    db: &mut dyn Db,
    entity: &str,
    platform_id: i64,
) -> Result<Option<Link>, DbError> {
    db.query_opt(
        "SELECT local_id, token_id FROM platform_links WHERE entity = $1 AND platform_id = $2",
        &[&entity, &platform_id],
    )?
    .map(|r| Ok((r.get(0)?, r.get(1)?)))
    .transpose()
}

/// Records (or moves) the link of a platform record to its local record.
#[allow(clippy::too_many_arguments)]
pub(super) fn link(
    db: &mut dyn Db,
    entity: &str,
    platform_id: i64,
    business_id: i64,
    local_id: Option<&str>,
    token_id: Option<i64>,
    updated_on: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO platform_links (entity, platform_id, business_id, local_id, token_id, \
         updated_on, linked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (entity, platform_id) DO UPDATE SET business_id = excluded.business_id, \
         local_id = excluded.local_id, token_id = excluded.token_id, updated_on = excluded.updated_on",
        &[&entity, &platform_id, &business_id, &local_id, &token_id, &ms(updated_on), &ms(now)],
    )?;
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
        self.write(|db| {
            let linked = linked(db, ACCESS_TOKENS, platform_id)?.and_then(|(_, token)| token);
            let applied = match linked {
                Some(id) if token_in(db, id)?.is_some() => {
                    // A taken code is found by a read before any write: nothing to
                    // undo, and no failed statement (PostgreSQL's transaction goes on).
                    match update_token_in(db, id, token, now) {
                        Ok(true) => Applied::Updated(id),
                        Ok(false) => Applied::Unchanged(id),
                        Err(StoreError::CodeTaken { owner, .. }) => {
                            return Ok(Applied::Clash { owner });
                        }
                        Err(e) => return Err(e),
                    }
                }
                _ => {
                    if let Some(owner) = code_owner(db, token.business_id, &token.access_code)? {
                        return Ok(Applied::Clash { owner });
                    }
                    Applied::Created(insert_token(db, token, None, now)?)
                }
            };
            let id = match applied {
                Applied::Created(id) | Applied::Updated(id) | Applied::Unchanged(id) => id,
                Applied::Clash { .. } => unreachable!("returned above"),
            };
            link(
                db,
                ACCESS_TOKENS,
                platform_id,
                token.business_id,
                None,
                Some(id),
                updated_on,
                now,
            )?;
            Ok(applied)
        })
    }

    /// The platform ids of `entity` linked here, in `business_ids`, that a full
    /// listing did not have (`listed`): to be read again before anything is removed.
    pub fn unlisted_platform_ids(
        &self,
        entity: &str,
        business_ids: &[i64],
        listed: &std::collections::HashSet<i64>,
    ) -> Result<Vec<i64>, StoreError> {
        self.with_db(|db| {
            let mut unlisted = Vec::new();
            for r in db.query(
                "SELECT platform_id, business_id FROM platform_links WHERE entity = $1",
                &[&entity],
            )? {
                let (id, business): (i64, i64) = (r.get(0)?, r.get(1)?);
                if business_ids.contains(&business) && !listed.contains(&id) {
                    unlisted.push(id);
                }
            }
            Ok(unlisted)
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
        self.write(|db| {
            let Some((local_id, token_id)) = linked(db, entity, platform_id)? else {
                return Ok(false);
            };
            let changed = super::platform_people::remove_local(
                db,
                entity,
                local_id.as_deref(),
                token_id,
                now,
            )?;
            if entity != COWORKERS {
                db.execute(
                    "DELETE FROM platform_links WHERE entity = $1 AND platform_id = $2",
                    &[&entity, &platform_id],
                )?;
            }
            Ok(changed)
        })
    }

    /// The platform id of the `entity` record whose local record is `local_id` (a
    /// customer's id, a visitor's guid), if it came from the platform.
    pub fn platform_id_of(&self, entity: &str, local_id: &str) -> Result<Option<i64>, StoreError> {
        self.with_db(|db| {
            let row = db.query_opt(
                "SELECT platform_id FROM platform_links WHERE entity = $1 AND local_id = $2",
                &[&entity, &local_id],
            )?;
            Ok(row.map(|r| r.get(0)).transpose()?)
        })
    }

    /// The platform record a local token came from (`entity`, platform id), if any:
    /// such a token is changed at the platform, not here.
    pub fn platform_source(&self, token_id: i64) -> Result<Option<(String, i64)>, StoreError> {
        self.with_db(|db| {
            let row = db.query_opt(
                "SELECT entity, platform_id FROM platform_links WHERE token_id = $1",
                &[&token_id],
            )?;
            Ok(row
                .map(|r| Ok::<_, DbError>((r.get(0)?, r.get(1)?)))
                .transpose()?)
        })
    }

    /// Where the pull of `entity` stands: the newest `UpdatedOn` applied.
    pub fn sync_cursor(&self, entity: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with_db(|db| {
            let row = db.query_opt(
                "SELECT cursor FROM platform_sync WHERE entity = $1",
                &[&entity],
            )?;
            let cursor = match row {
                Some(r) => r.get::<Option<i64>>(0)?,
                None => None,
            };
            Ok(cursor.map(from_ms))
        })
    }

    /// Records a finished pull of `entity` (its cursor only moves forward).
    pub fn record_sync(
        &self,
        entity: &str,
        pass: &SyncPass,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // The cursor keeps the larger of the stored and the new one: CASE, as PostgreSQL
        // has no two-argument max(); the stored row is named by its table, as
        // PostgreSQL finds a bare column ambiguous beside `excluded`.
        self.with_db(|db| {
            db.execute(
                "INSERT INTO platform_sync (entity, cursor, last_success, last_full, applied, clashes, removed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (entity) DO UPDATE SET \
                 cursor = CASE WHEN COALESCE(platform_sync.cursor, 0) > COALESCE(excluded.cursor, 0) \
                   THEN COALESCE(platform_sync.cursor, 0) ELSE COALESCE(excluded.cursor, 0) END, \
                 last_success = excluded.last_success, \
                 last_full = COALESCE(excluded.last_full, platform_sync.last_full), \
                 applied = platform_sync.applied + excluded.applied, \
                 clashes = platform_sync.clashes + excluded.clashes, \
                 removed = platform_sync.removed + excluded.removed",
                &[
                    &entity,
                    &pass.cursor.map(ms),
                    &ms(now),
                    &pass.full.then(|| ms(now)),
                    &pass.applied,
                    &pass.clashes,
                    &pass.removed,
                ],
            )?;
            Ok(())
        })
    }

    /// Records a failed pull of `entity`.
    pub fn record_sync_error(
        &self,
        entity: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.with_db(|db| {
            db.execute(
                "INSERT INTO platform_sync (entity, last_error, last_error_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (entity) DO UPDATE SET last_error = excluded.last_error, \
                 last_error_at = excluded.last_error_at",
                &[&entity, &error, &ms(now)],
            )?;
            Ok(())
        })
    }

    /// Every entity's sync state.
    pub fn sync_status(&self) -> Result<Vec<SyncRow>, StoreError> {
        self.with_db(|db| {
            let rows = db.query(
                "SELECT entity, cursor, last_success, last_full, last_error, last_error_at, applied, \
                 clashes, removed \
                 FROM platform_sync ORDER BY entity",
                &[],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let time = |i: usize| r.get::<Option<i64>>(i).map(|v| v.map(from_ms));
                out.push(SyncRow {
                    entity: r.get(0)?,
                    cursor: time(1)?,
                    last_success: time(2)?,
                    last_full: time(3)?,
                    last_error: r.get(4)?,
                    last_error_at: time(5)?,
                    applied: r.get(6)?,
                    clashes: r.get(7)?,
                    removed: r.get(8)?,
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{new, now, on_each_backend};
    use chrono::Duration;
    use std::collections::HashSet;

    #[test]
    fn sync_cursor_only_moves_forward_and_counts_add_up() {
        on_each_backend(|s| {
            let (t1, t2) = (now() - Duration::hours(2), now() - Duration::hours(1));
            let pass = |cursor, applied, full| SyncPass {
                cursor,
                applied,
                clashes: 1,
                removed: 0,
                full,
            };
            s.record_sync(COWORKERS, &pass(Some(t2), 3, true), now())
                .unwrap();
            let later = now() + Duration::minutes(5);
            s.record_sync(COWORKERS, &pass(Some(t1), 2, false), later)
                .unwrap();
            s.record_sync(COWORKERS, &pass(None, 0, false), later)
                .unwrap();
            assert_eq!(
                s.sync_cursor(COWORKERS).unwrap(),
                Some(t2),
                "{}",
                s.backend()
            );
            s.record_sync_error(COWORKERS, "timed out", later).unwrap();
            s.record_sync_error(VISITORS, "refused", later).unwrap();
            let status = s.sync_status().unwrap();
            assert_eq!(
                status[0],
                SyncRow {
                    entity: COWORKERS.into(),
                    cursor: Some(t2),
                    last_success: Some(later),
                    last_full: Some(now()),
                    last_error: Some("timed out".into()),
                    last_error_at: Some(later),
                    applied: 5,
                    clashes: 3,
                    removed: 0,
                },
                "{}",
                s.backend()
            );
            assert_eq!(status[1].entity, VISITORS);
            assert_eq!(status[1].cursor, None);
            assert_eq!(status[1].applied, 0);
        });
    }

    #[test]
    fn platform_token_created_changed_clashing_and_removed() {
        on_each_backend(|s| {
            let mut t = new("12345");
            let Applied::Created(id) = s.apply_platform_token(10, &t, now(), now()).unwrap() else {
                panic!("{}: not created", s.backend());
            };
            assert_eq!(
                s.apply_platform_token(10, &t, now(), now()).unwrap(),
                Applied::Unchanged(id)
            );
            t.minutes_included = 90;
            assert_eq!(
                s.apply_platform_token(10, &t, now(), now()).unwrap(),
                Applied::Updated(id)
            );
            assert_eq!(
                s.platform_source(id).unwrap(),
                Some((ACCESS_TOKENS.to_string(), 10))
            );
            // A code a local token holds is a clash, for a new record and a changed one.
            let local = s.create_token(&new("55555"), now()).unwrap();
            let clash = Applied::Clash {
                owner: format!("token {local}"),
            };
            assert_eq!(
                s.apply_platform_token(11, &new("55555"), now(), now())
                    .unwrap(),
                clash
            );
            t.access_code = "55555".into();
            assert_eq!(s.apply_platform_token(10, &t, now(), now()).unwrap(), clash);
            assert_eq!(s.token_by_id(id).unwrap().unwrap().access_code, "12345");

            let unlisted = |listed: &[i64]| {
                s.unlisted_platform_ids(
                    ACCESS_TOKENS,
                    &[1],
                    &listed.iter().copied().collect::<HashSet<_>>(),
                )
                .unwrap()
            };
            assert_eq!(unlisted(&[10]), Vec::<i64>::new());
            assert_eq!(unlisted(&[]), vec![10]);
            assert!(s.remove_platform_record(ACCESS_TOKENS, 10, now()).unwrap());
            assert_eq!(s.token_by_id(id).unwrap(), None, "{}", s.backend());
            assert_eq!(s.platform_source(id).unwrap(), None);
            assert!(!s.remove_platform_record(ACCESS_TOKENS, 10, now()).unwrap());
        });
    }
}
