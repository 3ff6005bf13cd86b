//! Access tokens: created (one code, one owner), listed, read, revoked, deleted;
//! what a login reads of them is `facts.rs`.

use super::{Store, StoreError, ms};
use crate::model::{AccessToken, Mac, NewAccessToken, mask_code};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

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

/// Raw column values, converted outside rusqlite's row closure so conversion errors
/// carry the token id and field.
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
    pub(super) fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
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

impl Store {
    pub(super) fn sql_or(&self, f: Fail) -> StoreError {
        match f {
            Fail::Sql(e) => self.sql(e),
            Fail::Store(e) => e,
        }
    }
}

/// The columns a token is written with, in this order: business_id, access_code,
/// minutes_included, description, valid_from, valid_to, user_limit, device_limit,
/// mac_address, booking_guid, visitor_guid (shared by insert and update).
pub(super) fn token_fields(t: &NewAccessToken) -> [rusqlite::types::Value; 11] {
    use rusqlite::types::Value;
    [
        Value::from(t.business_id),
        Value::from(t.access_code.clone()),
        Value::from(t.minutes_included),
        Value::from(t.description.clone()),
        Value::from(t.valid_from.map(ms)),
        Value::from(t.valid_to.map(ms)),
        Value::from(t.user_limit),
        Value::from(t.device_limit),
        Value::from(t.mac_address.map(|m| m.to_string())),
        Value::from(t.booking_guid.clone()),
        Value::from(t.visitor_guid.clone()),
    ]
}

pub(super) fn insert_token(
    conn: &Connection,
    t: &NewAccessToken,
    customer_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<i64, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO access_tokens (business_id, access_code, minutes_included, description, valid_from, valid_to, \
         user_limit, device_limit, mac_address, booking_guid, visitor_guid, created_at, customer_id, uid) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, lower(hex(randomblob(16))))",
    )?;
    let extra = [
        rusqlite::types::Value::from(ms(now)),
        rusqlite::types::Value::from(customer_id),
    ];
    stmt.execute(rusqlite::params_from_iter(
        token_fields(t).into_iter().chain(extra),
    ))?;
    Ok(conn.last_insert_rowid())
}

impl Store {
    /// Inserts the tokens in one transaction: all or none. The code-uniqueness check
    /// runs inside the same write transaction as the insert, so two admin commands
    /// racing for one code cannot both succeed. Errors carry the index of the row.
    pub fn create_tokens(
        &self,
        tokens: &[NewAccessToken],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        self.with_conn(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.sql(e))?;
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
                ensure_code_free(&tx, t.business_id, &t.access_code)
                    .map_err(|e| wrap(self.sql_or(e)))?;
                ids.push(insert_token(&tx, t, None, now).map_err(|e| wrap(self.sql(e)))?);
            }
            tx.commit().map_err(|e| self.sql(e))?;
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
    /// transaction, one prepared statement. Returns how many were inserted.
    pub fn seed_tokens(
        &self,
        prefix: &str,
        count: u64,
        business_id: i64,
        minutes: u32,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.with_conn(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.sql(e))?;
            let mut inserted = 0;
            {
                let mut stmt = tx
                    .prepare(
                        "INSERT OR IGNORE INTO access_tokens (business_id, access_code, minutes_included, description, created_at, uid) \
                         VALUES (?1, ?2, ?3, 'bench', ?4, lower(hex(randomblob(16))))",
                    )
                    .map_err(|e| self.sql(e))?;
                for n in 0..count {
                    inserted += stmt
                        .execute(params![business_id, crate::bench::seeded_code(prefix, n), minutes, ms(now)])
                        .map_err(|e| self.sql(e))? as u64;
                }
            }
            tx.commit().map_err(|e| self.sql(e))?;
            Ok(inserted)
        })
    }

    /// Tokens with this code: one per business at most; `business_id` narrows it.
    pub fn tokens_by_code(
        &self,
        code: &str,
        business_id: Option<i64>,
    ) -> Result<Vec<AccessToken>, StoreError> {
        self.with_conn(|conn| {
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE access_code = ?1 AND (?2 IS NULL OR business_id = ?2) ORDER BY business_id"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map(params![code, business_id], TokenRow::read)
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.sql(e))?;
            rows.into_iter().map(TokenRow::into_token).collect()
        })
    }

    pub fn list_tokens(&self, business_id: Option<i64>) -> Result<Vec<AccessToken>, StoreError> {
        self.with_conn(|conn| {
            let sql = format!("SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE (?1 IS NULL OR business_id = ?1) ORDER BY id");
            let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.sql(e))?;
            let rows = stmt
                .query_map(params![business_id], TokenRow::read)
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(|e| self.sql(e))?;
            rows.into_iter().map(TokenRow::into_token).collect()
        })
    }

    /// Marks a token revoked and queues a disconnect for each of its open sessions.
    /// Returns false when it already was revoked.
    pub fn revoke_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE access_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, ms(now)],
            )?;
            if n == 1 {
                super::disconnects::queue_for_token(tx, id, "revoked", now)?;
            }
            Ok(n == 1)
        })
    }

    /// Deletes a token with its device bindings and sessions, queueing a disconnect
    /// for each open session first. Returns false when there was no such token.
    pub fn delete_token(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(|tx| {
            super::disconnects::queue_for_token(tx, id, "deleted", now)?;
            Ok(tx.execute("DELETE FROM access_tokens WHERE id = ?1", params![id])? == 1)
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
        self.write(|tx| update_token_in(tx, id, token, now))
    }

    pub fn token_by_id(&self, id: i64) -> Result<Option<AccessToken>, StoreError> {
        self.with_conn(|conn| token_in(conn, id).map_err(|e| self.sql_or(e)))
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
        self.with_conn(|conn| {
            let filter = "(?1 IS NULL OR business_id = ?1) AND (?2 IS NULL OR access_code = ?2)";
            let total: i64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM access_tokens WHERE {filter}"))
                .and_then(|mut s| s.query_row(params![business_id, code], |r| r.get(0)))
                .map_err(|e| self.sql(e))?;
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE {filter} ORDER BY id LIMIT ?3 OFFSET ?4"
            );
            let rows = conn
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(
                        params![business_id, code, limit as i64, offset as i64],
                        TokenRow::read,
                    )?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| self.sql(e))?;
            let tokens = rows
                .into_iter()
                .map(TokenRow::into_token)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((tokens, total as u64))
        })
    }
}

