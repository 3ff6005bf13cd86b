//! The coworking platform (Nexudus) as a source of codes: an adapter that pulls the
//! platform's records and applies them to the store with the same rules as the CLI
//! and the API (one code, one owner; a change disconnects what it ends).
//!
//! Every `poll_seconds` each entity (access tokens, coworkers as members, visitors)
//! is pulled from a stored cursor (`from_{Entity}_UpdatedOn`, ordered by `UpdatedOn`,
//! every page), and every `full_sync_hours` a full listing also removes here what the
//! platform no longer has (access tokens have no webhook at the platform: the pull is
//! how they arrive; for the others it is the safety net of the webhooks). The platform being down never
//! stops RADIUS: logins go on from the local store, pulls back off and retry, and a
//! warning says how stale the data is.
//!
//! Blocking (ureq): runs on a thread of its own in `serve`, and in `sync run`.

pub mod client;
pub mod records;

use crate::config::{Config, NexudusConfig};
use crate::store::{Applied, Store, SyncPass, VisitorTokenSettings};
use chrono::{DateTime, Utc};
pub use client::{PlatformClient, PlatformError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The platform's entity paths.
pub const ACCESS_TOKENS: &str = "accesstokens";
pub const COWORKERS: &str = "coworkers";
pub const VISITORS: &str = "visitors";

/// An entity as the list filters name it: (path, filter name, business field).
const ENTITIES: [(&str, &str, &str); 3] = [
    (ACCESS_TOKENS, "AccessToken", "BusinessId"),
    (COWORKERS, "Coworker", "InvoicingBusinessId"),
    (VISITORS, "Visitor", "BusinessId"),
];

/// What one pass did to one entity, for `sync run` and the logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub entity: &'static str,
    pub full: bool,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub clashes: usize,
    /// Records refused as malformed (the field is logged).
    pub invalid: usize,
    pub removed: usize,
}

impl std::fmt::Display for PassReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}: {} created, {} updated, {} unchanged, {} removed, {} clash(es), {} invalid",
            self.entity,
            if self.full { " (full)" } else { "" },
            self.created,
            self.updated,
            self.unchanged,
            self.removed,
            self.clashes,
            self.invalid
        )
    }
}

/// Pulls from one platform account into one store.
pub struct Sync {
    pub client: PlatformClient,
    pub store: Arc<Store>,
    pub config: NexudusConfig,
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// A member's token: `[customers] session_minutes`.
    member_minutes: u32,
    /// A visitor's token (`[visitors]`), when tokens are generated for visitors.
    visitor_token: Option<VisitorTokenSettings>,
    /// Where a visitor's window starts (`[visitors] window_starts`).
    window_starts: crate::config::WindowStart,
}

impl Sync {
    /// The sync of `config`'s `[nexudus]`; `None` without one.
    pub fn new(config: &Config, store: Arc<Store>) -> Option<Sync> {
        let nexudus = config.nexudus.as_ref()?;
        Some(Sync {
            client: PlatformClient::new(nexudus),
            store,
            config: nexudus.clone(),
            metrics: None,
            member_minutes: u32::try_from(config.customers.session_minutes).unwrap_or(1440),
            visitor_token: config
                .visitors
                .generate_access_tokens
                .then_some(VisitorTokenSettings {
                    minutes: u32::try_from(config.visitors.default_minutes).unwrap_or(60),
                    max_devices: u32::try_from(config.visitors.max_devices).unwrap_or(1),
                }),
            window_starts: config.visitors.window_starts,
        })
    }

