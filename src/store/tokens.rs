//! Access tokens: created (one code, one owner), listed, read, revoked, deleted;
//! what a login reads of them is `facts.rs`.

use super::sql::{self, Arg, Db, DbError, Value};
use super::{Store, StoreError, ms};
use crate::model::{AccessToken, Mac, NewAccessToken, mask_code};
use chrono::{DateTime, Utc};

pub(super) const TOKEN_COLUMNS: &str = "id, business_id, access_code, minutes_included, description, valid_from, valid_to, \
     user_limit, device_limit, mac_address, booking_guid, visitor_guid, created_at, revoked_at, customer_id, uid";

fn time(id: i64, field: &'static str, v: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    v.map(|v| {
        DateTime::from_timestamp_millis(v).ok_or(StoreError::Corrupt {
            id,
            field,
            value: v.to_string(),
        })
    })
    .transpose()
}

fn count(id: i64, field: &'static str, v: Option<i64>) -> Result<Option<u32>, StoreError> {
    v.map(|v| {
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            id,
            field,
            value: v.to_string(),
        })
    })
    .transpose()
}

/// Raw column values, converted in a second step so conversion errors carry the
/// token id and field.
pub(super) struct TokenRow {
    id: i64,
    business_id: i64,
    access_code: String,
    minutes_included: i64,
    description: Option<String>,
    valid_from: Option<i64>,
    valid_to: Option<i64>,
    user_limit: Option<i64>,
    device_limit: Option<i64>,
    mac_address: Option<String>,
    booking_guid: Option<String>,
    visitor_guid: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
    customer_id: Option<i64>,
    uid: String,
}

impl TokenRow {
    /// A row of [`TOKEN_COLUMNS`], in that order.
    pub(super) fn read(r: &sql::Row) -> Result<Self, DbError> {
        Ok(Self {
            id: r.get(0)?,
            business_id: r.get(1)?,
            access_code: r.get(2)?,
            minutes_included: r.get(3)?,
            description: r.get(4)?,
            valid_from: r.get(5)?,
            valid_to: r.get(6)?,
            user_limit: r.get(7)?,
            device_limit: r.get(8)?,
            mac_address: r.get(9)?,
            booking_guid: r.get(10)?,
            visitor_guid: r.get(11)?,
            created_at: r.get(12)?,
            revoked_at: r.get(13)?,
            customer_id: r.get(14)?,
            uid: r.get(15)?,
        })
    }

    pub(super) fn into_token(self) -> Result<AccessToken, StoreError> {
        let id = self.id;
        let mac_address = self
            .mac_address
            .map(|m| {
                m.parse::<Mac>().map_err(|_| StoreError::Corrupt {
                    id,
                    field: "mac_address",
                    value: m,
                })
            })
            .transpose()?;
        Ok(AccessToken {
            id,
            business_id: self.business_id,
            access_code: self.access_code,
            minutes_included: count(id, "minutes_included", Some(self.minutes_included))?
                .unwrap_or(0),
            description: self.description,
            valid_from: time(id, "valid_from", self.valid_from)?,
            valid_to: time(id, "valid_to", self.valid_to)?,
            user_limit: count(id, "user_limit", self.user_limit)?,
            device_limit: count(id, "device_limit", self.device_limit)?,
            mac_address,
            booking_guid: self.booking_guid,
            visitor_guid: self.visitor_guid,
            customer_id: self.customer_id,
            created_at: time(id, "created_at", Some(self.created_at))?.unwrap_or_default(),
            revoked_at: time(id, "revoked_at", self.revoked_at)?,
            uid: self.uid,
        })
    }
}

/// Tokens of rows of [`TOKEN_COLUMNS`].
fn tokens_of(rows: Vec<sql::Row>) -> Result<Vec<AccessToken>, StoreError> {
    rows.iter()
        .map(|r| TokenRow::read(r)?.into_token())
        .collect()
}

