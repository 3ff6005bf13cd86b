//! Visitors and customers. Every write that creates or changes a PIN checks the code
//! against tokens, visitors and customers of the business inside its own
//! `BEGIN IMMEDIATE` transaction (SPEC 1: one code, one owner), so two admin commands
//! racing for one code cannot both succeed.

use super::tokens::{Fail, code_owner, ensure_code_free, insert_token};
use super::{Store, StoreError, from_ms, ms};
use crate::model::{Customer, NewAccessToken, NewCustomer, NewVisitor, Visitor};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

/// Random draws before concluding the PIN space is (nearly) full.
const PIN_DRAWS: usize = 64;

/// What a visitor's generated token gets (the `[visitors]` settings at registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitorTokenSettings {
    pub minutes: u32,
    pub max_devices: u32,
}

const VISITOR_COLUMNS: &str = "v.id, v.guid, v.business_id, v.name, v.email, v.expected_arrival, v.arrived_at, v.pin, v.created_at, \
     (SELECT t.id FROM access_tokens t WHERE t.visitor_guid = v.guid AND t.business_id = v.business_id AND t.access_code = v.pin)";

fn read_visitor(r: &Row<'_>) -> rusqlite::Result<Visitor> {
    Ok(Visitor {
        id: r.get(0)?,
        guid: r.get(1)?,
        business_id: r.get(2)?,
        name: r.get(3)?,
        email: r.get(4)?,
        expected_arrival: r.get::<_, Option<i64>>(5)?.map(from_ms),
        arrived_at: r.get::<_, Option<i64>>(6)?.map(from_ms),
        pin: r.get(7)?,
        created_at: from_ms(r.get(8)?),
        token_id: r.get(9)?,
    })
}

const CUSTOMER_COLUMNS: &str = "c.id, c.business_id, c.name, c.email, c.pin, c.active, c.created_at, \
     (SELECT t.id FROM access_tokens t WHERE t.customer_id = c.id)";

fn read_customer(r: &Row<'_>) -> rusqlite::Result<Customer> {
    Ok(Customer {
        id: r.get(0)?,
        business_id: r.get(1)?,
        name: r.get(2)?,
        email: r.get(3)?,
        pin: r.get(4)?,
        active: r.get(5)?,
        created_at: from_ms(r.get(6)?),
        token_id: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
    })
}

/// Draws PINs until one is free in the business. Past [`PIN_DRAWS`] collisions the
/// space is nearly full, and the error says how full instead of looping on.
fn draw_pin(
    conn: &Connection,
    business_id: i64,
    draw: &mut dyn FnMut() -> String,
) -> Result<String, Fail> {
    for _ in 0..PIN_DRAWS {
        let pin = draw();
        if code_owner(conn, business_id, &pin)?.is_none() {
            return Ok(pin);
        }
    }
    let used: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT access_code AS c FROM access_tokens WHERE business_id = ?1 \
             UNION SELECT pin FROM visitors WHERE business_id = ?1 UNION SELECT pin FROM customers WHERE business_id = ?1) \
             WHERE c GLOB '[0-9][0-9][0-9][0-9][0-9]'",
        )?
        .query_row(params![business_id], |r| r.get(0))?;
    Err(Fail::Store(StoreError::PinSpaceFull { business_id, used }))
}

pub(super) fn visitor_by_guid(conn: &Connection, guid: &str) -> rusqlite::Result<Option<Visitor>> {
    conn.prepare_cached(&format!(
        "SELECT {VISITOR_COLUMNS} FROM visitors v WHERE v.guid = ?1"
    ))?
    .query_row(params![guid], read_visitor)
    .optional()
}

pub(super) fn customer_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<Customer>> {
    conn.prepare_cached(&format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.id = ?1"
    ))?
    .query_row(params![id], read_customer)
    .optional()
}

