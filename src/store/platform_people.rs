//! Members (the platform's coworkers) and visitors from the platform, applied as the
//! CLI's commands would: a member's PIN logs in through a token owned by the member;
//! a visitor's PIN is the code of the visitor's token. A PIN change or a deactivation
//! disconnects what it ends; a PIN another owner holds here is a clash.

use super::people::{customer_by_id, queue_customer_disconnects, visitor_by_guid};
use super::platform::{ACCESS_TOKENS, Applied, COWORKERS, VISITORS, link, linked};
use super::sql::{Db, DbError};
use super::tokens::{code_owner, insert_token};
use super::{Store, StoreError, VisitorTokenSettings, ms};
use crate::model::NewAccessToken;
use chrono::{DateTime, Utc};

/// A member as the platform has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformMember {
    pub business_id: i64,
    pub name: String,
    pub email: Option<String>,
    pub pin: String,
    /// `Active`, not `Archived`, and `AllowNetworkCheckin`.
    pub active: bool,
}

/// A visitor as the platform has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformVisitor {
    pub business_id: i64,
    /// The platform's `UniqueId`: what its access tokens' `VisitorGuid` refers to.
    pub guid: String,
    pub name: String,
    pub email: Option<String>,
    pub expected_arrival: Option<DateTime<Utc>>,
    /// When the visitor checked in at the platform.
    pub arrived_at: Option<DateTime<Utc>>,
    pub pin: String,
}

/// A clash when `pin` belongs to someone other than `me` in the business.
fn pin_clash(
    db: &mut dyn Db,
    business_id: i64,
    pin: &str,
    me: &str,
) -> Result<Option<String>, DbError> {
    Ok(code_owner(db, business_id, pin)?.filter(|owner| owner != me))
}

/// Removes or ends the local record of a platform record gone from the platform;
/// true when anything changed.
pub(super) fn remove_local(
    db: &mut dyn Db,
    entity: &str,
    local_id: Option<&str>,
    token_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    match (entity, local_id) {
        (COWORKERS, Some(id)) => {
            let id: i64 = id.parse().unwrap_or(0);
            let deactivated = db.execute(
                "UPDATE customers SET active = 0 WHERE id = $1 AND active = 1",
                &[&id],
            )? == 1;
            if deactivated {
                queue_customer_disconnects(db, id, "deactivated", now)?;
            }
            Ok(deactivated)
        }
        (VISITORS, Some(guid)) => {
            let tokens = db.query(
                "SELECT id FROM access_tokens WHERE visitor_guid = $1",
                &[&guid],
            )?;
            for token in &tokens {
                super::disconnects::queue_for_token(db, token.get(0)?, "deleted", now)?;
            }
            db.execute(
                "DELETE FROM access_tokens WHERE visitor_guid = $1",
                &[&guid],
            )?;
            Ok(db.execute("DELETE FROM visitors WHERE guid = $1", &[&guid])? > 0)
        }
        (ACCESS_TOKENS, _) => match token_id {
            Some(id) => {
                super::disconnects::queue_for_token(db, id, "deleted", now)?;
                Ok(db.execute("DELETE FROM access_tokens WHERE id = $1", &[&id])? > 0)
            }
            None => Ok(true),
        },
        _ => Ok(false),
    }
}

