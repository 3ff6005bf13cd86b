//! `session list`, `session close` and `session unmatched`.

use super::people::parse_id;
use super::{CommandError, Field, time_text};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;

pub fn list(store: &Store, open_only: bool, json: bool) -> Result<String, CommandError> {
    let sessions = store.list_sessions(open_only)?;
    if json {
        return Ok(serde_json::to_string_pretty(&sessions).unwrap_or_default() + "\n");
    }
    let mut out = format!(
        "{:>6} {:>6} {:<16} {:<20} {:<17} {:>8} {:<20} {:<20} {:<11}\n",
        "ID",
        "TOKEN",
        "CLIENT",
        "ACCT-SESSION-ID",
        "DEVICE",
        "SECONDS",
        "STARTED",
        "STOPPED",
        "CLOSED BY"
    );
    for s in &sessions {
        let _ = writeln!(
            out,
            "{:>6} {:>6} {:<16} {:<20} {:<17} {:>8} {:<20} {:<20} {:<11}",
            s.id,
            s.token_id,
            s.client,
            s.acct_session_id,
            s.mac.as_deref().unwrap_or("-"),
            s.session_time,
            time_text(Some(s.started_at)),
            time_text(s.stopped_at),
            s.closed_by.as_deref().unwrap_or(if s.stopped_at.is_none() {
                "(open)"
            } else {
                "-"
            }),
        );
    }
    Ok(out)
}

/// Closes an open session in the ledger (its place in the simultaneous-use count is
/// freed; its used time stays what the NAS reported).
pub fn close(store: &Store, id: &str, now: DateTime<Utc>) -> Result<String, CommandError> {
    let id = parse_id(Field::SessionId, id)?;
    if store.close_session(id, now, "admin")? {
        Ok(format!("session {id} closed\n"))
    } else if store.list_sessions(false)?.iter().any(|s| s.id == id) {
        Ok(format!("session {id} was already closed\n"))
    } else {
        Err(CommandError::Store(StoreError::NotFound {
            what: "session",
            id: id.to_string(),
        }))
    }
}

/// The newest `limit` unmatched accounting records.
pub fn unmatched(store: &Store, limit: usize, json: bool) -> Result<String, CommandError> {
    let rows = store.list_unmatched(limit)?;
    if json {
        return Ok(serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n");
    }
    let mut out = format!(
        "{:>6} {:<20} {:<16} {:<16} {:<20} {:>8}  {}\n",
        "ID", "RECEIVED", "CLIENT", "STATUS", "ACCT-SESSION-ID", "SECONDS", "REASON"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:>6} {:<20} {:<16} {:<16} {:<20} {:>8}  {}",
            r.id,
            time_text(Some(r.received_at)),
            r.client,
            r.status,
            crate::model::LogSafe(r.acct_session_id.as_deref().unwrap_or("-")).to_string(),
            r.session_time.map_or("-".to_string(), |t| t.to_string()),
            r.reason
        );
    }
    Ok(out)
}