impl Store {
    /// Runs `f` in a `BEGIN IMMEDIATE` transaction and commits when it succeeds.
    pub(super) fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        self.with_conn(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.sql(e))?;
            let value = f(&tx).map_err(|e| self.sql_or(e))?;
            tx.commit().map_err(|e| self.sql(e))?;
            Ok(value)
        })
    }

    /// Registers a visitor with a fresh PIN (from `draw`) and, when `token` is given,
    /// the visitor's access token (code = PIN), all in one transaction.
    pub fn register_visitor(
        &self,
        visitor: &NewVisitor,
        guid: &str,
        token: Option<VisitorTokenSettings>,
        now: DateTime<Utc>,
        draw: &mut dyn FnMut() -> String,
    ) -> Result<Visitor, StoreError> {
        self.write(|tx| {
            let pin = draw_pin(tx, visitor.business_id, draw)?;
            tx.prepare_cached(
                "INSERT INTO visitors (guid, business_id, name, email, expected_arrival, pin, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![guid, visitor.business_id, visitor.name, visitor.email, visitor.expected_arrival.map(ms), pin, ms(now)])?;
            if let Some(settings) = token {
                let t = NewAccessToken {
                    business_id: visitor.business_id,
                    access_code: pin.clone(),
                    minutes_included: settings.minutes,
                    description: Some(format!("Visitor {}", visitor.name)),
                    device_limit: Some(settings.max_devices),
                    visitor_guid: Some(guid.to_string()),
                    ..Default::default()
                };
                insert_token(tx, &t, None, now)?;
            }
            visitor_by_guid(tx, guid)?.ok_or_else(|| Fail::Store(StoreError::NotFound { what: "visitor", id: guid.into() }))
        })
    }

    pub fn visitor(&self, guid: &str) -> Result<Option<Visitor>, StoreError> {
        self.with_conn(|conn| visitor_by_guid(conn, guid).map_err(|e| self.sql(e)))
    }

    pub fn list_visitors(&self, business_id: Option<i64>) -> Result<Vec<Visitor>, StoreError> {
        self.with_conn(|conn| {
            let sql = format!("SELECT {VISITOR_COLUMNS} FROM visitors v WHERE (?1 IS NULL OR v.business_id = ?1) ORDER BY v.id");
            conn.prepare_cached(&sql)
                .and_then(|mut s| s.query_map(params![business_id], read_visitor)?.collect())
                .map_err(|e| self.sql(e))
        })
    }

    /// Records the visitor's arrival (admin check-in); returns the previous one.
    pub fn check_in_visitor(
        &self,
        guid: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.write(|tx| {
            let v = visitor_by_guid(tx, guid)?.ok_or_else(|| StoreError::NotFound {
                what: "visitor",
                id: guid.into(),
            })?;
            tx.execute(
                "UPDATE visitors SET arrived_at = ?2 WHERE id = ?1",
                params![v.id, ms(at)],
            )?;
            Ok(v.arrived_at)
        })
    }

    /// Deletes a visitor and the visitor's tokens (they stop working at once).
    /// Returns false when there was no such visitor.
    pub fn delete_visitor(&self, guid: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(v) = visitor_by_guid(tx, guid)? else {
                return Ok(false);
            };
            for token in tx
                .prepare_cached(
                    "SELECT id FROM access_tokens WHERE visitor_guid = ?1 AND business_id = ?2",
                )?
                .query_map(params![v.guid, v.business_id], |r| r.get::<_, i64>(0))?
                .collect::<Result<Vec<_>, _>>()?
            {
                super::disconnects::queue_for_token(tx, token, "deleted", now)?;
            }
            tx.execute(
                "DELETE FROM access_tokens WHERE visitor_guid = ?1 AND business_id = ?2",
                params![v.guid, v.business_id],
            )?;
            tx.execute("DELETE FROM visitors WHERE id = ?1", params![v.id])?;
            Ok(true)
        })
    }

    /// Creates a customer with `pin` (checked free) or a drawn one, and the access
    /// token through which the PIN logs in, in one transaction.
    pub fn create_customer(
        &self,
        customer: &NewCustomer,
        pin: Option<&str>,
        session_minutes: u32,
        now: DateTime<Utc>,
        draw: &mut dyn FnMut() -> String,
    ) -> Result<Customer, StoreError> {
        self.write(|tx| {
            let pin = match pin {
                Some(p) => {
                    ensure_code_free(tx, customer.business_id, p)?;
                    p.to_string()
                }
                None => draw_pin(tx, customer.business_id, draw)?,
            };
            tx.prepare_cached("INSERT INTO customers (business_id, name, email, pin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![customer.business_id, customer.name, customer.email, pin, ms(now)])?;
            let id = tx.last_insert_rowid();
            let t = NewAccessToken {
                business_id: customer.business_id,
                access_code: pin,
                minutes_included: session_minutes,
                description: Some(format!("Customer {}", customer.name)),
                ..Default::default()
            };
            insert_token(tx, &t, Some(id), now)?;
            customer_by_id(tx, id)?.ok_or_else(|| Fail::Store(StoreError::NotFound { what: "customer", id: id.to_string() }))
        })
    }

    pub fn customer(&self, id: i64) -> Result<Option<Customer>, StoreError> {
        self.with_conn(|conn| customer_by_id(conn, id).map_err(|e| self.sql(e)))
    }

    pub fn list_customers(&self, business_id: Option<i64>) -> Result<Vec<Customer>, StoreError> {
        self.with_conn(|conn| {
            let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE (?1 IS NULL OR c.business_id = ?1) ORDER BY c.id");
            conn.prepare_cached(&sql)
                .and_then(|mut s| s.query_map(params![business_id], read_customer)?.collect())
                .map_err(|e| self.sql(e))
        })
    }

    /// Changes a customer's PIN: the old one stops working and the new one works with
    /// the very next request (one transaction updates the customer and its token).
    pub fn set_customer_pin(
        &self,
        id: i64,
        pin: &str,
        now: DateTime<Utc>,
    ) -> Result<Customer, StoreError> {
        self.write(|tx| {
            let c = customer_by_id(tx, id)?.ok_or_else(|| StoreError::NotFound {
                what: "customer",
                id: id.to_string(),
            })?;
            if c.pin != pin {
                ensure_code_free(tx, c.business_id, pin)?;
                tx.execute(
                    "UPDATE customers SET pin = ?2 WHERE id = ?1",
                    params![id, pin],
                )?;
                tx.execute(
                    "UPDATE access_tokens SET access_code = ?2 WHERE customer_id = ?1",
                    params![id, pin],
                )?;
                // Sessions logged in with the old PIN end with it.
                queue_customer_disconnects(tx, id, "pin_changed", now)?;
            }
            customer_by_id(tx, id)?.ok_or_else(|| {
                Fail::Store(StoreError::NotFound {
                    what: "customer",
                    id: id.to_string(),
                })
            })
        })
    }

    /// Activates or deactivates a customer; returns false when nothing changed.
    pub fn set_customer_active(
        &self,
        id: i64,
        active: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            let c = customer_by_id(tx, id)?.ok_or_else(|| StoreError::NotFound {
                what: "customer",
                id: id.to_string(),
            })?;
            if c.active == active {
                return Ok(false);
            }
            tx.execute(
                "UPDATE customers SET active = ?2 WHERE id = ?1",
                params![id, active],
            )?;
            if !active {
                queue_customer_disconnects(tx, id, "deactivated", now)?;
            }
            Ok(true)
        })
    }
}