impl Store {
    /// Creates or updates the local member of the platform's coworker `platform_id`
    /// (with the token their PIN logs in through), in one transaction.
    pub fn apply_platform_member(
        &self,
        platform_id: i64,
        m: &PlatformMember,
        session_minutes: u32,
        updated_on: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        self.write(|db| {
            let existing = match linked(db, COWORKERS, platform_id)? {
                Some((Some(id), _)) => customer_by_id(db, id.parse().unwrap_or(0))?,
                _ => None,
            };
            let Some(c) = existing else {
                if let Some(owner) = code_owner(db, m.business_id, &m.pin)? {
                    return Ok(Applied::Clash { owner });
                }
                let id: i64 = db
                    .query_one(
                        "INSERT INTO customers (business_id, name, email, pin, active, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                        &[
                            &m.business_id,
                            &m.name,
                            &m.email,
                            &m.pin,
                            &m.active,
                            &ms(now),
                        ],
                    )?
                    .get(0)?;
                let token = NewAccessToken {
                    business_id: m.business_id,
                    access_code: m.pin.clone(),
                    minutes_included: session_minutes,
                    description: Some(format!("Customer {}", m.name)),
                    ..Default::default()
                };
                let token_id = insert_token(db, &token, Some(id), now)?;
                link(
                    db,
                    COWORKERS,
                    platform_id,
                    m.business_id,
                    Some(&id.to_string()),
                    Some(token_id),
                    updated_on,
                    now,
                )?;
                return Ok(Applied::Created(token_id));
            };
            let me = format!("customer {}", c.id);
            if (c.pin != m.pin || c.business_id != m.business_id)
                && let Some(owner) = pin_clash(db, m.business_id, &m.pin, &me)?
            {
                return Ok(Applied::Clash { owner });
            }
            let mut changed = false;
            if (c.name.as_str(), c.email.as_deref()) != (m.name.as_str(), m.email.as_deref()) {
                db.execute(
                    "UPDATE customers SET name = $2, email = $3 WHERE id = $1",
                    &[&c.id, &m.name, &m.email],
                )?;
                changed = true;
            }
            if c.business_id != m.business_id {
                // Another home location: the PIN logs in there now, not here.
                db.execute(
                    "UPDATE customers SET business_id = $2 WHERE id = $1",
                    &[&c.id, &m.business_id],
                )?;
                db.execute(
                    "UPDATE access_tokens SET business_id = $2 WHERE customer_id = $1",
                    &[&c.id, &m.business_id],
                )?;
                queue_customer_disconnects(db, c.id, "moved", now)?;
                changed = true;
            }
            if c.pin != m.pin {
                db.execute(
                    "UPDATE customers SET pin = $2 WHERE id = $1",
                    &[&c.id, &m.pin],
                )?;
                db.execute(
                    "UPDATE access_tokens SET access_code = $2 WHERE customer_id = $1",
                    &[&c.id, &m.pin],
                )?;
                // Sessions logged in with the old PIN end with it.
                queue_customer_disconnects(db, c.id, "pin_changed", now)?;
                changed = true;
            }
            if c.active != m.active {
                db.execute(
                    "UPDATE customers SET active = $2 WHERE id = $1",
                    &[&c.id, &m.active],
                )?;
                if !m.active {
                    queue_customer_disconnects(db, c.id, "deactivated", now)?;
                }
                changed = true;
            }
            let token_id = (c.token_id != 0).then_some(c.token_id);
            link(
                db,
                COWORKERS,
                platform_id,
                m.business_id,
                Some(&c.id.to_string()),
                token_id,
                updated_on,
                now,
            )?;
            Ok(if changed {
                Applied::Updated(c.token_id)
            } else {
                Applied::Unchanged(c.token_id)
            })
        })
    }

    /// Creates or updates the local visitor of the platform's visitor `platform_id`
    /// (and, with `token`, the visitor's access token: code = PIN).
    pub fn apply_platform_visitor(
        &self,
        platform_id: i64,
        v: &PlatformVisitor,
        token: Option<VisitorTokenSettings>,
        updated_on: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        self.write(|db| {
            let existing = match linked(db, VISITORS, platform_id)? {
                Some((Some(guid), _)) => visitor_by_guid(db, &guid)?,
                _ => None,
            };
            let Some(old) = existing else {
                if let Some(owner) = code_owner(db, v.business_id, &v.pin)? {
                    return Ok(Applied::Clash { owner });
                }
                db.execute(
                    "INSERT INTO visitors (guid, business_id, name, email, expected_arrival, \
                     arrived_at, pin, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &v.guid,
                        &v.business_id,
                        &v.name,
                        &v.email,
                        &v.expected_arrival.map(ms),
                        &v.arrived_at.map(ms),
                        &v.pin,
                        &ms(now),
                    ],
                )?;
                let token_id = match token {
                    Some(settings) => Some(insert_token(
                        db,
                        &NewAccessToken {
                            business_id: v.business_id,
                            access_code: v.pin.clone(),
                            minutes_included: settings.minutes,
                            description: Some(format!("Visitor {}", v.name)),
                            device_limit: Some(settings.max_devices),
                            visitor_guid: Some(v.guid.clone()),
                            ..Default::default()
                        },
                        None,
                        now,
                    )?),
                    None => None,
                };
                link(
                    db,
                    VISITORS,
                    platform_id,
                    v.business_id,
                    Some(&v.guid),
                    token_id,
                    updated_on,
                    now,
                )?;
                return Ok(Applied::Created(token_id.unwrap_or(0)));
            };
            let me = format!("visitor {}", old.guid);
            if (old.pin != v.pin || old.business_id != v.business_id)
                && let Some(owner) = pin_clash(db, v.business_id, &v.pin, &me)?
            {
                return Ok(Applied::Clash { owner });
            }
            // The platform's check-in wins; a first-login check-in here stays while the
            // platform has none.
            let arrived = v.arrived_at.or(old.arrived_at);
            let same = (
                old.business_id,
                old.name.as_str(),
                old.email.as_deref(),
                old.expected_arrival,
                old.arrived_at,
                old.pin.as_str(),
            ) == (
                v.business_id,
                v.name.as_str(),
                v.email.as_deref(),
                v.expected_arrival,
                arrived,
                v.pin.as_str(),
            );
            if !same {
                db.execute(
                    "UPDATE visitors SET name = $2, email = $3, expected_arrival = $4, \
                     arrived_at = $5, pin = $6, business_id = $7 WHERE id = $1",
                    &[
                        &old.id,
                        &v.name,
                        &v.email,
                        &v.expected_arrival.map(ms),
                        &arrived.map(ms),
                        &v.pin,
                        &v.business_id,
                    ],
                )?;
            }
            if (old.pin != v.pin || old.business_id != v.business_id)
                && let Some(token_id) = old.token_id
            {
                db.execute(
                    "UPDATE access_tokens SET access_code = $2, business_id = $3 \
                     WHERE id = $1",
                    &[&token_id, &v.pin, &v.business_id],
                )?;
                super::disconnects::queue_for_token(db, token_id, "pin_changed", now)?;
            }
            link(
                db,
                VISITORS,
                platform_id,
                v.business_id,
                Some(&old.guid),
                old.token_id,
                updated_on,
                now,
            )?;
            let token_id = old.token_id.unwrap_or(0);
            Ok(if same {
                Applied::Unchanged(token_id)
            } else {
                Applied::Updated(token_id)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewVisitor;
    use crate::store::testing::{new, now, on_each_backend};
    use chrono::Duration;

    #[test]
    fn platform_member_created_changed_clashing_and_deactivated() {
        on_each_backend(|s| {
            let mut m = PlatformMember {
                business_id: 1,
                name: "Ada".into(),
                email: None,
                pin: "24680".into(),
                active: true,
            };
            let apply =
                |m: &PlatformMember| s.apply_platform_member(7, m, 1440, now(), now()).unwrap();
            let Applied::Created(token) = apply(&m) else {
                panic!("{}: not created", s.backend());
            };
            let c = s.list_customers(Some(1)).unwrap().remove(0);
            assert_eq!(
                (c.pin.as_str(), c.token_id, c.active),
                ("24680", token, true)
            );
            assert_eq!(
                s.platform_id_of(COWORKERS, &c.id.to_string()).unwrap(),
                Some(7)
            );
            assert_eq!(apply(&m), Applied::Unchanged(token));

            m.pin = "13579".into();
            m.email = Some("ada@example.org".into());
            assert_eq!(apply(&m), Applied::Updated(token));
            assert_eq!(s.tokens_by_code("13579", Some(1)).unwrap()[0].id, token);
            assert!(s.tokens_by_code("24680", Some(1)).unwrap().is_empty());

            let local = s.create_token(&new("99999"), now()).unwrap();
            let taken = PlatformMember {
                pin: "99999".into(),
                ..m.clone()
            };
            assert_eq!(
                apply(&taken),
                Applied::Clash {
                    owner: format!("token {local}")
                }
            );

            m.business_id = 2;
            assert_eq!(apply(&m), Applied::Updated(token));
            assert_eq!(s.token_by_id(token).unwrap().unwrap().business_id, 2);

            assert!(s.remove_platform_record(COWORKERS, 7, now()).unwrap());
            assert!(
                !s.customer(c.id).unwrap().unwrap().active,
                "{}",
                s.backend()
            );
            assert!(!s.remove_platform_record(COWORKERS, 7, now()).unwrap());
            // The link stays: the member who comes back is the same one, reactivated.
            assert_eq!(
                s.platform_id_of(COWORKERS, &c.id.to_string()).unwrap(),
                Some(7)
            );
            assert_eq!(apply(&m), Applied::Updated(token));
            assert!(s.customer(c.id).unwrap().unwrap().active);
        });
    }

    #[test]
    fn platform_visitor_created_changed_clashing_and_removed() {
        on_each_backend(|s| {
            let settings = Some(VisitorTokenSettings {
                minutes: 60,
                max_devices: 2,
            });
            let mut v = PlatformVisitor {
                business_id: 1,
                guid: "pv-1".into(),
                name: "Bo".into(),
                email: None,
                expected_arrival: Some(now() + Duration::hours(1)),
                arrived_at: None,
                pin: "11223".into(),
            };
            let apply = |v: &PlatformVisitor| {
                s.apply_platform_visitor(8, v, settings, now(), now())
                    .unwrap()
            };
            let Applied::Created(token) = apply(&v) else {
                panic!("{}: not created", s.backend());
            };
            assert_eq!(s.visitor("pv-1").unwrap().unwrap().token_id, Some(token));
            assert_eq!(apply(&v), Applied::Unchanged(token));

            // A check-in here stays while the platform has none; the platform's wins.
            s.check_in_visitor("pv-1", now()).unwrap();
            assert_eq!(apply(&v), Applied::Unchanged(token));
            assert_eq!(s.visitor("pv-1").unwrap().unwrap().arrived_at, Some(now()));
            let arrived = now() + Duration::minutes(3);
            v.arrived_at = Some(arrived);
            v.pin = "33445".into();
            assert_eq!(apply(&v), Applied::Updated(token));
            let local = s.visitor("pv-1").unwrap().unwrap();
            assert_eq!(
                (local.arrived_at, local.pin.as_str()),
                (Some(arrived), "33445")
            );
            assert_eq!(s.token_by_id(token).unwrap().unwrap().access_code, "33445");

            let other = NewVisitor {
                business_id: 1,
                name: "Cy".into(),
                ..Default::default()
            };
            s.register_visitor(&other, "g-local", None, now(), &mut || "66778".into())
                .unwrap();
            let taken = PlatformVisitor {
                pin: "66778".into(),
                ..v.clone()
            };
            assert_eq!(
                apply(&taken),
                Applied::Clash {
                    owner: "visitor g-local".into()
                }
            );

            // Without token settings a visitor has none.
            let tokenless = PlatformVisitor {
                guid: "pv-2".into(),
                pin: "77889".into(),
                ..v.clone()
            };
            assert_eq!(
                s.apply_platform_visitor(9, &tokenless, None, now(), now())
                    .unwrap(),
                Applied::Created(0)
            );

            assert!(s.remove_platform_record(VISITORS, 8, now()).unwrap());
            assert_eq!(s.visitor("pv-1").unwrap(), None, "{}", s.backend());
            assert_eq!(s.token_by_id(token).unwrap(), None);
            assert_eq!(s.platform_id_of(VISITORS, "pv-1").unwrap(), None);
            assert!(!s.remove_platform_record(VISITORS, 8, now()).unwrap());
        });
    }
}
