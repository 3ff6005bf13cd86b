//! What a login reads besides its code's facts: the codes behind an email (email +
//! PIN logins, the platform's own way) and whether a device is already bound to a
//! code (the one question asked while a failure budget is spent).

use super::{Store, StoreError};
use crate::model::Mac;

/// Codes looked at for one email at most: the same visitor registered again keeps
/// their email with a new PIN, so one email may own several codes; the newest first.
const MAX_CODES_PER_EMAIL: usize = 64;

impl Store {
    /// The codes (PINs) of the visitors and members of `business_id` whose email is
    /// `email`, compared case-insensitively (`lower()`, as the email indexes are),
    /// newest first. A visitor counts only with the token their PIN logs in with; a
    /// member through their PIN's token.
    pub fn codes_of_email(&self, business_id: i64, email: &str) -> Result<Vec<String>, StoreError> {
        self.with_db(|db| {
            // `email IS NOT NULL` spells out what the comparison implies, so both
            // backends see that the partial email indexes apply.
            let rows = db.query(
                "SELECT code FROM ( \
                   SELECT t.access_code AS code, v.created_at AS created FROM visitors v \
                     JOIN access_tokens t ON t.visitor_guid = v.guid AND t.business_id = v.business_id AND t.access_code = v.pin \
                     WHERE v.business_id = $1 AND v.email IS NOT NULL AND lower(v.email) = lower($2) \
                   UNION ALL \
                   SELECT t.access_code, c.created_at FROM customers c JOIN access_tokens t ON t.customer_id = c.id \
                     WHERE c.business_id = $1 AND c.email IS NOT NULL AND lower(c.email) = lower($2)) AS codes \
                 ORDER BY created DESC LIMIT $3",
                &[&business_id, &email, &MAX_CODES_PER_EMAIL],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect::<Result<_, _>>()?)
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
        self.with_db(|db| {
            // Two EXISTS, each an index search (SQLite plans the single OR'd form as a
            // scan of the business's tokens without statistics).
            let row = db.query_one(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM access_tokens t JOIN device_bindings b ON b.token_id = t.id AND b.mac = $3 \
                   WHERE t.business_id = $1 AND t.access_code = $2) \
                 OR ($4 = 1 AND EXISTS (SELECT 1 FROM device_bindings b WHERE b.mac = $3 AND b.token_id IN ( \
                   SELECT t.id FROM visitors v JOIN access_tokens t ON t.visitor_guid = v.guid \
                     AND t.business_id = v.business_id AND t.access_code = v.pin \
                     WHERE v.business_id = $1 AND v.email IS NOT NULL AND lower(v.email) = lower($2) \
                   UNION ALL SELECT t.id FROM customers c JOIN access_tokens t ON t.customer_id = c.id \
                     WHERE c.business_id = $1 AND c.email IS NOT NULL AND lower(c.email) = lower($2)))) \
                 THEN 1 ELSE 0 END",
                &[&business_id, &user_name, &mac, &by_email],
            )?;
            Ok(row.get(0)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Mac;
    use crate::store::testing::{TestStore, new, now, on_each_backend};

    /// A visitor with `email` and the token of their PIN, and a member with the same
    /// email (other case) and the token of theirs; returns the two tokens' ids.
    fn people(s: &TestStore) -> (i64, i64) {
        let mut visitor_token = new("11111");
        visitor_token.visitor_guid = Some("g1".into());
        let visitor = s.create_token(&visitor_token, now()).unwrap();
        let member = s.create_token(&new("22222"), now()).unwrap();
        s.with_db(|db| {
            db.execute(
                "INSERT INTO visitors (guid, business_id, name, email, pin, created_at) \
                 VALUES ('g1', 1, 'V', 'Ann@Example.org', '11111', 1)",
                &[],
            )?;
            let customer: i64 = db
                .query_one(
                    "INSERT INTO customers (business_id, name, email, pin, created_at) \
                     VALUES (1, 'M', 'ann@example.ORG', '22222', 2) RETURNING id",
                    &[],
                )?
                .get(0)?;
            db.execute(
                "UPDATE access_tokens SET customer_id = $1 WHERE id = $2",
                &[&customer, &member],
            )?;
            Ok(())
        })
        .unwrap();
        (visitor, member)
    }

    #[test]
    fn codes_of_an_email_ignore_case_newest_first() {
        on_each_backend(|s| {
            people(s);
            let codes = s.codes_of_email(1, "ANN@example.org").unwrap();
            assert_eq!(codes, ["22222", "11111"], "{}", s.backend());
            assert!(s.codes_of_email(2, "ann@example.org").unwrap().is_empty());
            assert!(s.codes_of_email(1, "bob@example.org").unwrap().is_empty());
        });
    }

    #[test]
    fn device_bound_by_code_or_by_email() {
        on_each_backend(|s| {
            let (_, member) = people(s);
            let mac: Mac = "aa-bb-cc-dd-ee-ff".parse().unwrap();
            let other: Mac = "aa-bb-cc-dd-ee-00".parse().unwrap();
            s.with_db(|db| {
                Ok(db.execute(
                    "INSERT INTO device_bindings (token_id, mac, bound_at) VALUES ($1, $2, 0)",
                    &[&member, &mac.to_string()],
                )?)
            })
            .unwrap();
            assert!(
                s.device_bound(1, "22222", false, mac).unwrap(),
                "{}",
                s.backend()
            );
            assert!(!s.device_bound(1, "22222", false, other).unwrap());
            assert!(!s.device_bound(1, "11111", false, mac).unwrap());
            assert!(s.device_bound(1, "Ann@Example.org", true, mac).unwrap());
            assert!(!s.device_bound(1, "Ann@Example.org", false, mac).unwrap());
            assert!(!s.device_bound(2, "ann@example.org", true, mac).unwrap());
        });
    }
}
