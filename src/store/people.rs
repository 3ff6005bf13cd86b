//! Visitors and customers. Every write that creates or changes a PIN checks the code
//! against tokens, visitors and customers of the business inside its own write
//! transaction (SPEC 1: one code, one owner), which excludes every other writer, on
//! every server sharing the database: two admin commands racing for one code cannot
//! both succeed.

use super::sql::{Db, DbError, Row};
use super::tokens::{code_owner, ensure_code_free, insert_token};
use super::{Store, StoreError, from_ms, ms};
use crate::model::{Customer, NewAccessToken, NewCustomer, NewVisitor, Visitor};
use chrono::{DateTime, Utc};

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

fn read_visitor(r: &Row) -> Result<Visitor, DbError> {
    Ok(Visitor {
        id: r.get(0)?,
        guid: r.get(1)?,
        business_id: r.get(2)?,
        name: r.get(3)?,
        email: r.get(4)?,
        expected_arrival: r.get::<Option<i64>>(5)?.map(from_ms),
        arrived_at: r.get::<Option<i64>>(6)?.map(from_ms),
        pin: r.get(7)?,
        created_at: from_ms(r.get(8)?),
        token_id: r.get(9)?,
    })
}

const CUSTOMER_COLUMNS: &str = "c.id, c.business_id, c.name, c.email, c.pin, c.active, c.created_at, \
     (SELECT t.id FROM access_tokens t WHERE t.customer_id = c.id)";

fn read_customer(r: &Row) -> Result<Customer, DbError> {
    Ok(Customer {
        id: r.get(0)?,
        business_id: r.get(1)?,
        name: r.get(2)?,
        email: r.get(3)?,
        pin: r.get(4)?,
        active: r.get(5)?,
        created_at: from_ms(r.get(6)?),
        token_id: r.get::<Option<i64>>(7)?.unwrap_or(0),
    })
}

/// Whether `code` is one of the 100,000 five-digit PINs.
fn is_pin(code: &str) -> bool {
    code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit())
}

/// Draws PINs until one is free in the business. Past [`PIN_DRAWS`] collisions the
/// space is nearly full, and the error says how full instead of looping on.
fn draw_pin(
    db: &mut dyn Db,
    business_id: i64,
    draw: &mut dyn FnMut() -> String,
) -> Result<String, StoreError> {
    for _ in 0..PIN_DRAWS {
        let pin = draw();
        if code_owner(db, business_id, &pin)?.is_none() {
            return Ok(pin);
        }
    }
    // Counted here rather than in SQL (PostgreSQL has no GLOB): this path is rare and
    // reads one business's codes once.
    let codes = db.query(
        "SELECT access_code FROM access_tokens WHERE business_id = $1 \
         UNION SELECT pin FROM visitors WHERE business_id = $1 \
         UNION SELECT pin FROM customers WHERE business_id = $1",
        &[&business_id],
    )?;
    let mut used = 0;
    for row in &codes {
        if is_pin(&row.get::<String>(0)?) {
            used += 1;
        }
    }
    Err(StoreError::PinSpaceFull { business_id, used })
}

pub(super) fn visitor_by_guid(db: &mut dyn Db, guid: &str) -> Result<Option<Visitor>, DbError> {
    db.query_opt(
        &format!("SELECT {VISITOR_COLUMNS} FROM visitors v WHERE v.guid = $1"),
        &[&guid],
    )?
    .as_ref()
    .map(read_visitor)
    .transpose()
}

pub(super) fn customer_by_id(db: &mut dyn Db, id: i64) -> Result<Option<Customer>, DbError> {
    db.query_opt(
        &format!("SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.id = $1"),
        &[&id],
    )?
    .as_ref()
    .map(read_customer)
    .transpose()
}

