//! The coworking platform (Nexudus) as a source of codes: an adapter that pulls the
//! platform's records and applies them to the store with the same rules as the CLI
//! and the API (one code, one owner; a change disconnects what it ends).
//!
//! Access tokens have no webhook at the platform, so they are pulled: every
//! `poll_seconds` the records changed since a stored cursor (`from_AccessToken_UpdatedOn`,
//! ordered by `UpdatedOn`, every page), and every `full_sync_hours` a full listing that
//! also removes here what the platform no longer has. The platform being down never
//! stops RADIUS: logins go on from the local store, pulls back off and retry, and a
//! warning says how stale the data is.
//!
//! Blocking (ureq): runs on a thread of its own in `serve`, and in `sync run`.

pub mod client;
pub mod records;

use crate::config::NexudusConfig;
use crate::store::{Applied, Store, SyncPass};
use chrono::{DateTime, Utc};
pub use client::{PlatformClient, PlatformError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The platform's entity paths.
pub const ACCESS_TOKENS: &str = "accesstokens";

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
}

impl Sync {
    pub fn new(config: &NexudusConfig, store: Arc<Store>) -> Sync {
        Sync {
            client: PlatformClient::new(config),
            store,
            config: config.clone(),
            metrics: None,
        }
    }

    /// Pulls access tokens: changed since the cursor, or all (`full`), which also
    /// removes the local tokens of platform tokens no longer listed. The cursor moves
    /// only when the whole pass succeeded (a failed pass is pulled again).
    pub fn pull_access_tokens(
        &self,
        full: bool,
        now: DateTime<Utc>,
    ) -> Result<PassReport, PlatformError> {
        let cursor = if full {
            None
        } else {
            self.store
                .sync_cursor(ACCESS_TOKENS)
                .map_err(|e| self.local(e))?
        };
        let mut report = PassReport {
            entity: ACCESS_TOKENS,
            full,
            ..Default::default()
        };
        let mut newest = cursor;
        let mut listed = HashSet::new();
        for &business_id in &self.config.business_ids {
            let mut filters = vec![(
                "AccessToken_BusinessId".to_string(),
                business_id.to_string(),
            )];
            if let Some(from) = cursor {
                filters.push((
                    "from_AccessToken_UpdatedOn".to_string(),
                    records::filter_time(from),
                ));
            }
            let mut page = 1;
            loop {
                let got = self.client.list(ACCESS_TOKENS, &filters, page)?;
                for record in &got.records {
                    let Some((id, updated)) = self.apply_token(record, now, &mut report)? else {
                        continue;
                    };
                    listed.insert(id);
                    newest = newest.max(Some(updated));
                }
                if !got.has_next || got.records.is_empty() {
                    break;
                }
                page += 1;
            }
        }
        if full {
            report.removed = self
                .store
                .remove_unlisted_platform_tokens(&self.config.business_ids, &listed, now)
                .map_err(|e| self.local(e))?;
        }
        let pass = SyncPass {
            cursor: newest,
            applied: report.created + report.updated,
            clashes: report.clashes,
            removed: report.removed,
            full,
        };
        self.store
            .record_sync(ACCESS_TOKENS, &pass, now)
            .map_err(|e| self.local(e))?;
        self.count(&report);
        Ok(report)
    }

    /// Applies one access token record; its id and `UpdatedOn` when it was readable.
    fn apply_token(
        &self,
        record: &serde_json::Value,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<Option<(i64, DateTime<Utc>)>, PlatformError> {
        let parsed = records::identity(record).and_then(|(id, updated)| {
            records::access_token(record, self.config.undated_token_devices)
                .map(|t| (id, updated, t))
                .map_err(|e| format!("access token {id}: {e}"))
        });
        let (id, updated, token) = match parsed {
            Ok(p) => p,
            Err(why) => {
                report.invalid += 1;
                tracing::warn!("platform record not applied: {why}");
                return Ok(None);
            }
        };
        if !self.config.business_ids.contains(&token.business_id) {
            return Ok(None);
        }
        match self
            .store
            .apply_platform_token(id, &token, updated, now)
            .map_err(|e| self.local(e))?
        {
            Applied::Created(_) => report.created += 1,
            Applied::Updated(_) => report.updated += 1,
            Applied::Unchanged(_) => report.unchanged += 1,
            Applied::Clash { owner } => {
                report.clashes += 1;
                tracing::warn!(
                    platform_token = id,
                    code = %crate::model::MaskedCode(Some(&token.access_code)),
                    %owner,
                    "platform access token not applied: its code belongs to {owner} here (one code, one owner)"
                );
            }
        }
        Ok(Some((id, updated)))
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

    /// One pass over every entity (`full`: full listings).
    pub fn run_once(
        &self,
        full: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<PassReport>, PlatformError> {
        let result = self.pull_access_tokens(full, now);
        if let Some(m) = &self.metrics {
            m.platform_pull(result.is_ok(), now);
        }
        match result {
            Ok(report) => Ok(vec![report]),
            Err(e) => {
                let _ = self
                    .store
                    .record_sync_error(ACCESS_TOKENS, &e.to_string(), now);
                Err(e)
            }
        }
    }
}

/// Whether a full listing is due: none yet, or the last older than `every`.
fn full_due(store: &Store, every: Duration, now: DateTime<Utc>) -> bool {
    let last_full = store
        .sync_status()
        .ok()
        .and_then(|rows| rows.into_iter().find(|r| r.entity == ACCESS_TOKENS))
        .and_then(|r| r.last_full);
    last_full.is_none_or(|t| (now - t).to_std().unwrap_or_default() >= every)
}

/// The poller of `serve`: a pass at start, then every `poll_seconds` (a full one
/// every `full_sync_hours`); after a failure it waits twice as long each time, up to
/// ten times the poll interval, and warns how stale the data is. Returns when `stop`
/// is sent or dropped.
pub fn run_poller(
    sync: Sync,
    clock: Arc<dyn crate::clock::Clock>,
    stop: std::sync::mpsc::Receiver<()>,
) {
    let poll = sync.config.poll;
    let mut wait = Duration::ZERO;
    let mut last_success: Option<DateTime<Utc>> = None;
    loop {
        match stop.recv_timeout(wait) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
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
