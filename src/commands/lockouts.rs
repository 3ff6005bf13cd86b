//! `lockout list` and `lockout clear`: the locks of the failure budgets (devices,
//! accounts, NASes, the whole server).

use super::tokens::parse_mac;
use super::{CommandError, Field, time_text};
use crate::model::account_lock_subject;
use crate::store::{LockScope, Store, StoreError};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;

/// Locks active at `active_at` (all records when `None`).
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
        "{:<8} {:<40} {:<20} {:>8} {:<16}\n",
        "SCOPE", "SUBJECT", "LOCKED UNTIL", "LOCKOUTS", "CLIENT"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<8} {:<40} {:<20} {:>8} {:<16}",
            r.scope,
            r.subject,
            time_text(Some(r.locked_until)),
            r.lockouts,
            r.client
        );
    }
    Ok(out)
}

/// Which lock `lockout clear` lifts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clear {
    Device(String),
    /// Every NAS pause last seen through this client.
    Client(String),
    /// One NAS pause, by its subject text.
    Nas(String),
    Account {
        business_id: i64,
        email: String,
    },
    Server,
}

pub fn clear(store: &Store, which: Clear) -> Result<String, CommandError> {
    let (scope, subject, client, what) = match &which {
        Clear::Device(mac) => {
            let mac =
                parse_mac(Field::MacAddress, mac).map_err(|e| CommandError::Invalid(vec![e]))?;
            (
                LockScope::Device,
                Some(mac.to_string()),
                None,
                format!("device {mac}"),
            )
        }
        Clear::Client(name) => (
            LockScope::Client,
            None,
            Some(name.as_str()),
            format!("client {name}"),
        ),
        Clear::Nas(nas) => (
            LockScope::Client,
            Some(nas.clone()),
            None,
            format!("NAS {nas}"),
        ),
        Clear::Account { business_id, email } => (
            LockScope::Account,
            Some(account_lock_subject(*business_id, email)),
            None,
            format!("account {email} in business {business_id}"),
        ),
        Clear::Server => (
            LockScope::Server,
            Some("server".to_string()),
            None,
            "the server".into(),
        ),
    };
    match store.clear_lockouts(scope, subject.as_deref(), client)? {
        0 => Err(CommandError::Store(StoreError::NotFound {
            what: "lock for",
            id: what,
        })),
        n => Ok(format!("{n} lock(s) of {what} cleared\n")),
    }
}