impl Store {
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
        self.write(|db| {
            let pin = draw_pin(db, visitor.business_id, draw)?;
            db.execute(
                "INSERT INTO visitors (guid, business_id, name, email, expected_arrival, pin, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &guid,
                    &visitor.business_id,
                    &visitor.name,
                    &visitor.email,
                    &visitor.expected_arrival.map(ms),
                    &pin,
                    &ms(now),
                ],
            )?;
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
                insert_token(db, &t, None, now)?;
            }
            visitor_by_guid(db, guid)?.ok_or_else(|| StoreError::NotFound {
                what: "visitor",
                id: guid.into(),
            })
        })
    }

    pub fn visitor(&self, guid: &str) -> Result<Option<Visitor>, StoreError> {
        self.with_db(|db| Ok(visitor_by_guid(db, guid)?))
    }

    pub fn list_visitors(&self, business_id: Option<i64>) -> Result<Vec<Visitor>, StoreError> {
        self.with_db(|db| {
            let sql = format!(
                "SELECT {VISITOR_COLUMNS} FROM visitors v \
                 WHERE (CAST($1 AS BIGINT) IS NULL OR v.business_id = $1) ORDER BY v.id"
            );
            let rows = db.query(&sql, &[&business_id])?;
            Ok(rows.iter().map(read_visitor).collect::<Result<_, _>>()?)
        })
    }

    /// Records the visitor's arrival (admin check-in); returns the previous one.
    pub fn check_in_visitor(
        &self,
        guid: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.write(|db| {
            let v = visitor_by_guid(db, guid)?.ok_or_else(|| StoreError::NotFound {
                what: "visitor",
                id: guid.into(),
            })?;
            db.execute(
                "UPDATE visitors SET arrived_at = $2 WHERE id = $1",
                &[&v.id, &ms(at)],
            )?;
            Ok(v.arrived_at)
        })
    }

    /// Deletes a visitor and the visitor's tokens (they stop working at once).
    /// Returns false when there was no such visitor.
    pub fn delete_visitor(&self, guid: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(|db| {
            let Some(v) = visitor_by_guid(db, guid)? else {
                return Ok(false);
            };
            let tokens = db.query(
                "SELECT id FROM access_tokens WHERE visitor_guid = $1 AND business_id = $2",
                &[&v.guid, &v.business_id],
            )?;
            for token in &tokens {
                super::disconnects::queue_for_token(db, token.get(0)?, "deleted", now)?;
            }
            db.execute(
                "DELETE FROM access_tokens WHERE visitor_guid = $1 AND business_id = $2",
                &[&v.guid, &v.business_id],
            )?;
            db.execute("DELETE FROM visitors WHERE id = $1", &[&v.id])?;
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
        self.write(|db| {
            let pin = match pin {
                Some(p) => {
                    ensure_code_free(db, customer.business_id, p)?;
                    p.to_string()
                }
                None => draw_pin(db, customer.business_id, draw)?,
            };
            let id: i64 = db
                .query_one(
                    "INSERT INTO customers (business_id, name, email, pin, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[
                        &customer.business_id,
                        &customer.name,
                        &customer.email,
                        &pin,
                        &ms(now),
                    ],
                )?
                .get(0)?;
            let t = NewAccessToken {
                business_id: customer.business_id,
                access_code: pin,
                minutes_included: session_minutes,
                description: Some(format!("Customer {}", customer.name)),
                ..Default::default()
            };
            insert_token(db, &t, Some(id), now)?;
            customer_by_id(db, id)?.ok_or_else(|| StoreError::NotFound {
                what: "customer",
                id: id.to_string(),
            })
        })
    }

    pub fn customer(&self, id: i64) -> Result<Option<Customer>, StoreError> {
        self.with_db(|db| Ok(customer_by_id(db, id)?))
    }

    pub fn list_customers(&self, business_id: Option<i64>) -> Result<Vec<Customer>, StoreError> {
        self.with_db(|db| {
            let sql = format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers c \
                 WHERE (CAST($1 AS BIGINT) IS NULL OR c.business_id = $1) ORDER BY c.id"
            );
            let rows = db.query(&sql, &[&business_id])?;
            Ok(rows.iter().map(read_customer).collect::<Result<_, _>>()?)
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
        let not_found = || StoreError::NotFound {
            what: "customer",
            id: id.to_string(),
        };
        self.write(|db| {
            let c = customer_by_id(db, id)?.ok_or_else(not_found)?;
            if c.pin != pin {
                ensure_code_free(db, c.business_id, pin)?;
                db.execute("UPDATE customers SET pin = $2 WHERE id = $1", &[&id, &pin])?;
                db.execute(
                    "UPDATE access_tokens SET access_code = $2 WHERE customer_id = $1",
                    &[&id, &pin],
                )?;
                // Sessions logged in with the old PIN end with it.
                queue_customer_disconnects(db, id, "pin_changed", now)?;
            }
            customer_by_id(db, id)?.ok_or_else(not_found)
        })
    }

    /// Activates or deactivates a customer; returns false when nothing changed.
    pub fn set_customer_active(
        &self,
        id: i64,
        active: bool,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write(|db| {
            let c = customer_by_id(db, id)?.ok_or_else(|| StoreError::NotFound {
                what: "customer",
                id: id.to_string(),
            })?;
            if c.active == active {
                return Ok(false);
            }
            db.execute(
                "UPDATE customers SET active = $2 WHERE id = $1",
                &[&id, &active],
            )?;
            if !active {
                queue_customer_disconnects(db, id, "deactivated", now)?;
            }
            Ok(true)
        })
    }
}

/// Queues disconnects for the open sessions of a customer's token.
pub(super) fn queue_customer_disconnects(
    db: &mut dyn Db,
    customer_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let token = db.query_opt(
        "SELECT id FROM access_tokens WHERE customer_id = $1",
        &[&customer_id],
    )?;
    if let Some(token) = token {
        super::disconnects::queue_for_token(db, token.get(0)?, reason, now)?;
    }
    Ok(())
}

/// Checks a visitor in at `now` (their first accepted Wi-Fi login, through the login
/// writer) unless an arrival is recorded; returns the arrival that stands, so a racing
/// second login uses the first one's.
pub(super) fn check_in(
    db: &mut dyn Db,
    visitor_id: i64,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, DbError> {
    db.execute(
        "UPDATE visitors SET arrived_at = $2 WHERE id = $1 AND arrived_at IS NULL",
        &[&visitor_id, &ms(now)],
    )?;
    let arrived = match db.query_opt(
        "SELECT arrived_at FROM visitors WHERE id = $1",
        &[&visitor_id],
    )? {
        Some(row) => row.get::<Option<i64>>(0)?,
        None => None,
    };
    Ok(arrived.map(from_ms).unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_each_backend;

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
        on_each_backend(|s| {
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
        });
    }

    #[test]
    fn pin_space_counts_only_five_digit_codes_once() {
        on_each_backend(|s| {
            let now = Utc::now();
            s.register_visitor(&visitor(1), "g-1", SETTINGS, now, &mut || "11111".into())
                .unwrap();
            for code in ["22222", "abcde", "123456", "1234"] {
                s.create_token(&crate::store::testing::new(code), now)
                    .unwrap();
            }
            // Another business's PINs are not this one's.
            s.register_visitor(&visitor(2), "g-2", None, now, &mut || "33333".into())
                .unwrap();
            let e = s
                .register_visitor(&visitor(1), "g-3", None, now, &mut || "22222".into())
                .unwrap_err();
            assert!(
                matches!(
                    e,
                    StoreError::PinSpaceFull {
                        business_id: 1,
                        used: 2
                    }
                ),
                "{}: {e}",
                s.backend()
            );
        });
    }

    #[test]
    fn registered_without_tokens_then_again_with() {
        on_each_backend(|s| {
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
        });
    }

    #[test]
    fn concurrent_customers_racing_for_one_pin_one_wins() {
        on_each_backend(|s| {
            // Each thread on a store of its own: other processes, or other servers.
            let stores: Vec<Store> = (0..8).map(|_| s.another()).collect();
            let results: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = stores
                    .iter()
                    .enumerate()
                    .map(|(i, store)| {
                        scope.spawn(move || {
                            let c = NewCustomer {
                                business_id: 1,
                                name: format!("c{i}"),
                                email: None,
                            };
                            store.create_customer(
                                &c,
                                Some("77777"),
                                1440,
                                Utc::now(),
                                &mut || unreachable!(),
                            )
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let wins = results.iter().filter(|r| r.is_ok()).count();
            // The losers saw the winner's PIN (their check waited for its commit), not
            // a failed insert.
            for r in &results {
                assert!(
                    matches!(r, Ok(_) | Err(StoreError::CodeTaken { .. })),
                    "{}: {r:?}",
                    s.backend()
                );
            }
            assert_eq!(wins, 1, "{}", s.backend());
        });
    }
}
