//! The ledger's rules: which session a record belongs to, what it adds, and where a
//! record goes that belongs to none.
//!
//! A session is the NAS that reports it (`AcctRecord::nas`: its address,
//! NAS-IP-Address, NAS-Identifier) and its Acct-Session-Id: not the MAC (an Interim
//! may carry none), not the client's configured name (a rename changes nothing). A
//! NAS may use an Acct-Session-Id again (counters restart after a reboot), so a record
//! for an id whose last session is closed starts a new session when it began after
//! that close; one that began before it is a late record of that session. When a
//! record began is its arrival less Acct-Delay-Time less its Acct-Session-Time.
//!
//! Each session row holds the *cumulative* time the NAS last reported, and updates
//! only ever raise it (`max`), so a retransmit, a duplicate Stop, an Interim after the
//! Stop, or a counter going backwards never counts time twice.

use super::super::ms;
use super::{AcctOutcome, AcctRecord, AcctStatus, TokenRef};
use rusqlite::{Connection, OptionalExtension, params};

/// Clock and whole-second slack when comparing when a record began with when a
/// session was closed or last updated.
const SLACK_MS: i64 = 1_000;

/// Applies one record. Idempotent: applying it again changes nothing.
pub(in crate::store) fn apply(conn: &Connection, r: &AcctRecord) -> rusqlite::Result<AcctOutcome> {
    if let Some((reason, detail)) = &r.problem {
        return unmatched(conn, r, reason, detail);
    }
    let at = ms(r.at);
    if matches!(
        r.status,
        AcctStatus::AccountingOn | AcctStatus::AccountingOff
    ) {
        // This NAS (re)started or is stopping: none of its sessions survive; other
        // NASes behind the same client keep theirs.
        let n = conn.execute(
            "UPDATE sessions SET stopped_at = ?2, closed_by = 'nas-restart' WHERE nas = ?1 AND stopped_at IS NULL",
            params![r.nas, at],
        )?;
        return Ok(AcctOutcome::NasSessionsClosed(n));
    }
    let token_id = match token_of(conn, r)? {
        Ok(id) => id,
        Err((reason, detail)) => return unmatched(conn, r, reason, &detail),
    };
    let reported = r.session_time.map(i64::from);
    let event = at - i64::from(r.delay) * 1000;
    let began = event - reported.unwrap_or(0) * 1000;
    let latest = conn
        .prepare_cached(
            "SELECT id, updated_at, stopped_at, closed_by, token_id FROM sessions WHERE nas = ?1 AND acct_session_id = ?2 \
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![r.nas, r.acct_session_id], |row| {
            Ok(Latest {
                id: row.get(0)?,
                updated: row.get(1)?,
                stopped: row.get(2)?,
                closed_by: row.get(3)?,
                token: row.get(4)?,
            })
        })
        .optional()?;
    let stop = r.status == AcctStatus::Stop;
    let Some(last) = latest else {
        return insert(conn, r, token_id, reported, at, began);
    };
    match last.stopped {
        // Open, and a Start that began after its last update: the NAS used the id
        // again without a Stop for the first (lost). The first ends where it was.
        None if r.status == AcctStatus::Start && began > last.updated + SLACK_MS => {
            conn.prepare_cached(
                "UPDATE sessions SET stopped_at = updated_at, closed_by = 'replaced' WHERE id = ?1",
            )?
            .execute(params![last.id])?;
            insert(conn, r, token_id, reported, at, began)
        }
        // Open: the same session goes on.
        None => update_live(conn, &last, reported, at, stop, r),
        // Closed, and this record began after the close: a new session.
        Some(stopped) if began >= stopped - SLACK_MS => {
            insert(conn, r, token_id, reported, at, began)
        }
        // Closed only because it went quiet (the NAS was unreachable and reports
        // again): the session is live again.
        Some(_) if last.closed_by.as_deref() == Some("stale") => {
            update_live(conn, &last, reported, at, stop, r)
        }
        // A late or repeated record of a closed session: it may only raise the count.
        Some(_) => {
            conn.prepare_cached(
                "UPDATE sessions SET session_time = max(session_time, COALESCE(?2, session_time)) WHERE id = ?1",
            )?
            .execute(params![last.id, reported])?;
            Ok(AcctOutcome::Recorded {
                session: last.id,
                token: last.token,
            })
        }
    }
}

/// The last session of a NAS's Acct-Session-Id.
struct Latest {
    id: i64,
    /// Last accounting update (ms).
    updated: i64,
    /// When it was closed (ms), if it was.
    stopped: Option<i64>,
    closed_by: Option<String>,
    token: i64,
}

