//! `sync status`: where the platform sync stands.

use super::{CommandError, time_text};
use crate::store::Store;
use std::fmt::Write as _;

pub fn status(store: &Store, json: bool) -> Result<String, CommandError> {
    let rows = store.sync_status()?;
    if json {
        return Ok(serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n");
    }
    if rows.is_empty() {
        return Ok(
            "no sync has run yet (`pinradius sync run`, or `serve` with [nexudus])\n".into(),
        );
    }
    let mut out = String::new();
    for r in &rows {
        let _ = writeln!(
            out,
            "{}: last success {}, last full {}, cursor {}; applied {}, removed {}, clashes {}",
            r.entity,
            time_text(r.last_success),
            time_text(r.last_full),
            time_text(r.cursor),
            r.applied,
            r.removed,
            r.clashes
        );
        if let Some(e) = &r.last_error {
            let _ = writeln!(out, "  last error at {}: {e}", time_text(r.last_error_at));
        }
    }
    Ok(out)
}