    /// Pulls one entity: changed since its cursor, or all (`full`), which also
    /// removes here what the platform no longer lists. The cursor moves only when the
    /// whole pass succeeded (a failed pass is pulled again).
    pub fn pull(
        &self,
        (entity, filter, business_field): (&'static str, &str, &str),
        full: bool,
        now: DateTime<Utc>,
    ) -> Result<PassReport, PlatformError> {
        let cursor = if full {
            None
        } else {
            self.store.sync_cursor(entity).map_err(|e| self.local(e))?
        };
        let mut report = PassReport {
            entity,
            full,
            ..Default::default()
        };
        let mut newest = cursor;
        // A clash is pulled again on the next pass (its owner here may be gone by then).
        let mut earliest_clash: Option<DateTime<Utc>> = None;
        let mut listed = HashSet::new();
        for &business_id in &self.config.business_ids {
            let by_business = (
                format!("{filter}_{business_field}"),
                business_id.to_string(),
            );
            // Keyset paging: each request asks from the newest UpdatedOn seen so far
            // (a second earlier: re-read records are unchanged), so a record updated
            // while the pass runs cannot shift an unseen one past a page boundary.
            // Page numbers only while a whole page shares one second.
            let mut from = cursor.map(|c| c - chrono::Duration::seconds(1));
            let mut page = 1;
            loop {
                let mut filters = vec![by_business.clone()];
                if let Some(from) = from {
                    filters.push((
                        format!("from_{filter}_UpdatedOn"),
                        records::filter_time(from),
                    ));
                }
                let got = self.client.list(entity, &filters, page)?;
                let mut page_newest = None;
                for record in &got.records {
                    let clashes = report.clashes;
                    let Some((id, updated)) = self.apply(entity, record, now, &mut report)? else {
                        continue;
                    };
                    if report.clashes > clashes {
                        earliest_clash = earliest_clash.min(Some(updated)).or(Some(updated));
                    }
                    listed.insert(id);
                    newest = newest.max(Some(updated));
                    page_newest = page_newest.max(Some(updated));
                }
                if !got.has_next || got.records.is_empty() {
                    break;
                }
                match page_newest.map(|t| t - chrono::Duration::seconds(1)) {
                    Some(next) if from.is_none_or(|f| next > f) => {
                        from = Some(next);
                        page = 1;
                    }
                    _ => page += 1,
                }
            }
        }
        if full {
            // What the listing did not have is read again by Id before it is removed:
            // a listing can miss a record (paging, a page the platform cut short),
            // and only the platform's own "no such record" removes anything here.
            let candidates = self
                .store
                .unlisted_platform_ids(entity, &self.config.business_ids, &listed)
                .map_err(|e| self.local(e))?;
            for id in candidates {
                self.refresh(entity, id, now, &mut report)?;
            }
        }
        if let Some(clash) = earliest_clash {
            newest = newest.min(Some(clash));
        }
        let pass = SyncPass {
            cursor: newest,
            applied: report.created + report.updated,
            clashes: report.clashes,
            removed: report.removed,
            full,
        };
        self.store
            .record_sync(entity, &pass, now)
            .map_err(|e| self.local(e))?;
        self.count(&report);
        Ok(report)
    }

    /// Applies one record of `entity`; its id and `UpdatedOn` when it has them (it
    /// then counts as listed, applied or not).
    pub fn apply(
        &self,
        entity: &str,
        record: &serde_json::Value,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<Option<(i64, DateTime<Utc>)>, PlatformError> {
        let (id, updated) = match records::identity(record) {
            Ok(identity) => identity,
            Err(why) => {
                report.invalid += 1;
                tracing::warn!("platform {entity} record not applied: {why}");
                return Ok(None);
            }
        };
        let applied = match self.apply_record(entity, id, updated, record, now) {
            Ok(Some(applied)) => applied,
            Ok(None) => return Ok(Some((id, updated))),
            Err(Ok(why)) => {
                // Still listed: a record the platform has but this server cannot read
                // is not removed here by a full listing.
                report.invalid += 1;
                tracing::warn!("platform {entity} {id} not applied: {why}");
                return Ok(Some((id, updated)));
            }
            Err(Err(e)) => {
                // One record the store refuses does not stop the others.
                report.invalid += 1;
                tracing::error!(error = %e, "platform {entity} {id} not applied");
                return Ok(Some((id, updated)));
            }
        };
        match applied {
            Applied::Created(_) => report.created += 1,
            Applied::Updated(_) => report.updated += 1,
            Applied::Unchanged(_) => report.unchanged += 1,
            Applied::Clash { owner } => {
                report.clashes += 1;
                tracing::warn!(
                    entity, platform_id = id, %owner,
                    "platform record not applied: its code belongs to {owner} here (one code, one owner)"
                );
            }
        }
        Ok(Some((id, updated)))
    }

    /// Reads and applies one record: `Ok(None)` when it is not for this server (another
    /// business, or no code to log in with); `Err(Ok(why))` when it is malformed.
    fn apply_record(
        &self,
        entity: &str,
        id: i64,
        updated: DateTime<Utc>,
        record: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Option<Applied>, Result<String, crate::store::StoreError>> {
        let ours = |business: i64| self.config.business_ids.contains(&business);
        match entity {
            ACCESS_TOKENS => {
                let token =
                    records::access_token(record, self.config.undated_token_devices).map_err(Ok)?;
                if !ours(token.business_id) {
                    return Ok(None);
                }
                self.store
                    .apply_platform_token(id, &token, updated, now)
                    .map(Some)
                    .map_err(Err)
            }
            COWORKERS => {
                let Some(member) = records::member(record).map_err(Ok)? else {
                    // No PIN (any more): a member linked here stops logging in.
                    self.store
                        .remove_platform_record(COWORKERS, id, now)
                        .map_err(Err)?;
                    return Ok(None);
                };
                if !ours(member.business_id) {
                    return Ok(None);
                }
                if !(member.pin.len() == 5 && member.pin.bytes().all(|b| b.is_ascii_digit())) {
                    tracing::warn!(
                        platform_id = id,
                        "member's PIN is not 5 digits; kept as it is"
                    );
                }
                self.store
                    .apply_platform_member(id, &member, self.member_minutes, updated, now)
                    .map(Some)
                    .map_err(Err)
            }
            VISITORS => {
                let Some(mut visitor) = records::visitor(record).map_err(Ok)? else {
                    // No code (any more): a visitor linked here loses their token.
                    self.store
                        .remove_platform_record(VISITORS, id, now)
                        .map_err(Err)?;
                    return Ok(None);
                };
                // The window's start, as `[visitors] window_starts` says.
                match self.window_starts {
                    crate::config::WindowStart::Arrival => {}
                    crate::config::WindowStart::ExpectedArrival => {
                        visitor.arrived_at = visitor.expected_arrival.or(visitor.arrived_at);
                    }
                    crate::config::WindowStart::FirstLogin => visitor.arrived_at = None,
                }
                if !ours(visitor.business_id) {
                    return Ok(None);
                }
                self.store
                    .apply_platform_visitor(id, &visitor, self.visitor_token, updated, now)
                    .map(Some)
                    .map_err(Err)
            }
            other => Err(Ok(format!("unknown entity {other}"))),
        }
    }

    /// A store failure during a pass, reported like the platform's own.
    fn local(&self, e: crate::store::StoreError) -> PlatformError {
        PlatformError::Unreachable {
            base: "the local database".into(),
            detail: e.to_string(),
        }
    }

    fn count(&self, report: &PassReport) {
        if let Some(m) = &self.metrics {
            for (outcome, n) in [
                ("created", report.created),
                ("updated", report.updated),
                ("unchanged", report.unchanged),
                ("clash", report.clashes),
                ("invalid", report.invalid),
                ("removed", report.removed),
            ] {
                m.platform_records(outcome, n);
            }
        }
    }

    /// One pass over every entity (`full`: full listings). Stops at the first
    /// failure (recorded for `sync status`); entities pulled before it keep their
    /// progress.
    pub fn run_once(
        &self,
        full: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<PassReport>, PlatformError> {
        let mut reports = Vec::new();
        for spec in ENTITIES {
            match self.pull(spec, full, now) {
                Ok(report) => reports.push(report),
                Err(e) => {
                    if let Some(m) = &self.metrics {
                        m.platform_pull(false, now);
                    }
                    let _ = self.store.record_sync_error(spec.0, &e.to_string(), now);
                    return Err(e);
                }
            }
        }
        if let Some(m) = &self.metrics {
            m.platform_pull(true, now);
        }
        Ok(reports)
    }
}

/// Which record a webhook's record asks to be read again: (entity, Id). The
/// platform's payload does not name its entity, so it is told by its fields (a
/// check-in names the visitor or member it is for).
fn webhook_target(record: &serde_json::Value) -> Option<(&'static str, i64)> {
    let has = |f: &str| record.get(f).is_some_and(|v| !v.is_null());
    let id = |f: &str| record.get(f).and_then(serde_json::Value::as_i64);
    if has("VisitorCode") || has("ExpectedArrival") {
        Some((VISITORS, id("Id")?))
    } else if has("AccessPincode") || has("InvoicingBusinessId") || has("CoworkerType") {
        Some((COWORKERS, id("Id")?))
    } else if has("AccessCode") && has("MinutesIncluded") {
        Some((ACCESS_TOKENS, id("Id")?))
    } else if has("VisitorId") {
        Some((VISITORS, id("VisitorId")?))
    } else if has("CoworkerId") {
        Some((COWORKERS, id("CoworkerId")?))
    } else {
        None
    }
}

impl Sync {
    /// Applies a verified webhook: every record it names is read again from the API
    /// by `Id` and applied (so a forged or partial payload sets nothing); one the
    /// platform no longer has is removed here. Applying the same webhook again
    /// changes nothing.
    pub fn handle_webhook(
        &self,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<PassReport, PlatformError> {
        let mut report = PassReport {
            entity: "webhook",
            ..Default::default()
        };
        let records = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Array(records)) => records,
            Ok(one @ serde_json::Value::Object(_)) => vec![one],
            _ => {
                report.invalid += 1;
                tracing::warn!("webhook body is not a JSON array of records; ignored");
                return Ok(report);
            }
        };
        for record in &records {
            let Some((entity, id)) = webhook_target(record) else {
                report.invalid += 1;
                let fields: Vec<&str> = record
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                tracing::warn!(
                    ?fields,
                    "webhook record not understood (no member, visitor or access token in it); ignored"
                );
                continue;
            };
            self.refresh(entity, id, now, &mut report)?;
        }
        self.count(&report);
        Ok(report)
    }
}

impl Sync {
    /// Reads `entity` `id` again and applies it, or removes it here when the platform
    /// no longer has it.
    fn refresh(
        &self,
        entity: &str,
        id: i64,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), PlatformError> {
        match self.read_again(entity, id)? {
            Some(record) => {
                self.apply(entity, &record, now, report)?;
            }
            None => {
                if self
                    .store
                    .remove_platform_record(entity, id, now)
                    .map_err(|e| self.local(e))?
                {
                    report.removed += 1;
                }
            }
        }
        Ok(())
    }

    /// The platform's current record of `entity` `id`: by Id, and when that says
    /// "not found", confirmed by a list filtered on the Id (a well-formed, empty
    /// answer), so a flaky 404 or a proxy's error page removes nothing.
    fn read_again(
        &self,
        entity: &str,
        id: i64,
    ) -> Result<Option<serde_json::Value>, PlatformError> {
        if let Some(record) = self.client.get(entity, id)? {
            return Ok(Some(record));
        }
        let filter = ENTITIES
            .iter()
            .find(|(e, ..)| *e == entity)
            .map_or("Id", |(_, f, _)| f);
        let listed = self
            .client
            .list(entity, &[(format!("{filter}_Id"), id.to_string())], 1)?;
        Ok(listed
            .records
            .into_iter()
            .find(|r| r.get("Id").and_then(serde_json::Value::as_i64) == Some(id)))
    }
}

/// Whether a full listing is due: none yet of some entity, or the oldest older than
/// `every`.
fn full_due(store: &Store, every: Duration, now: DateTime<Utc>) -> bool {
    let rows = store.sync_status().unwrap_or_default();
    ENTITIES.iter().any(|(entity, ..)| {
        rows.iter()
            .find(|r| r.entity == *entity)
            .and_then(|r| r.last_full)
            .is_none_or(|t| (now - t).to_std().unwrap_or_default() >= every)
    })
}

/// The sync thread of `serve`: webhook bodies (verified by the HTTP listener) from
/// `inbox` as they come, and a pull at start, then every `poll_seconds` (a full one
/// every `full_sync_hours`); after a failed pull it waits twice as long each time, up
/// to ten times the poll interval, and warns how stale the data is. Returns within a
/// second of `stop` turning true.
pub fn run_poller(
    sync: Sync,
    clock: Arc<dyn crate::clock::Clock>,
    inbox: std::sync::mpsc::Receiver<Vec<u8>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let poll = sync.config.poll;
    let mut wait = Duration::ZERO;
    let mut last_success: Option<DateTime<Utc>> = None;
    loop {
        let due = std::time::Instant::now() + wait;
        // Webhooks are handled as they come, between pulls.
        loop {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let left = due.saturating_duration_since(std::time::Instant::now());
            match inbox.recv_timeout(left.min(Duration::from_millis(500))) {
                Ok(body) => match sync.handle_webhook(&body, clock.now()) {
                    Ok(report) => tracing::info!("platform webhook: {report}"),
                    Err(e) => {
                        tracing::warn!(error = %e, "platform webhook not applied; the next pull catches up")
                    }
                },
                Err(_) if left.is_zero() => break,
                Err(_) => {}
            }
        }
        let now = clock.now();
        let full = full_due(&sync.store, sync.config.full_sync, now);
        match sync.run_once(full, now) {
            Ok(reports) => {
                for r in reports
                    .iter()
                    .filter(|r| r.created + r.updated + r.removed + r.clashes + r.invalid > 0)
                {
                    tracing::info!("platform sync: {r}");
                }
                last_success = Some(now);
                wait = poll;
            }
            Err(e) => {
                let stale = last_success.map_or("never synced since start".to_string(), |t| {
                    format!("last successful pull {} s ago", (now - t).num_seconds())
                });
                wait = (wait * 2).clamp(poll, poll * 10);
                tracing::warn!(error = %e, "platform sync failed ({stale}); logins go on from the local store; next try in {} s", wait.as_secs());
            }
        }
    }
}
