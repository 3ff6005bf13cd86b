//! `visitor ...` and `customer ...`: the behaviour of the platform's help pages (seeds
//! 000, 001 and 002) on top of access tokens.

use super::tokens::parse_time;
use super::{CommandError, Field, FieldError, time_text};
use crate::config::{CustomerSettings, VisitorSettings};
use crate::model::{Customer, NewCustomer, NewVisitor, Visitor};
use crate::policy::pin::{is_valid_pin, new_guid, random_pin};
use crate::store::{Store, StoreError, VisitorTokenSettings};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::fmt::Write as _;

fn bad(field: Field, value: &str, message: &str) -> FieldError {
    FieldError {
        field,
        value: Some(value.to_string()),
        message: message.into(),
    }
}

fn invalid(errors: Vec<FieldError>) -> CommandError {
    CommandError::Invalid(errors)
}

/// Positive whole number (business ids, customer ids).
fn id_field(field: Field, v: &str) -> Result<i64, FieldError> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(bad(field, v, "is not a whole number of 1 or more")),
    }
}

pub fn parse_id(field: Field, v: &str) -> Result<i64, CommandError> {
    id_field(field, v).map_err(|e| invalid(vec![e]))
}

fn name(v: &str) -> Result<String, FieldError> {
    let t = v.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(bad(Field::Name, v, "must be 1 to 200 printable characters"));
    }
    Ok(t.to_string())
}

fn email(v: &str) -> Result<String, FieldError> {
    let t = v.trim();
    let ok = t.len() <= 254
        && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        && t.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        });
    if ok {
        Ok(t.to_string())
    } else {
        Err(bad(Field::Email, v, "is not an email address"))
    }
}

/// A PIN set by an admin: it is used for Wi-Fi, so it must be 5 digits (seed 002).
pub fn pin(v: &str) -> Result<String, CommandError> {
    if is_valid_pin(v) {
        Ok(v.to_string())
    } else {
        // Not echoed: a PIN is a credential, and a wrong one is usually a typo of a real one.
        Err(invalid(vec![FieldError {
            field: Field::Pin,
            value: None,
            message: "must be exactly 5 digits (0-9)".into(),
        }]))
    }
}

pub struct VisitorInput {
    pub business_id: String,
    pub name: String,
    pub email: Option<String>,
    pub expected_arrival: Option<String>,
}

/// Registers a visitor with a random unique PIN; with `generate_access_tokens` on,
/// also the visitor's access token (code = PIN, `default_minutes`, `max_devices`).
pub fn register_visitor(
    store: &Store,
    settings: &VisitorSettings,
    input: &VisitorInput,
    now: DateTime<Utc>,
) -> Result<Visitor, CommandError> {
    let mut errors = Vec::new();
    let business_id = id_field(Field::BusinessId, &input.business_id).map_err(|e| errors.push(e));
    let name = name(&input.name).map_err(|e| errors.push(e));
    let email = input
        .email
        .as_deref()
        .map(email)
        .transpose()
        .map_err(|e| errors.push(e));
    let expected = input
        .expected_arrival
        .as_deref()
        .map(|t| parse_time(Field::ExpectedArrival, t))
        .transpose()
        .map_err(|e| errors.push(e));
    let (Ok(business_id), Ok(name), Ok(email), Ok(expected_arrival)) =
        (business_id, name, email, expected)
    else {
        return Err(invalid(errors));
    };
    let visitor = NewVisitor {
        business_id,
        name,
        email,
        expected_arrival,
    };
    let token = settings
        .generate_access_tokens
        .then_some(VisitorTokenSettings {
            minutes: settings.default_minutes as u32,
            max_devices: settings.max_devices as u32,
        });
    let expected_arrival = visitor.expected_arrival;
    let registered = store.register_visitor(&visitor, &new_guid(), token, now, &mut random_pin)?;
    // `window_starts = "expected_arrival"`: the window runs from the expected arrival.
    match (settings.window_starts, expected_arrival) {
        (crate::config::WindowStart::ExpectedArrival, Some(at)) => {
            store.check_in_visitor(&registered.guid, at)?;
            Ok(store.visitor(&registered.guid)?.unwrap_or(registered))
        }
        _ => Ok(registered),
    }
}

