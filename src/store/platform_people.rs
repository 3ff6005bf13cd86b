//! Members (the platform's coworkers) and visitors from the platform, applied as the
//! CLI's commands would: a member's PIN logs in through a token owned by the member;
//! a visitor's PIN is the code of the visitor's token. A PIN change or a deactivation
//! disconnects what it ends; a PIN another owner holds here is a clash.

use super::people::{customer_by_id, queue_customer_disconnects, visitor_by_guid};
use super::platform::{ACCESS_TOKENS, Applied, COWORKERS, VISITORS, link, linked};
use super::tokens::{Fail, code_owner, insert_token};
use super::{Store, StoreError, VisitorTokenSettings, ms};
use crate::model::NewAccessToken;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

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
    tx: &Connection,
    business_id: i64,
    pin: &str,
    me: &str,
) -> Result<Option<String>, Fail> {
    Ok(code_owner(tx, business_id, pin)?.filter(|owner| owner != me))
}

/// Removes or ends the local record of a platform record gone from the platform;
/// true when anything changed.
pub(super) fn remove_local(
    tx: &Connection,
    entity: &str,
    local_id: Option<&str>,
    token_id: Option<i64>,
    now: DateTime<Utc>,
) -> rusqlite::Result<bool> {
    match (entity, local_id) {
        (COWORKERS, Some(id)) => {
            let id: i64 = id.parse().unwrap_or(0);
            let deactivated = tx.execute(
                "UPDATE customers SET active = 0 WHERE id = ?1 AND active = 1",
                params![id],
            )? == 1;
            if deactivated {
                queue_customer_disconnects(tx, id, "deactivated", now)?;
            }
            Ok(deactivated)
        }
        (VISITORS, Some(guid)) => {
            for token in tx
                .prepare_cached("SELECT id FROM access_tokens WHERE visitor_guid = ?1")?
                .query_map(params![guid], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?
            {
                super::disconnects::queue_for_token(tx, token, "deleted", now)?;
            }
            tx.execute(
                "DELETE FROM access_tokens WHERE visitor_guid = ?1",
                params![guid],
            )?;
            Ok(tx.execute("DELETE FROM visitors WHERE guid = ?1", params![guid])? > 0)
        }
        (ACCESS_TOKENS, _) => match token_id {
            Some(id) => {
                super::disconnects::queue_for_token(tx, id, "deleted", now)?;
                Ok(tx.execute("DELETE FROM access_tokens WHERE id = ?1", params![id])? > 0)
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
        self.write(|tx| {
            let existing = match linked(tx, COWORKERS, platform_id)? {
                Some((Some(id), _)) => customer_by_id(tx, id.parse().unwrap_or(0))?,
                _ => None,
            };
            let Some(c) = existing else {
                if let Some(owner) = code_owner(tx, m.business_id, &m.pin)? {
                    return Ok(Applied::Clash { owner });
                }
                tx.prepare_cached(
                    "INSERT INTO customers (business_id, name, email, pin, active, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![m.business_id, m.name, m.email, m.pin, m.active, ms(now)])?;
                let id = tx.last_insert_rowid();
                let token = NewAccessToken {
                    business_id: m.business_id,
                    access_code: m.pin.clone(),
                    minutes_included: session_minutes,
                    description: Some(format!("Customer {}", m.name)),
                    ..Default::default()
                };
                let token_id = insert_token(tx, &token, Some(id), now)?;
                link(tx, COWORKERS, platform_id, m.business_id, Some(&id.to_string()), Some(token_id), updated_on, now)?;
                return Ok(Applied::Created(token_id));
            };
            let me = format!("customer {}", c.id);
            if (c.pin != m.pin || c.business_id != m.business_id)
                && let Some(owner) = pin_clash(tx, m.business_id, &m.pin, &me)?
            {
                return Ok(Applied::Clash { owner });
            }
            let mut changed = false;
            if (c.name.as_str(), c.email.as_deref()) != (m.name.as_str(), m.email.as_deref()) {
                tx.execute("UPDATE customers SET name = ?2, email = ?3 WHERE id = ?1", params![c.id, m.name, m.email])?;
                changed = true;
            }
            if c.business_id != m.business_id {
                // Another home location: the PIN logs in there now, not here.
                tx.execute("UPDATE customers SET business_id = ?2 WHERE id = ?1", params![c.id, m.business_id])?;
                tx.execute(
                    "UPDATE access_tokens SET business_id = ?2 WHERE customer_id = ?1",
                    params![c.id, m.business_id],
                )?;
                queue_customer_disconnects(tx, c.id, "moved", now)?;
                changed = true;
            }
            if c.pin != m.pin {
                tx.execute("UPDATE customers SET pin = ?2 WHERE id = ?1", params![c.id, m.pin])?;
                tx.execute("UPDATE access_tokens SET access_code = ?2 WHERE customer_id = ?1", params![c.id, m.pin])?;
                // Sessions logged in with the old PIN end with it.
                queue_customer_disconnects(tx, c.id, "pin_changed", now)?;
                changed = true;
            }
            if c.active != m.active {
                tx.execute("UPDATE customers SET active = ?2 WHERE id = ?1", params![c.id, m.active])?;
                if !m.active {
                    queue_customer_disconnects(tx, c.id, "deactivated", now)?;
                }
                changed = true;
            }
            let token_id = (c.token_id != 0).then_some(c.token_id);
            link(tx, COWORKERS, platform_id, m.business_id, Some(&c.id.to_string()), token_id, updated_on, now)?;
            Ok(if changed { Applied::Updated(c.token_id) } else { Applied::Unchanged(c.token_id) })
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
        self.write(|tx| {
            let existing = match linked(tx, VISITORS, platform_id)? {
                Some((Some(guid), _)) => visitor_by_guid(tx, &guid)?,
                _ => None,
            };
            let Some(old) = existing else {
                if let Some(owner) = code_owner(tx, v.business_id, &v.pin)? {
                    return Ok(Applied::Clash { owner });
                }
                tx.prepare_cached(
                    "INSERT INTO visitors (guid, business_id, name, email, expected_arrival, arrived_at, pin, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    v.guid,
                    v.business_id,
                    v.name,
                    v.email,
                    v.expected_arrival.map(ms),
                    v.arrived_at.map(ms),
                    v.pin,
                    ms(now)
                ])?;
                let token_id = match token {
                    Some(settings) => Some(insert_token(
                        tx,
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
                link(tx, VISITORS, platform_id, v.business_id, Some(&v.guid), token_id, updated_on, now)?;
                return Ok(Applied::Created(token_id.unwrap_or(0)));
            };
            let me = format!("visitor {}", old.guid);
            if (old.pin != v.pin || old.business_id != v.business_id)
                && let Some(owner) = pin_clash(tx, v.business_id, &v.pin, &me)?
            {
                return Ok(Applied::Clash { owner });
            }
            // The platform's check-in wins; a first-login check-in here stays while the
            // platform has none.
            let arrived = v.arrived_at.or(old.arrived_at);
            let same = (old.business_id, old.name.as_str(), old.email.as_deref(), old.expected_arrival, old.arrived_at, old.pin.as_str())
                == (v.business_id, v.name.as_str(), v.email.as_deref(), v.expected_arrival, arrived, v.pin.as_str());
            if !same {
                tx.execute(
                    "UPDATE visitors SET name = ?2, email = ?3, expected_arrival = ?4, arrived_at = ?5, pin = ?6, business_id = ?7 WHERE id = ?1",
                    params![old.id, v.name, v.email, v.expected_arrival.map(ms), arrived.map(ms), v.pin, v.business_id],
                )?;
            }
            if (old.pin != v.pin || old.business_id != v.business_id)
                && let Some(token_id) = old.token_id
            {
                tx.execute(
                    "UPDATE access_tokens SET access_code = ?2, business_id = ?3 WHERE id = ?1",
                    params![token_id, v.pin, v.business_id],
                )?;
                super::disconnects::queue_for_token(tx, token_id, "pin_changed", now)?;
            }
            link(tx, VISITORS, platform_id, v.business_id, Some(&old.guid), old.token_id, updated_on, now)?;
            let token_id = old.token_id.unwrap_or(0);
            Ok(if same { Applied::Unchanged(token_id) } else { Applied::Updated(token_id) })
        })
    }
}
