//! `lockout list` and `lockout clear`.

use super::tokens::parse_mac;
use super::{CommandError, Field, time_text};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;

/// Lockouts active at `active_at` (all records when `None`).
pub fn list(
    store: &Store,
    json: bool,
    active_at: Option<DateTime<Utc>>,
) -> Result<String, CommandError> {
    let rows = store.list_lockouts(active_at)?;
    if json {
        return Ok(serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n");
    }
    let mut out = format!(
        "{:<17} {:<20} {:>8} {:<16}\n",
        "DEVICE", "LOCKED UNTIL", "LOCKOUTS", "CLIENT"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<17} {:<20} {:>8} {:<16}",
            r.mac,
            time_text(Some(r.locked_until)),
            r.lockouts,
            r.client
        );
    }
    Ok(out)
}

pub fn clear(store: &Store, mac: &str) -> Result<String, CommandError> {
    let mac = parse_mac(Field::MacAddress, mac).map_err(|e| CommandError::Invalid(vec![e]))?;
    if store.clear_lockout(mac)? {
        Ok(format!("lockout of {mac} cleared\n"))
    } else {
        Err(CommandError::Store(StoreError::NotFound {
            what: "lockout for device",
            id: mac.to_string(),
        }))
    }
}