pub fn render_registered(v: &Visitor, json: bool) -> String {
    if json {
        return json!({ "guid": v.guid, "pin": v.pin }).to_string() + "\n";
    }
    let mut out = format!("{} {}\n", v.guid, v.pin);
    if v.token_id.is_none() {
        out.push_str("note: [visitors] generate_access_tokens = false, so this PIN does not open the Wi-Fi\n");
    }
    out
}

fn guid_arg(v: &str) -> String {
    v.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_ascii_lowercase()
}

fn find_visitor(store: &Store, guid: &str) -> Result<Visitor, CommandError> {
    store.visitor(&guid_arg(guid))?.ok_or_else(|| {
        CommandError::Store(StoreError::NotFound {
            what: "visitor",
            id: guid.into(),
        })
    })
}

/// The visitor `guid` names, refused when they came from the platform, unless `force`.
fn editable_visitor(store: &Store, guid: &str, force: bool) -> Result<Visitor, CommandError> {
    let v = find_visitor(store, guid)?;
    super::local_person(
        store,
        "visitors",
        &v.guid,
        format!("visitor {}", v.guid),
        force,
    )?;
    Ok(v)
}

pub fn check_in(
    store: &Store,
    guid: &str,
    at: Option<&str>,
    force: bool,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    let at = at
        .map(|t| parse_time(Field::At, t))
        .transpose()
        .map_err(|e| invalid(vec![e]))?
        .unwrap_or(now);
    let v = editable_visitor(store, guid, force)?;
    let previous = store.check_in_visitor(&v.guid, at)?;
    Ok(match previous {
        Some(p) => format!(
            "visitor {} checked in at {} (was {})\n",
            v.guid,
            time_text(Some(at)),
            time_text(Some(p))
        ),
        None => format!("visitor {} checked in at {}\n", v.guid, time_text(Some(at))),
    })
}

fn visitor_json(v: &Visitor) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