/// The columns a token is written with, in this order: business_id, access_code,
/// minutes_included, description, valid_from, valid_to, user_limit, device_limit,
/// mac_address, booking_guid, visitor_guid (shared by insert and update).
pub(super) fn token_fields(t: &NewAccessToken) -> [Value; 11] {
    [
        t.business_id.value(),
        t.access_code.value(),
        t.minutes_included.value(),
        t.description.value(),
        t.valid_from.map(ms).value(),
        t.valid_to.map(ms).value(),
        t.user_limit.value(),
        t.device_limit.value(),
        t.mac_address.map(|m| m.to_string()).value(),
        t.booking_guid.value(),
        t.visitor_guid.value(),
    ]
}

/// Inserts a token (with a new uid) and returns its id.
pub(super) fn insert_token(
    db: &mut dyn Db,
    t: &NewAccessToken,
    customer_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let fields = token_fields(t);
    let (created_at, uid) = (ms(now), sql::new_uid());
    let mut args: Vec<&dyn Arg> = fields.iter().map(|v| v as &dyn Arg).collect();
    args.extend([&created_at as &dyn Arg, &customer_id, &uid]);
    let row = db.query_one(
        "INSERT INTO access_tokens (business_id, access_code, minutes_included, description, valid_from, valid_to, \
         user_limit, device_limit, mac_address, booking_guid, visitor_guid, created_at, customer_id, uid) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        &args,
    )?;
    Ok(row.get(0)?)
}

impl Store {
    /// Inserts the tokens in one transaction: all or none. The code-uniqueness check
    /// runs inside the same write transaction as the insert, so two admin commands
    /// (or two servers) racing for one code cannot both succeed. Errors carry the
    /// index of the row.
    pub fn create_tokens(
        &self,
        tokens: &[NewAccessToken],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        self.write(|db| {
            let mut ids = Vec::with_capacity(tokens.len());
            for (row, t) in tokens.iter().enumerate() {
                let wrap = |e: StoreError| {
                    if tokens.len() > 1 {
                        StoreError::Row {
                            row,
                            source: Box::new(e),
                        }
                    } else {
                        e
                    }
                };
                ensure_code_free(db, t.business_id, &t.access_code).map_err(wrap)?;
                ids.push(insert_token(db, t, None, now).map_err(wrap)?);
            }
            Ok(ids)
        })
    }

    pub fn create_token(
        &self,
        token: &NewAccessToken,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        Ok(self.create_tokens(std::slice::from_ref(token), now)?[0])
    }

