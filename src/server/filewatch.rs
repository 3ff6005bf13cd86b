//! Watches the database file while the server runs (`store/health.rs` says what is
//! checked): each change of state is logged once (an error when writes stop, info
//! when they resume: a full disk with the first write that succeeds), writes refused
//! meanwhile are logged once per interval with their count, and both are in the
//! metrics at every look. The writers refuse on their own, at
//! every batch; this task is what tells the operator, even when nothing is written.

use super::Context;
use crate::store::health::FileState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the file is looked at.
const INTERVAL: Duration = Duration::from_secs(1);
/// How often refused writes are counted in the log while they go on.
const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(60);

pub(super) async fn run(ctx: Arc<Context>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watcher = Watcher {
        state: FileState::Fine,
        counted: ctx.store.health().refused(),
        logged_refused: ctx.store.health().refused(),
        logged: None,
        misses: ctx.store.facts_cache_misses(),
    };
    ctx.metrics.store_state(FileState::Fine);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let ctx = ctx.clone();
        watcher = match tokio::task::spawn_blocking(move || {
            watcher.look(&ctx);
            watcher
        })
        .await
        {
            Ok(w) => w,
            Err(_) => return,
        };
    }
}

/// What the watcher has told so far.
struct Watcher {
    state: FileState,
    /// Refused writes counted in the metrics, and in the log.
    counted: u64,
    logged_refused: u64,
    /// When refused writes were last logged.
    logged: Option<Instant>,
    misses: u64,
}

impl Watcher {
    fn look(&mut self, ctx: &Context) {
        let (store, health) = (&ctx.store, ctx.store.health());
        health.set_file(store.file_state());
        let state = health.state();
        if state != self.state {
            if state == FileState::Fine {
                tracing::info!(database = %store.path().display(),
                    "database writable again: accounting and first logins are acknowledged again");
            } else {
                tracing::error!(database = %store.path().display(), state = state.label(),
                    "{}", state.explain(store.path()));
            }
            self.state = state;
            ctx.metrics.store_state(state);
        }
        let refused = health.refused();
        ctx.metrics
            .store_refused_writes
            .inc_by(refused - self.counted);
        self.counted = refused;
        let new = refused - self.logged_refused;
        if new > 0
            && self
                .logged
                .is_none_or(|t| t.elapsed() >= REFUSED_LOG_INTERVAL)
        {
            tracing::warn!(database = %store.path().display(), state = state.label(), writes = new,
                "writes not acknowledged since the last report (accounting records, first logins): the database could not be written, or another process held its write lock");
            self.logged_refused = refused;
            self.logged = Some(Instant::now());
        }
        let misses = store.facts_cache_misses();
        ctx.metrics.facts_cache_misses.inc_by(misses - self.misses);
        self.misses = misses;
    }
}
