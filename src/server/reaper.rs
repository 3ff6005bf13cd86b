//! Closes sessions that can no longer be open: those whose NAS stopped reporting
//! (stale) and those whose token has run out (revoked, deactivated, expired, minutes
//! used up) while the NAS sent no Stop; for the latter a Disconnect-Request is
//! queued, so the NAS ends the session too. A session that already has a disconnect
//! pending (an admin revoked its token, say) is the disconnector's until the NAS
//! answers; if the NAS never does, the next pass queues one more and closes it.
//! Runs on an interval; decisions use the injected clock.

use super::Context;
use crate::policy::{self, RejectReason};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub(super) async fn run(ctx: Arc<Context>, interval: Duration, mut stop: watch::Receiver<bool>) {
    // The first pass ran in `Server::bind`; the next one is an interval later.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let worker = ctx.clone();
        match tokio::task::spawn_blocking(move || reap(&worker)).await {
            Ok(pass) => report(pass),
            Err(e) => tracing::error!(error = %e, "reaper task failed"),
        }
    }
}

/// Logs what a pass did (nothing when it closed nothing).
pub(super) fn report(pass: Result<(usize, usize), crate::store::StoreError>) {
    match pass {
        Ok((0, 0)) => {}
        Ok((stale, expired)) => tracing::info!(stale, expired, "closed sessions"),
        Err(e) => tracing::error!(error = %e, "reaper failed"),
    }
}

/// One pass: (stale sessions closed, run-out sessions closed).
pub fn reap(ctx: &Context) -> Result<(usize, usize), crate::store::StoreError> {
    let now = ctx.clock.now();
    let settings = ctx.settings();
    let stale = ctx
        .store
        .close_stale_sessions(settings.rules.stale_before(now), now)?;
    let mut expired = 0;
    for (session, token_id, _mac) in ctx.store.open_session_tokens()? {
        // With no device given, the usage counts the live time of every open session
        // of the token, this one included.
        let Some((token, owner, usage)) =
            ctx.store
                .token_facts(token_id, None, now, settings.rules.stale_before(now))?
        else {
            continue;
        };
        let run_out = match policy::decide(now, &token, owner, &usage, None, &settings.rules) {
            Err(
                reason @ (RejectReason::Revoked
                | RejectReason::Deactivated
                | RejectReason::Expired
                | RejectReason::MinutesUsedUp),
            ) => Some(reason),
            _ => None,
        };
        if let Some(reason) = run_out {
            // The NAS still holds the session (no Stop): tell it to end it (RFC 5176),
            // and stop counting it as open either way.
            ctx.store.queue_disconnect(session, reason.label(), now)?;
            if ctx.store.close_session(session, now, "expired")? {
                expired += 1;
            }
        }
    }
    if expired > 0 {
        ctx.disconnect_wake.notify_one();
    }
    Ok((stale, expired))
}
