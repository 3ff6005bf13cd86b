//! Closes sessions that can no longer be open: those whose NAS stopped reporting
//! (stale) and those whose token has run out (revoked, deactivated, expired, minutes
//! used up) while the NAS sent no Stop; for the latter a Disconnect-Request is
//! queued, so the NAS ends the session too. A session that already has a disconnect
//! pending (an admin revoked its token, say) is the disconnector's until the NAS
//! answers; if the NAS never does, the next pass queues one more and closes it.
//! Runs on an interval; decisions use the injected clock.

use super::Context;
use crate::policy;
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

/// One pass: (stale sessions closed, run-out sessions closed). Whether a session
/// has run out is decided from its token's time alone (`policy::run_out`), for every
/// kind of token, reading each token with open sessions once.
pub fn reap(ctx: &Context) -> Result<(usize, usize), crate::store::StoreError> {
    let now = ctx.clock.now();
    let settings = ctx.settings();
    let stale_before = settings.rules.stale_before(now);
    let stale = ctx.store.close_stale_sessions(stale_before, now)?;
    let mut expired = 0;
    for open in ctx.store.open_tokens(now, stale_before)? {
        let Some(reason) = policy::run_out(now, &open.token, open.owner, open.spent_seconds) else {
            continue;
        };
        for session in open.sessions {
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