/// Queues disconnects for the open sessions of a customer's token.
pub(super) fn queue_customer_disconnects(
    tx: &Connection,
    customer_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let token: Option<i64> = tx
        .prepare_cached("SELECT id FROM access_tokens WHERE customer_id = ?1")?
        .query_row(params![customer_id], |r| r.get(0))
        .optional()?;
    if let Some(token) = token {
        super::disconnects::queue_for_token(tx, token, reason, now)?;
    }
    Ok(())
}

/// Checks a visitor in at `now` (their first accepted Wi-Fi login, through the login
/// writer) unless an arrival is recorded; returns the arrival that stands, so a racing
/// second login uses the first one's.
pub(super) fn check_in(
    conn: &Connection,
    visitor_id: i64,
    now: DateTime<Utc>,
) -> rusqlite::Result<DateTime<Utc>> {
    conn.prepare_cached(
        "UPDATE visitors SET arrived_at = ?2 WHERE id = ?1 AND arrived_at IS NULL",
    )?
    .execute(params![visitor_id, ms(now)])?;
    let arrived: Option<i64> = conn
        .prepare_cached("SELECT arrived_at FROM visitors WHERE id = ?1")?
        .query_row(params![visitor_id], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(arrived.map(from_ms).unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        (dir, s)
    }

    fn visitor(business_id: i64) -> NewVisitor {
        NewVisitor {
            business_id,
            name: "Ada".into(),
            ..Default::default()
        }
    }

    const SETTINGS: Option<VisitorTokenSettings> = Some(VisitorTokenSettings {
        minutes: 60,
        max_devices: 2,
    });

    #[test]
    fn one_code_one_owner_across_tokens_visitors_and_customers() {
        let (_d, s) = store();
        let now = Utc::now();
        let v = s
            .register_visitor(&visitor(1), "g-1", SETTINGS, now, &mut || "11111".into())
            .unwrap();
        assert_eq!(v.pin, "11111");
        assert!(v.token_id.is_some());
        // A token, a customer, another visitor: all refused the visitor's PIN.
        let t = NewAccessToken {
            business_id: 1,
            access_code: "11111".into(),
            minutes_included: 5,
            ..Default::default()
        };
        assert!(matches!(
            s.create_token(&t, now),
            Err(StoreError::CodeTaken { .. })
        ));
        let e = s.create_customer(
            &NewCustomer {
                business_id: 1,
                name: "B".into(),
                email: None,
            },
            Some("11111"),
            1440,
            now,
            &mut || "x".into(),
        );
        assert!(matches!(e, Err(StoreError::CodeTaken { .. })));
        // A full draw sequence of taken PINs ends in a clear error, not a loop.
        let e = s
            .register_visitor(&visitor(1), "g-2", SETTINGS, now, &mut || "11111".into())
            .unwrap_err();
        assert!(e.to_string().contains("nearly full: 1 of 100000"), "{e}");
        // Other businesses are separate code spaces.
        s.register_visitor(&visitor(2), "g-3", SETTINGS, now, &mut || "11111".into())
            .unwrap();
        // A customer's new PIN may not take a token's code either.
        let c = s
            .create_customer(
                &NewCustomer {
                    business_id: 1,
                    name: "C".into(),
                    email: None,
                },
                None,
                1440,
                now,
                &mut || "22222".into(),
            )
            .unwrap();
        assert!(matches!(
            s.set_customer_pin(c.id, "11111", Utc::now()),
            Err(StoreError::CodeTaken { .. })
        ));
        assert_eq!(
            s.set_customer_pin(c.id, "33333", Utc::now()).unwrap().pin,
            "33333"
        );
        assert_eq!(
            s.tokens_by_code("33333", Some(1)).unwrap()[0].customer_id,
            Some(c.id)
        );
        assert!(s.tokens_by_code("22222", Some(1)).unwrap().is_empty());
    }

    #[test]
    fn registered_without_tokens_then_again_with() {
        let (_d, s) = store();
        let now = Utc::now();
        let v = s
            .register_visitor(&visitor(1), "g-1", None, now, &mut || "44444".into())
            .unwrap();
        assert_eq!(v.token_id, None);
        assert!(s.tokens_by_code("44444", None).unwrap().is_empty());
        let again = s
            .register_visitor(&visitor(1), "g-2", SETTINGS, now, &mut || "55555".into())
            .unwrap();
        assert!(again.token_id.is_some());
        assert!(s.delete_visitor("g-2", Utc::now()).unwrap());
        assert!(
            s.tokens_by_code("55555", None).unwrap().is_empty(),
            "deleting the visitor deletes the token"
        );
        assert!(!s.delete_visitor("g-2", Utc::now()).unwrap());
    }

    #[test]
    fn concurrent_customers_racing_for_one_pin_one_wins() {
        let (_d, s) = store();
        let s = Arc::new(s);
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let c = NewCustomer {
                        business_id: 1,
                        name: format!("c{i}"),
                        email: None,
                    };
                    s.create_customer(&c, Some("77777"), 1440, Utc::now(), &mut || unreachable!())
                        .is_ok()
                })
            })
            .collect();
        let wins = handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(wins, 1);
    }
}