pub fn list_visitors(
    store: &Store,
    business_id: Option<i64>,
    json: bool,
) -> Result<String, CommandError> {
    let visitors = store.list_visitors(business_id)?;
    if json {
        let v: Vec<_> = visitors.iter().map(visitor_json).collect();
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut out = format!(
        "{:<36} {:>8} {:<5} {:<20} {:<20} {:<24}\n",
        "GUID", "BUSINESS", "PIN", "ARRIVED", "EXPECTED", "NAME"
    );
    for v in &visitors {
        let _ = writeln!(
            out,
            "{:<36} {:>8} {:<5} {:<20} {:<20} {:<24}",
            v.guid,
            v.business_id,
            v.pin,
            time_text(v.arrived_at),
            time_text(v.expected_arrival),
            v.name
        );
    }
    Ok(out)
}

pub fn show_visitor(store: &Store, guid: &str, json: bool) -> Result<String, CommandError> {
    let v = find_visitor(store, guid)?;
    if json {
        return Ok(serde_json::to_string_pretty(&visitor_json(&v)).unwrap_or_default() + "\n");
    }
    let mut out = String::new();
    let _ = writeln!(out, "guid:             {}", v.guid);
    let _ = writeln!(out, "business_id:      {}", v.business_id);
    let _ = writeln!(out, "name:             {}", v.name);
    let _ = writeln!(
        out,
        "email:            {}",
        v.email.as_deref().unwrap_or("-")
    );
    let _ = writeln!(out, "pin:              {}", v.pin);
    let _ = writeln!(out, "expected_arrival: {}", time_text(v.expected_arrival));
    let _ = writeln!(out, "arrived_at:       {}", time_text(v.arrived_at));
    let _ = writeln!(
        out,
        "token:            {}",
        v.token_id.map_or(
            "- (registered while generate_access_tokens = false)".into(),
            |t| t.to_string()
        )
    );
    Ok(out)
}

pub fn delete_visitor(
    store: &Store,
    guid: &str,
    force: bool,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    let v = editable_visitor(store, guid, force)?;
    store.delete_visitor(&v.guid, now)?;
    Ok(format!("deleted visitor {} and its access token\n", v.guid))
}

pub struct CustomerInput {
    pub business_id: String,
    pub name: String,
    pub email: Option<String>,
    pub pin: Option<String>,
}

/// Creates a customer with the given PIN (5 digits, unique) or a random unique one.
pub fn create_customer(
    store: &Store,
    settings: &CustomerSettings,
    input: &CustomerInput,
    now: DateTime<Utc>,
) -> Result<Customer, CommandError> {
    let mut errors = Vec::new();
    let business_id = id_field(Field::BusinessId, &input.business_id).map_err(|e| errors.push(e));
    let name = name(&input.name).map_err(|e| errors.push(e));
    let email = input
        .email
        .as_deref()
        .map(email)
        .transpose()
        .map_err(|e| errors.push(e));
    let pin = input.pin.as_deref().map(pin).transpose().map_err(|e| {
        if let CommandError::Invalid(mut v) = e {
            errors.append(&mut v)
        }
    });
    let (Ok(business_id), Ok(name), Ok(email), Ok(pin)) = (business_id, name, email, pin) else {
        return Err(invalid(errors));
    };
    let customer = NewCustomer {
        business_id,
        name,
        email,
    };
    Ok(store.create_customer(
        &customer,
        pin.as_deref(),
        settings.session_minutes as u32,
        now,
        &mut random_pin,
    )?)
}

pub fn render_created(c: &Customer, json: bool) -> String {
    if json {
        json!({ "id": c.id, "pin": c.pin }).to_string() + "\n"
    } else {
        format!("{} {}\n", c.id, c.pin)
    }
}

/// The customer id `id` names, refused when they came from the platform, unless
/// `force`.
fn editable_customer(store: &Store, id: &str, force: bool) -> Result<i64, CommandError> {
    let id = parse_id(Field::CustomerId, id)?;
    super::local_person(
        store,
        "coworkers",
        &id.to_string(),
        format!("customer {id}"),
        force,
    )?;
    Ok(id)
}

pub fn set_pin(
    store: &Store,
    id: &str,
    new_pin: &str,
    force: bool,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    let id = editable_customer(store, id, force)?;
    let new_pin = pin(new_pin)?;
    let c = store.set_customer_pin(id, &new_pin, now)?;
    Ok(format!(
        "customer {} has a new PIN; the old one no longer works\n",
        c.id
    ))
}

pub fn set_active(
    store: &Store,
    id: &str,
    active: bool,
    force: bool,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    let id = editable_customer(store, id, force)?;
    let changed = store.set_customer_active(id, active, now)?;
    let state = if active { "active" } else { "deactivated" };
    Ok(if changed {
        format!("customer {id} is now {state}\n")
    } else {
        format!("customer {id} was already {state}\n")
    })
}

fn customer_json(c: &Customer) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or_default()
}

pub fn list_customers(
    store: &Store,
    business_id: Option<i64>,
    json: bool,
) -> Result<String, CommandError> {
    let customers = store.list_customers(business_id)?;
    if json {
        let v: Vec<_> = customers.iter().map(customer_json).collect();
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut out = format!(
        "{:>6} {:>8} {:<5} {:<11} {:<28} {:<24}\n",
        "ID", "BUSINESS", "PIN", "STATUS", "EMAIL", "NAME"
    );
    for c in &customers {
        let _ = writeln!(
            out,
            "{:>6} {:>8} {:<5} {:<11} {:<28} {:<24}",
            c.id,
            c.business_id,
            c.pin,
            if c.active { "active" } else { "deactivated" },
            c.email.as_deref().unwrap_or("-"),
            c.name
        );
    }
    Ok(out)
}

/// Name, email and PIN of each customer: what a reminder message needs (seed 002,
/// "Send PIN Reminder"). All ids are checked before anything is printed.
pub fn pin_reminder(store: &Store, ids: &[String], json: bool) -> Result<String, CommandError> {
    let mut customers = Vec::with_capacity(ids.len());
    for id in ids {
        let n = parse_id(Field::CustomerId, id)?;
        customers.push(store.customer(n)?.ok_or_else(|| {
            CommandError::Store(StoreError::NotFound {
                what: "customer",
                id: id.clone(),
            })
        })?);
    }
    if json {
        let v: Vec<_> = customers
            .iter()
            .map(|c| json!({ "id": c.id, "name": c.name, "email": c.email, "pin": c.pin }))
            .collect();
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut out = String::new();
    for c in &customers {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}",
            c.id,
            c.name,
            c.email.as_deref().unwrap_or("-"),
            c.pin
        );
    }
    Ok(out)
}
