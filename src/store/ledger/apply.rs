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
//! only ever raise it (they keep the larger of the stored and the reported time), so
//! a retransmit, a duplicate Stop, an Interim after the Stop, or a counter going
//! backwards never counts time twice.

use super::super::ms;
use super::super::sql::{Args, Db, DbError};
use super::{AcctOutcome, AcctRecord, AcctStatus, TokenRef};

/// Clock and whole-second slack when comparing when a record began with when a
/// session was closed or last updated.
const SLACK_MS: i64 = 1_000;

/// Applies one record. Idempotent: applying it again changes nothing. With
/// `shared_holds` (servers sharing the database hold simultaneous-use places there),
/// the device's place is given up: its session counts from now on.
pub(in crate::store) fn apply(
    db: &mut dyn Db,
    r: &AcctRecord,
    shared_holds: bool,
) -> Result<AcctOutcome, DbError> {
    let outcome = apply_record(db, r)?;
    if let (true, AcctOutcome::Recorded { token, .. }) = (shared_holds, &outcome) {
        super::super::holds::release(db, *token, r.mac)?;
    }
    Ok(outcome)
}

fn apply_record(db: &mut dyn Db, r: &AcctRecord) -> Result<AcctOutcome, DbError> {
    if let Some((reason, detail)) = &r.problem {
        return unmatched(db, r, reason, detail);
    }
    let at = ms(r.at);
    if matches!(
        r.status,
        AcctStatus::AccountingOn | AcctStatus::AccountingOff
    ) {
        // This NAS (re)started or is stopping: none of its sessions survive; other
        // NASes behind the same client keep theirs.
        let n = db.execute(
            "UPDATE sessions SET stopped_at = $2, closed_by = 'nas-restart' WHERE nas = $1 AND stopped_at IS NULL",
            &[&r.nas, &at],
        )?;
        return Ok(AcctOutcome::NasSessionsClosed(
            usize::try_from(n).unwrap_or(usize::MAX),
        ));
    }
    let token_id = match token_of(db, r)? {
        Ok(id) => id,
        Err((reason, detail)) => return unmatched(db, r, reason, &detail),
    };
    let reported = r.session_time.map(i64::from);
    let event = at - i64::from(r.delay) * 1000;
    let began = event - reported.unwrap_or(0) * 1000;
    let latest = db
        .query_opt(
            "SELECT id, updated_at, stopped_at, closed_by, token_id FROM sessions WHERE nas = $1 AND acct_session_id = $2 \
             ORDER BY id DESC LIMIT 1",
            &[&r.nas, &r.acct_session_id],
        )?
        .map(|row| {
            Ok::<_, DbError>(Latest {
                id: row.get(0)?,
                updated: row.get(1)?,
                stopped: row.get(2)?,
                closed_by: row.get(3)?,
                token: row.get(4)?,
            })
        })
        .transpose()?;
    let stop = r.status == AcctStatus::Stop;
    let Some(last) = latest else {
        return insert(db, r, token_id, reported, at, began);
    };
    match last.stopped {
        // Open, and a Start that began after its last update: the NAS used the id
        // again without a Stop for the first (lost). The first ends where it was.
        None if r.status == AcctStatus::Start && began > last.updated + SLACK_MS => {
            db.execute(
                "UPDATE sessions SET stopped_at = updated_at, closed_by = 'replaced' WHERE id = $1",
                &[&last.id],
            )?;
            insert(db, r, token_id, reported, at, began)
        }
        // Open: the same session goes on.
        None => update_live(db, &last, reported, at, stop, r),
        // Closed, and this record began after the close: a new session.
        Some(stopped) if began >= stopped - SLACK_MS => {
            insert(db, r, token_id, reported, at, began)
        }
        // Closed only because it went quiet (the NAS was unreachable and reports
        // again): the session is live again.
        Some(_) if last.closed_by.as_deref() == Some("stale") => {
            update_live(db, &last, reported, at, stop, r)
        }
        // A late or repeated record of a closed session: it may only raise the count
        // (no time reported: a NULL comparison, so it stays).
        Some(_) => {
            db.execute(
                "UPDATE sessions SET session_time = CASE WHEN $2 > session_time THEN $2 ELSE session_time END \
                 WHERE id = $1",
                &[&last.id, &reported],
            )?;
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

/// Updates an open session (or one live again): its time and last update only ever
/// rise (a NULL `reported` compares as unknown, so the time stays).
fn update_live(
    db: &mut dyn Db,
    last: &Latest,
    reported: Option<i64>,
    at: i64,
    stop: bool,
    r: &AcctRecord,
) -> Result<AcctOutcome, DbError> {
    db.execute(
        "UPDATE sessions SET session_time = CASE WHEN $2 > session_time THEN $2 ELSE session_time END, \
         updated_at = CASE WHEN $3 > updated_at THEN $3 ELSE updated_at END, \
         stopped_at = $4, closed_by = $5, framed_ip = COALESCE($6, framed_ip), nas_address = COALESCE($7, nas_address), \
         mac = COALESCE(mac, $8) WHERE id = $1",
        &[
            &last.id,
            &reported,
            &at,
            &stop.then_some(at),
            &stop.then_some("stop"),
            &r.framed_ip,
            &r.nas_address,
            &r.mac.map(|m| m.to_string()),
        ],
    )?;
    Ok(AcctOutcome::Recorded {
        session: last.id,
        token: last.token,
    })
}

fn insert(
    db: &mut dyn Db,
    r: &AcctRecord,
    token_id: i64,
    reported: Option<i64>,
    at: i64,
    began: i64,
) -> Result<AcctOutcome, DbError> {
    let stop = r.status == AcctStatus::Stop;
    let session = db
        .query_one(
            "INSERT INTO sessions (token_id, client, nas, acct_session_id, mac, started_at, updated_at, session_time, \
             stopped_at, closed_by, user_name, nas_ip, framed_ip, nas_address) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
            &[
                &token_id,
                &r.client,
                &r.nas,
                &r.acct_session_id,
                &r.mac.map(|m| m.to_string()),
                &began,
                &at,
                &reported.unwrap_or(0),
                &stop.then_some(at),
                &stop.then_some("stop"),
                &r.user_name,
                &r.nas_ip,
                &r.framed_ip,
                &r.nas_address,
            ],
        )?
        .get(0)?;
    Ok(AcctOutcome::Recorded {
        session,
        token: token_id,
    })
}

/// The token a record charges: the one our Class names, which is trusted over the
/// User-Name (a Class naming a token that no longer exists charges nothing: a new
/// token may have the old one's code); without a Class, the token of the User-Name
/// (a code, or an email with exactly one code; emails match whatever their case).
/// `Err`: why none.
fn token_of(
    db: &mut dyn Db,
    r: &AcctRecord,
) -> Result<Result<i64, (&'static str, String)>, DbError> {
    let by_class = match &r.class {
        Some(TokenRef::Uid(uid)) => Some(first_id(
            db,
            "SELECT id FROM access_tokens WHERE uid = $1 AND business_id = $2",
            &[uid, &r.business_id],
        )?),
        Some(TokenRef::Id(id)) => Some(first_id(
            db,
            "SELECT id FROM access_tokens WHERE id = $1 AND business_id = $2",
            &[id, &r.business_id],
        )?),
        None => None,
    };
    match (by_class, &r.user_name) {
        (Some(Some(id)), _) => Ok(Ok(id)),
        (Some(None), _) => Ok(Err((
            "deleted_token",
            "the Class names a token that no longer exists".into(),
        ))),
        (None, Some(name)) => {
            let by_code = first_id(
                db,
                "SELECT id FROM access_tokens WHERE business_id = $1 AND access_code = $2",
                &[&r.business_id, name],
            )?;
            if let Some(id) = by_code {
                return Ok(Ok(id));
            }
            let by_email = db
                .query(
                    "SELECT t.id FROM visitors v JOIN access_tokens t ON t.visitor_guid = v.guid \
                       AND t.business_id = v.business_id AND t.access_code = v.pin \
                       WHERE v.business_id = $1 AND lower(v.email) = lower($2) \
                     UNION SELECT t.id FROM customers c JOIN access_tokens t ON t.customer_id = c.id \
                       WHERE c.business_id = $1 AND lower(c.email) = lower($2) LIMIT 2",
                    &[&r.business_id, name],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect::<Result<Vec<i64>, DbError>>()?;
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

/// The id in the first row of a query, if any.
fn first_id(db: &mut dyn Db, sql: &str, args: &Args<'_>) -> Result<Option<i64>, DbError> {
    db.query_opt(sql, args)?.map(|row| row.get(0)).transpose()
}

/// Keeps a record that cannot be tied to a session or a token: acknowledged, so kept.
fn unmatched(
    db: &mut dyn Db,
    r: &AcctRecord,
    reason: &'static str,
    detail: &str,
) -> Result<AcctOutcome, DbError> {
    db.execute(
        "INSERT INTO unmatched_accounting (received_at, client, nas, status, acct_session_id, user_name, class, mac, \
         session_time, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &ms(r.at),
            &r.client,
            &r.nas,
            &r.status.label(),
            &(!r.acct_session_id.is_empty()).then_some(&r.acct_session_id),
            &r.user_name,
            &r.class.as_ref().map(TokenRef::to_string),
            &r.mac.map(|m| m.to_string()),
            &r.session_time,
            &format!("{reason}: {detail}"),
        ],
    )?;
    Ok(AcctOutcome::Unmatched { reason })
}
