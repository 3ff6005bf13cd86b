//! `token update`, `token delete`, `token unbind`: edits the platform's API has and
//! the CLI had not. A token that came from the coworking platform is changed there:
//! editing it here is refused with the platform named, unless `force` (the next full
//! sync would put it back anyway).

use super::tokens::{TokenInput, find, parse, parse_mac};
use super::{CommandError, Field};
use crate::model::{AccessToken, mask_code};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};

/// The token `code` names, refused when it came from the platform, unless `force`.
fn editable(
    store: &Store,
    code: &str,
    business_id: Option<i64>,
    force: bool,
) -> Result<AccessToken, CommandError> {
    let token = find(store, code, business_id)?;
    match store.platform_source(token.id)? {
        Some((entity, platform_id)) if !force => Err(CommandError::FromPlatform {
            what: format!("code {}", mask_code(&token.access_code)),
            entity,
            platform_id,
        }),
        _ => Ok(token),
    }
}

/// A member's PIN token is changed through the member; a visitor's token keeps the
/// visitor's PIN as its code (the visitor finds their token by it).
/// The one rule for the CLI and the API: `Some(owner)` when the edit would break a
/// person's PIN token (`moves_code`: the edit changes the code or the business;
/// `None` for a delete, which no member's token may take).
pub fn pin_token_owner(token: &AccessToken, moves_code: Option<bool>) -> Option<String> {
    match (token.customer_id, &token.visitor_guid, moves_code) {
        (Some(customer), ..) => Some(format!("customer {customer}")),
        (None, Some(guid), Some(true)) => Some(format!("visitor {guid}")),
        _ => None,
    }
}

fn pin_token_stays(token: &AccessToken, moves_code: Option<bool>) -> Result<(), CommandError> {
    match pin_token_owner(token, moves_code) {
        Some(owner) => Err(CommandError::PinToken {
            code: mask_code(&token.access_code),
            owner,
        }),
        None => Ok(()),
    }
}

/// The token's fields as text, for an update to overlay.
fn as_input(t: &AccessToken) -> TokenInput {
    let time = |v: Option<DateTime<Utc>>| v.map(|t| t.to_rfc3339());
    TokenInput {
        business_id: Some(t.business_id.to_string()),
        access_code: Some(t.access_code.clone()),
        minutes_included: Some(t.minutes_included.to_string()),
        description: t.description.clone(),
        valid_from: time(t.valid_from),
        valid_to: time(t.valid_to),
        user_limit: t.user_limit.map(|n| n.to_string()),
        device_limit: t.device_limit.map(|n| n.to_string()),
        mac_address: t.mac_address.map(|m| m.to_string()),
        booking_guid: t.booking_guid.clone(),
        visitor_guid: t.visitor_guid.clone(),
    }
}

/// Changes the fields `changes` gives (the others stay), validated as `create`
/// validates; a changed code disconnects the sessions logged in with the old one.
pub fn update(
    store: &Store,
    code: &str,
    business_id: Option<i64>,
    changes: &TokenInput,
    force: bool,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    let token = editable(store, code, business_id, force)?;
    pin_token_stays(
        &token,
        Some(changes.access_code.is_some() || changes.business_id.is_some()),
    )?;
    let mut input = as_input(&token);
    let overlay = |mine: &mut Option<String>, given: &Option<String>| {
        if given.is_some() {
            mine.clone_from(given);
        }
    };
    overlay(&mut input.business_id, &changes.business_id);
    overlay(&mut input.access_code, &changes.access_code);
    overlay(&mut input.minutes_included, &changes.minutes_included);
    overlay(&mut input.description, &changes.description);
    overlay(&mut input.valid_from, &changes.valid_from);
    overlay(&mut input.valid_to, &changes.valid_to);
    overlay(&mut input.user_limit, &changes.user_limit);
    overlay(&mut input.device_limit, &changes.device_limit);
    overlay(&mut input.mac_address, &changes.mac_address);
    overlay(&mut input.booking_guid, &changes.booking_guid);
    overlay(&mut input.visitor_guid, &changes.visitor_guid);
    let new = parse(&input).map_err(CommandError::Invalid)?;
    super::tokens::usable(&new, now).map_err(CommandError::Invalid)?;
    Ok(if store.update_token(token.id, &new, now)? {
        format!("updated token {}", token.id)
    } else {
        format!("token {} unchanged", token.id)
    })
}

/// Deletes a token (its open sessions are disconnected); its code is free again.
pub fn delete(
    store: &Store,
    code: &str,
    business_id: Option<i64>,
    force: bool,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    let token = editable(store, code, business_id, force)?;
    pin_token_stays(&token, None)?;
    store.delete_token(token.id, now)?;
    Ok(format!(
        "deleted token {} ({})",
        token.id,
        mask_code(&token.access_code)
    ))
}

/// Frees a device's place on a token (a phone that changed its MAC address).
pub fn unbind(
    store: &Store,
    code: &str,
    mac: &str,
    business_id: Option<i64>,
) -> Result<String, CommandError> {
    let token = find(store, code, business_id)?;
    let mac = parse_mac(Field::MacAddress, mac).map_err(|e| CommandError::Invalid(vec![e]))?;
    if store.unbind_device(token.id, mac)? {
        Ok(format!("device {mac} unbound from token {}", token.id))
    } else {
        Err(CommandError::Store(StoreError::NotFound {
            what: "binding of device",
            id: format!("{mac} to token {}", token.id),
        }))
    }
}

/// `token revoke`, refused for a token from the platform unless `force`.
pub fn revoke(
    store: &Store,
    code: &str,
    business_id: Option<i64>,
    force: bool,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    editable(store, code, business_id, force)?;
    super::tokens::revoke(store, code, business_id, now)
}
