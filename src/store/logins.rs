//! What a login reads besides its code's facts: the codes behind an email (email +
//! PIN logins, the platform's own way) and whether a device is already bound to a
//! code (the one question asked while a failure budget is spent).

use super::{Store, StoreError};
use crate::model::Mac;
use rusqlite::params;

/// Codes looked at for one email at most: the same visitor registered again keeps
/// their email with a new PIN, so one email may own several codes; the newest first.
const MAX_CODES_PER_EMAIL: usize = 64;

impl Store {
    /// The codes (PINs) of the visitors and members of `business_id` whose email is
    /// `email`, compared case-insensitively, newest first. A visitor counts only with
    /// the token their PIN logs in with; a member through their PIN's token.
    pub fn codes_of_email(&self, business_id: i64, email: &str) -> Result<Vec<String>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT code FROM ( \
                   SELECT t.access_code AS code, v.created_at AS created FROM visitors v \
                     JOIN access_tokens t ON t.visitor_guid = v.guid AND t.business_id = v.business_id AND t.access_code = v.pin \
                     WHERE v.business_id = ?1 AND v.email = ?2 COLLATE NOCASE \
                   UNION ALL \
                   SELECT t.access_code, c.created_at FROM customers c JOIN access_tokens t ON t.customer_id = c.id \
                     WHERE c.business_id = ?1 AND c.email = ?2 COLLATE NOCASE) \
                 ORDER BY created DESC LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![business_id, email, MAX_CODES_PER_EMAIL as i64], |r| r.get(0))?
                    .collect()
            })
            .map_err(|e| self.sql(e))
        })
    }

    /// Whether `mac` is bound to the code `user_name` names in the business: the code
    /// itself, or, when `by_email`, any code of a person with that email. One indexed
    /// read whatever the answer, so a code that exists and one that does not cost
    /// the same (asked while a failure budget is spent, where the answer for any
    /// device not bound must be the same).
    pub fn device_bound(
        &self,
        business_id: i64,
        user_name: &str,
        by_email: bool,
        mac: Mac,
    ) -> Result<bool, StoreError> {
        let mac = mac.to_string();
        self.with_conn(|conn| {
            // Two EXISTS, each an index search (SQLite plans the single OR'd form as a
            // scan of the business's tokens without statistics).
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM access_tokens t JOIN device_bindings b ON b.token_id = t.id AND b.mac = ?3 \
                   WHERE t.business_id = ?1 AND t.access_code = ?2) \
                 OR (?4 AND EXISTS (SELECT 1 FROM device_bindings b WHERE b.mac = ?3 AND b.token_id IN ( \
                   SELECT t.id FROM visitors v JOIN access_tokens t ON t.visitor_guid = v.guid \
                     AND t.business_id = v.business_id AND t.access_code = v.pin \
                     WHERE v.business_id = ?1 AND v.email = ?2 COLLATE NOCASE \
                   UNION ALL SELECT t.id FROM customers c JOIN access_tokens t ON t.customer_id = c.id \
                     WHERE c.business_id = ?1 AND c.email = ?2 COLLATE NOCASE)))",
            )
            .and_then(|mut s| s.query_row(params![business_id, user_name, mac, by_email], |r| r.get(0)))
            .map_err(|e| self.sql(e))
        })
    }
}