    /// Inserts `count` tokens named `prefix` + 7 digits, for benchmarks: one
    /// transaction, one prepared statement; codes already there are skipped. Returns
    /// how many were inserted.
    pub fn seed_tokens(
        &self,
        prefix: &str,
        count: u64,
        business_id: i64,
        minutes: u32,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.write(|db| {
            let mut inserted = 0;
            for n in 0..count {
                inserted += db.execute(
                    "INSERT INTO access_tokens (business_id, access_code, minutes_included, description, created_at, uid) \
                     VALUES ($1, $2, $3, 'bench', $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &business_id as &dyn Arg,
                        &crate::bench::seeded_code(prefix, n),
                        &minutes,
                        &ms(now),
                        &sql::new_uid(),
                    ],
                )?;
            }
            Ok(inserted)
        })
    }

    /// Tokens with this code: one per business at most; `business_id` narrows it.
    pub fn tokens_by_code(
        &self,
        code: &str,
        business_id: Option<i64>,
    ) -> Result<Vec<AccessToken>, StoreError> {
        self.with_db(|db| {
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE access_code = $1 AND (CAST($2 AS BIGINT) IS NULL OR business_id = $2) \
                 ORDER BY business_id"
            );
            tokens_of(db.query(&sql, &[&code, &business_id])?)
        })
    }

    pub fn list_tokens(&self, business_id: Option<i64>) -> Result<Vec<AccessToken>, StoreError> {
        self.with_db(|db| {
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE (CAST($1 AS BIGINT) IS NULL OR business_id = $1) ORDER BY id"
            );
            tokens_of(db.query(&sql, &[&business_id])?)
        })
    }

    /// Marks a token revoked and queues a disconnect for each of its open sessions.
    /// Returns false when it already was revoked.
    pub fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(|db| {
            let n = db.execute(
                "UPDATE access_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &ms(now)],
            )?;
            if n == 1 {
                super::disconnects::queue_for_token(db, id, "revoked", now)?;
            }
            Ok(n == 1)
        })
    }

    /// Deletes a token with its device bindings and sessions, queueing a disconnect
    /// for each open session first. Returns false when there was no such token.
    pub fn delete_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(|db| {
            super::disconnects::queue_for_token(db, id, "deleted", now)?;
            Ok(db.execute("DELETE FROM access_tokens WHERE id = $1", &[&id])? == 1)
        })
    }

    /// Writes `token`'s fields over token `id` in one transaction; false when nothing
    /// changed. A new code must be free; a changed code disconnects the sessions
    /// logged in with the old one.
    pub fn update_token(
        &self,
        id: i64,
        token: &NewAccessToken,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|db| update_token_in(db, id, token, now))
    }

    pub fn token_by_id(&self, id: i64) -> Result<Option<AccessToken>, StoreError> {
        self.with_db(|db| token_in(db, id))
    }

    /// One page of tokens in id order, optionally only a business's and/or a code's,
    /// and how many match in all.
    pub fn page_tokens(
        &self,
        business_id: Option<i64>,
        code: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<AccessToken>, u64), StoreError> {
        self.read(|db| {
            let filter = "(CAST($1 AS BIGINT) IS NULL OR business_id = $1) AND (CAST($2 AS TEXT) IS NULL OR access_code = $2)";
            let total: u64 = db
                .query_one(
                    &format!("SELECT count(*) FROM access_tokens WHERE {filter}"),
                    &[&business_id, &code],
                )?
                .get(0)?;
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE {filter} ORDER BY id LIMIT $3 OFFSET $4"
            );
            let rows = db.query(&sql, &[&business_id, &code, &limit, &offset])?;
            Ok((tokens_of(rows)?, total))
        })
    }
}

/// The token with this id, read on `db`.
pub(super) fn token_in(db: &mut dyn Db, id: i64) -> Result<Option<AccessToken>, StoreError> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE id = $1");
    db.query_opt(&sql, &[&id])?
        .map(|r| TokenRow::read(&r)?.into_token())
        .transpose()
}

/// Writes `token`'s fields over the local token `id`; true when anything changed. A
/// new code must be free (its only owner may be the token itself): otherwise
/// [`StoreError::CodeTaken`], found before anything is written.
pub(super) fn update_token_in(
    db: &mut dyn Db,
    id: i64,
    t: &NewAccessToken,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(current) = token_in(db, id)? else {
        return Ok(false);
    };
    let same = current.business_id == t.business_id
        && current.access_code == t.access_code
        && current.minutes_included == t.minutes_included
        && current.description == t.description
        && current.valid_from == t.valid_from
        && current.valid_to == t.valid_to
        && current.user_limit == t.user_limit
        && current.device_limit == t.device_limit
        && current.mac_address == t.mac_address
        && current.booking_guid == t.booking_guid
        && current.visitor_guid == t.visitor_guid;
    if same {
        return Ok(false);
    }
    let code_changed = current.access_code != t.access_code || current.business_id != t.business_id;
    if code_changed
        && let Some(owner) = code_owner(db, t.business_id, &t.access_code)?
        && owner != format!("token {id}")
    {
        return Err(StoreError::CodeTaken {
            business_id: t.business_id,
            code: mask_code(&t.access_code),
            owner,
        });
    }
    let fields = token_fields(t);
    let mut args: Vec<&dyn Arg> = fields.iter().map(|v| v as &dyn Arg).collect();
    args.push(&id);
    db.execute(
        "UPDATE access_tokens SET business_id = $1, access_code = $2, minutes_included = $3, description = $4, \
         valid_from = $5, valid_to = $6, user_limit = $7, device_limit = $8, mac_address = $9, booking_guid = $10, \
         visitor_guid = $11 WHERE id = $12",
        &args,
    )?;
    if code_changed {
        // Sessions logged in with the old code end with it.
        super::disconnects::queue_for_token(db, id, "changed", now)?;
    }
    Ok(true)
}