fn update_live(
    conn: &Connection,
    last: &Latest,
    reported: Option<i64>,
    at: i64,
    stop: bool,
    r: &AcctRecord,
) -> rusqlite::Result<AcctOutcome> {
    conn.prepare_cached(
        "UPDATE sessions SET session_time = max(session_time, COALESCE(?2, session_time)), updated_at = max(updated_at, ?3), \
         stopped_at = ?4, closed_by = ?5, framed_ip = COALESCE(?6, framed_ip), nas_address = COALESCE(?7, nas_address), \
         mac = COALESCE(mac, ?8) WHERE id = ?1",
    )?
    .execute(params![
        last.id,
        reported,
        at,
        stop.then_some(at),
        stop.then_some("stop"),
        r.framed_ip,
        r.nas_address,
        r.mac.map(|m| m.to_string()),
    ])?;
    Ok(AcctOutcome::Recorded {
        session: last.id,
        token: last.token,
    })
}

fn insert(
    conn: &Connection,
    r: &AcctRecord,
    token_id: i64,
    reported: Option<i64>,
    at: i64,
    began: i64,
) -> rusqlite::Result<AcctOutcome> {
    let stop = r.status == AcctStatus::Stop;
    conn.prepare_cached(
        "INSERT INTO sessions (token_id, client, nas, acct_session_id, mac, started_at, updated_at, session_time, \
         stopped_at, closed_by, user_name, nas_ip, framed_ip, nas_address) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        token_id,
        r.client,
        r.nas,
        r.acct_session_id,
        r.mac.map(|m| m.to_string()),
        began,
        at,
        reported.unwrap_or(0),
        stop.then_some(at),
        stop.then_some("stop"),
        r.user_name,
        r.nas_ip,
        r.framed_ip,
        r.nas_address,
    ])?;
    Ok(AcctOutcome::Recorded {
        session: conn.last_insert_rowid(),
        token: token_id,
    })
}

/// The token a record charges: the one our Class names, which is trusted over the
/// User-Name (a Class naming a token that no longer exists charges nothing: a new
/// token may have the old one's code); without a Class, the token of the User-Name
/// (a code, or an email with exactly one code). `Err`: why none.
fn token_of(
    conn: &Connection,
    r: &AcctRecord,
) -> rusqlite::Result<Result<i64, (&'static str, String)>> {
    let by_class = match &r.class {
        Some(TokenRef::Uid(uid)) => Some(
            conn.prepare_cached(
                "SELECT id FROM access_tokens WHERE uid = ?1 AND business_id = ?2",
            )?
            .query_row(params![uid, r.business_id], |row| row.get::<_, i64>(0))
            .optional()?,
        ),
        Some(TokenRef::Id(id)) => Some(
            conn.prepare_cached("SELECT id FROM access_tokens WHERE id = ?1 AND business_id = ?2")?
                .query_row(params![id, r.business_id], |row| row.get::<_, i64>(0))
                .optional()?,
        ),
        None => None,
    };
    match (by_class, &r.user_name) {
        (Some(Some(id)), _) => Ok(Ok(id)),
        (Some(None), _) => Ok(Err((
            "deleted_token",
            "the Class names a token that no longer exists".into(),
        ))),
        (None, Some(name)) => {
            let by_code = conn
                .prepare_cached(
                    "SELECT id FROM access_tokens WHERE business_id = ?1 AND access_code = ?2",
                )?
                .query_row(params![r.business_id, name], |row| row.get::<_, i64>(0))
                .optional()?;
            if let Some(id) = by_code {
                return Ok(Ok(id));
            }
            let by_email: Vec<i64> = conn
                .prepare_cached(
                    "SELECT t.id FROM visitors v JOIN access_tokens t ON t.visitor_guid = v.guid \
                       AND t.business_id = v.business_id AND t.access_code = v.pin \
                       WHERE v.business_id = ?1 AND v.email = ?2 COLLATE NOCASE \
                     UNION SELECT t.id FROM customers c JOIN access_tokens t ON t.customer_id = c.id \
                       WHERE c.business_id = ?1 AND c.email = ?2 COLLATE NOCASE LIMIT 2",
                )?
                .query_map(params![r.business_id, name], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(match by_email[..] {
                [id] => Ok(id),
                [] => Err((
                    "unknown_token",
                    "no Class, and no token with this User-Name".into(),
                )),
                _ => Err((
                    "unknown_token",
                    "no Class, and this email has several codes".into(),
                )),
            })
        }
        (None, None) => Ok(Err(("unknown_token", "neither Class nor User-Name".into()))),
    }
}

/// Keeps a record that cannot be tied to a session or a token: acknowledged, so kept.
fn unmatched(
    conn: &Connection,
    r: &AcctRecord,
    reason: &'static str,
    detail: &str,
) -> rusqlite::Result<AcctOutcome> {
    conn.prepare_cached(
        "INSERT INTO unmatched_accounting (received_at, client, nas, status, acct_session_id, user_name, class, mac, \
         session_time, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        ms(r.at),
        r.client,
        r.nas,
        r.status.label(),
        (!r.acct_session_id.is_empty()).then_some(&r.acct_session_id),
        r.user_name,
        r.class.as_ref().map(TokenRef::to_string),
        r.mac.map(|m| m.to_string()),
        r.session_time,
        format!("{reason}: {detail}"),
    ])?;
    Ok(AcctOutcome::Unmatched { reason })
}