/// The token with this id, read on `conn`.
pub(super) fn token_in(conn: &Connection, id: i64) -> Result<Option<AccessToken>, Fail> {
    let sql = format!("SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE id = ?1");
    let row = conn
        .prepare_cached(&sql)?
        .query_row(params![id], TokenRow::read)
        .optional()?;
    Ok(row.map(TokenRow::into_token).transpose()?)
}

/// Writes `token`'s fields over the local token `id`; true when anything changed. A
/// new code must be free (its only owner may be the token itself).
pub(super) fn update_token_in(
    conn: &Connection,
    id: i64,
    t: &NewAccessToken,
    now: DateTime<Utc>,
) -> Result<bool, Fail> {
    let Some(current) = token_in(conn, id)? else {
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
        && let Some(owner) = code_owner(conn, t.business_id, &t.access_code)?
        && owner != format!("token {id}")
    {
        return Err(Fail::Store(StoreError::CodeTaken {
            business_id: t.business_id,
            code: mask_code(&t.access_code),
            owner,
        }));
    }
    conn.prepare_cached(
        "UPDATE access_tokens SET business_id = ?1, access_code = ?2, minutes_included = ?3, description = ?4, \
         valid_from = ?5, valid_to = ?6, user_limit = ?7, device_limit = ?8, mac_address = ?9, booking_guid = ?10, \
         visitor_guid = ?11 WHERE id = ?12",
    )?
    .execute(rusqlite::params_from_iter(
        token_fields(t).into_iter().chain([rusqlite::types::Value::from(id)]),
    ))?;
    if code_changed {
        // Sessions logged in with the old code end with it.
        super::disconnects::queue_for_token(conn, id, "changed", now)?;
    }
    Ok(true)
}

/// Who holds `code` in the business: a token, a visitor's PIN or a customer's PIN
/// (SPEC 1: one code, one owner). Call inside the write transaction that
/// then writes the code, so the check and the write are one atomic step.
pub(super) fn code_owner(
    conn: &Connection,
    business_id: i64,
    code: &str,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT 'customer ' || id FROM customers WHERE business_id = ?1 AND pin = ?2 \
         UNION ALL SELECT 'visitor ' || guid FROM visitors WHERE business_id = ?1 AND pin = ?2 \
         UNION ALL SELECT 'token ' || id FROM access_tokens WHERE business_id = ?1 AND access_code = ?2 LIMIT 1",
    )?
    .query_row(params![business_id, code], |r| r.get(0))
    .optional()
}

/// Errors with [`StoreError::CodeTaken`] when `code` already has an owner. A revoked
/// token is no owner: it gives its code up (renamed `revoked#ID`, so its sessions and
/// their used time stay on record) and the code can be created again.
pub(super) fn ensure_code_free(
    conn: &Connection,
    business_id: i64,
    code: &str,
) -> Result<(), Fail> {
    let owner = code_owner(conn, business_id, code)?;
    if owner.as_deref().is_some_and(|o| o.starts_with("token "))
        && conn
            .prepare_cached(
                "UPDATE access_tokens SET access_code = 'revoked#' || id \
                 WHERE business_id = ?1 AND access_code = ?2 AND revoked_at IS NOT NULL AND customer_id IS NULL",
            )?
            .execute(params![business_id, code])?
            == 1
    {
        return Ok(());
    }
    match owner {
        None => Ok(()),
        Some(owner) => Err(Fail::Store(StoreError::CodeTaken {
            business_id,
            code: mask_code(code),
            owner,
        })),
    }
}

/// An error inside a transaction: SQLite's (wrapped with the path by the caller) or
/// one of ours.
pub(super) enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{new, now, store};

    #[test]
    fn create_read_revoke_round_trip() {
        let (_d, s) = store();
        let mut t = new("12345");
        t.valid_to = Some(now() + chrono::Duration::milliseconds(1500));
        t.mac_address = Some("aa-bb-cc-dd-ee-ff".parse().unwrap());
        t.device_limit = Some(2);
        let id = s.create_token(&t, now()).unwrap();
        let got = s.tokens_by_code("12345", None).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, id);
        assert_eq!(got[0].valid_to, t.valid_to);
        assert_eq!(got[0].mac_address, t.mac_address);
        assert!(s.revoke_token(id, now()).unwrap());
        assert!(!s.revoke_token(id, now()).unwrap());
        assert_eq!(
            s.tokens_by_code("12345", Some(1)).unwrap()[0].revoked_at,
            Some(now())
        );
    }

    #[test]
    fn duplicate_code_refused_and_batch_is_all_or_nothing() {
        let (_d, s) = store();
        s.create_token(&new("11111"), now()).unwrap();
        let e = s.create_token(&new("11111"), now()).unwrap_err();
        assert!(matches!(e, StoreError::CodeTaken { .. }));
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
            "nothing of a failed batch is kept"
        );
    }
}