/// Who holds `code` in the business: a token, a visitor's PIN or a customer's PIN
/// (SPEC 1: one code, one owner). Call inside the write transaction that
/// then writes the code, so the check and the write are one atomic step.
pub(super) fn code_owner(
    db: &mut dyn Db,
    business_id: i64,
    code: &str,
) -> Result<Option<String>, DbError> {
    db.query_opt(
        "SELECT 'customer ' || id FROM customers WHERE business_id = $1 AND pin = $2 \
         UNION ALL SELECT 'visitor ' || guid FROM visitors WHERE business_id = $1 AND pin = $2 \
         UNION ALL SELECT 'token ' || id FROM access_tokens WHERE business_id = $1 AND access_code = $2 LIMIT 1",
        &[&business_id, &code],
    )?
    .map(|r| r.get(0))
    .transpose()
}

/// Errors with [`StoreError::CodeTaken`] when `code` already has an owner. A revoked
/// token is no owner: it gives its code up (renamed `revoked#ID`, so its sessions and
/// their used time stay on record) and the code can be created again.
pub(super) fn ensure_code_free(
    db: &mut dyn Db,
    business_id: i64,
    code: &str,
) -> Result<(), StoreError> {
    let owner = code_owner(db, business_id, code)?;
    if owner.as_deref().is_some_and(|o| o.starts_with("token "))
        && db.execute(
            "UPDATE access_tokens SET access_code = 'revoked#' || id \
             WHERE business_id = $1 AND access_code = $2 AND revoked_at IS NOT NULL AND customer_id IS NULL",
            &[&business_id, &code],
        )? == 1
    {
        return Ok(());
    }
    match owner {
        None => Ok(()),
        Some(owner) => Err(StoreError::CodeTaken {
            business_id,
            code: mask_code(code),
            owner,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{new, now, on_each_backend, open_session};

    #[test]
    fn create_read_revoke_round_trip() {
        on_each_backend(|s| {
            let mut t = new("12345");
            t.valid_to = Some(now() + chrono::Duration::milliseconds(1500));
            t.mac_address = Some("aa-bb-cc-dd-ee-ff".parse().unwrap());
            t.device_limit = Some(2);
            let id = s.create_token(&t, now()).unwrap();
            let got = s.tokens_by_code("12345", None).unwrap();
            assert_eq!(got.len(), 1, "{}", s.backend());
            assert_eq!(got[0].id, id);
            assert_eq!(got[0].valid_to, t.valid_to);
            assert_eq!(got[0].mac_address, t.mac_address);
            assert_eq!(got[0].uid.len(), 32);
            assert!(s.revoke_token(id, now()).unwrap());
            assert!(!s.revoke_token(id, now()).unwrap());
            assert_eq!(
                s.tokens_by_code("12345", Some(1)).unwrap()[0].revoked_at,
                Some(now())
            );
        });
    }

    #[test]
    fn duplicate_code_refused_and_batch_is_all_or_nothing() {
        on_each_backend(|s| {
            s.create_token(&new("11111"), now()).unwrap();
            let e = s.create_token(&new("11111"), now()).unwrap_err();
            assert!(
                matches!(e, StoreError::CodeTaken { .. }),
                "{}: {e}",
                s.backend()
            );
            assert!(!e.to_string().contains("11111"), "codes are masked: {e}");
            let mut other_business = new("11111");
            other_business.business_id = 2;
            s.create_token(&other_business, now()).unwrap();
            let e = s
                .create_tokens(&[new("22222"), new("33333"), new("22222")], now())
                .unwrap_err();
            assert!(matches!(e, StoreError::Row { row: 2, .. }), "{e}");
            assert!(
                s.tokens_by_code("22222", None).unwrap().is_empty(),
                "nothing of a failed batch is kept ({})",
                s.backend()
            );
        });
    }

    #[test]
    fn revoked_code_is_given_up_and_created_again() {
        on_each_backend(|s| {
            let old = s.create_token(&new("44444"), now()).unwrap();
            s.revoke_token(old, now()).unwrap();
            let id = s.create_token(&new("44444"), now()).unwrap();
            let got = s.tokens_by_code("44444", None).unwrap();
            assert_eq!(got.len(), 1, "{}", s.backend());
            assert_eq!(got[0].id, id);
            let renamed = s.token_by_id(old).unwrap().unwrap();
            assert_eq!(renamed.access_code, format!("revoked#{old}"));
        });
    }

    #[test]
    fn update_checks_the_new_code_and_disconnects_the_old_sessions() {
        on_each_backend(|s| {
            let a = s.create_token(&new("55555"), now()).unwrap();
            s.create_token(&new("66666"), now()).unwrap();
            open_session(s, a, "x1");
            let e = s.update_token(a, &new("66666"), now()).unwrap_err();
            assert!(
                matches!(e, StoreError::CodeTaken { .. }),
                "{}: {e}",
                s.backend()
            );
            assert!(
                !s.update_token(a, &new("55555"), now()).unwrap(),
                "unchanged"
            );
            assert!(s.update_token(a, &new("77777"), now()).unwrap());
            assert_eq!(s.token_by_id(a).unwrap().unwrap().access_code, "77777");
            let queued = s.pending_disconnects(10).unwrap();
            assert_eq!(queued.len(), 1, "{}", s.backend());
            assert_eq!(queued[0].reason, "changed");
            assert!(
                !s.update_token(999, &new("88888"), now()).unwrap(),
                "no such token"
            );
        });
    }

    #[test]
    fn pages_count_and_filter() {
        on_each_backend(|s| {
            for code in ["10001", "10002", "10003"] {
                s.create_token(&new(code), now()).unwrap();
            }
            let mut other = new("10002");
            other.business_id = 2;
            s.create_token(&other, now()).unwrap();
            let (page, total) = s.page_tokens(None, None, 1, 2).unwrap();
            assert_eq!(total, 4, "{}", s.backend());
            assert_eq!(page.len(), 2);
            assert_eq!(page[0].access_code, "10002");
            let (page, total) = s.page_tokens(Some(1), Some("10002"), 0, 10).unwrap();
            assert_eq!((page.len(), total), (1, 1));
            assert_eq!(s.list_tokens(Some(2)).unwrap().len(), 1);
            assert_eq!(s.list_tokens(None).unwrap().len(), 4);
            assert_eq!(s.tokens_by_code("10002", None).unwrap().len(), 2);
        });
    }

    #[test]
    fn seeding_skips_codes_already_there() {
        on_each_backend(|s| {
            assert_eq!(
                s.seed_tokens("9", 3, 1, 30, now()).unwrap(),
                3,
                "{}",
                s.backend()
            );
            assert_eq!(s.seed_tokens("9", 5, 1, 30, now()).unwrap(), 2);
            assert_eq!(s.list_tokens(Some(1)).unwrap().len(), 5);
        });
    }

    #[test]
    fn delete_queues_disconnects_first() {
        on_each_backend(|s| {
            let id = s.create_token(&new("12121"), now()).unwrap();
            open_session(s, id, "x1");
            assert!(s.delete_token(id, now()).unwrap());
            assert!(!s.delete_token(id, now()).unwrap());
            assert!(s.token_by_id(id).unwrap().is_none());
            let queued = s.pending_disconnects(10).unwrap();
            assert_eq!(queued.len(), 1, "{}", s.backend());
            assert_eq!(queued[0].reason, "deleted");
        });
    }
}
