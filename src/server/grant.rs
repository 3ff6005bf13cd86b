//! The end of a login whose code and password are right: the policy's grant, the
//! writes it needs (binding a new device, checking a visitor in) and the answer.
//!
//! A login that needs a write is not answered on its auth thread: its writes go to the
//! login writer ([`crate::store::LoginWriter`]) and the thread goes on with the next
//! datagram. Once the writer has committed them (or given them up), it calls
//! [`Deferred::finish`], which completes the grant, settles the guard's ticket, encodes
//! the answer, records it for retransmits and sends it. A returning device's login
//! needs no write and is answered at once, whatever the writer is waiting for.

use super::answer::{Outcome, Request, encode_outcome};
use super::cache::RequestKey;
use super::{Context, Settings};
use crate::config::Client;
use crate::metrics::ClientCounters;
use crate::model::{Mac, MaskedCode, TokenOwner, TokenUsage};
use crate::policy::{self, Grant, RejectReason};
use crate::store::{BatchError, Bind, BindOutcome, LoginHold, LoginWrite, SharedToken, Written};
use chrono::{DateTime, Utc};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Where answers finished off the auth thread are sent.
pub trait Responder: Send + Sync {
    fn respond(&self, answer: &[u8], to: SocketAddr);
}

impl Responder for std::net::UdpSocket {
    fn respond(&self, answer: &[u8], to: SocketAddr) {
        if let Err(e) = self.send_to(answer, to) {
            tracing::debug!(%to, error = %e, "could not send an answer");
        }
    }
}

/// The accounting socket: never waits (a full send buffer drops the answer, as UDP
/// may; the NAS retransmits and gets it from the retransmit cache).
impl Responder for tokio::net::UdpSocket {
    fn respond(&self, answer: &[u8], to: SocketAddr) {
        if let Err(e) = self.try_send_to(answer, to) {
            tracing::debug!(%to, error = %e, "could not send an answer");
        }
    }
}

/// A login the policy accepts once its writes are durable.
pub(super) struct PendingGrant {
    token: SharedToken,
    owner: TokenOwner,
    usage: TokenUsage,
    grant: Grant,
    device: Option<Mac>,
    now: DateTime<Utc>,
    /// The simultaneous-use place to hold in the database (servers sharing it).
    hold: Option<LoginHold>,
}

impl PendingGrant {
    /// The writes, given up if still waiting for the write lock at `deadline`.
    pub(super) fn write(&self, deadline: Instant) -> LoginWrite {
        LoginWrite {
            hold: self.hold,
            bind: self.grant.bind_device.map(|mac| Bind {
                token_id: self.token.id,
                mac,
                device_limit: self.grant.device_limit,
            }),
            check_in: match (self.grant.check_in, self.owner) {
                (true, TokenOwner::Visitor { visitor_id, .. }) => Some(visitor_id),
                _ => None,
            },
            locks: Vec::new(),
            failures: Vec::new(),
            now: self.now,
            deadline,
        }
    }
}

/// Applies the policy to a login whose code and password are right. Accepted at once
/// when nothing needs writing; otherwise [`Outcome::Write`].
pub(super) fn grant_login(
    ctx: &Context,
    settings: &Settings,
    (token, owner, usage): (SharedToken, TokenOwner, TokenUsage),
    device: Option<Mac>,
    now: DateTime<Utc>,
) -> Outcome {
    let grant = match policy::decide(now, &token, owner, &usage, device, &settings.rules) {
        Ok(g) => g,
        Err(reason) => return Outcome::Reject(reason),
    };
    // Simultaneous use counts the sessions accounting opened and the places held by
    // accepts whose accounting has not started yet: in memory (`holds.rs`), or in
    // the database when servers share it (taken by the login writer).
    let mut hold = None;
    if let Some(limit) = token.user_limit {
        // While the database cannot be reached, the place is held in memory: a login
        // that needs nothing else is decided without it.
        let reachable = ctx.store.health().state() != crate::store::health::FileState::Unreachable;
        if ctx.store.is_shared() && reachable {
            hold = Some(LoginHold {
                token_id: token.id,
                device,
                limit,
                stale_before: settings.rules.stale_before(now),
                until: now + settings.login_hold,
            });
        } else if !ctx.holds.claim(
            token.id,
            device,
            limit,
            usage.open_sessions_elsewhere,
            now,
            settings.login_hold,
        ) {
            return Outcome::Reject(RejectReason::SimultaneousUseLimit { limit });
        }
    }
    let checks_in = grant.check_in && matches!(owner, TokenOwner::Visitor { .. });
    if grant.bind_device.is_some() || checks_in || hold.is_some() {
        return Outcome::Write(PendingGrant {
            token,
            owner,
            usage,
            grant,
            device,
            now,
            hold,
        });
    }
    Outcome::Accept { token, grant }
}

/// The grant once its writes are in: a device over the limit after all (another
/// took the last place first) is refused; a visitor whose arrival another login
/// recorded first gets the window from that arrival.
fn complete_grant(
    ctx: &Context,
    settings: &Settings,
    client: &Client,
    p: PendingGrant,
    written: Written,
) -> Outcome {
    let PendingGrant {
        token,
        owner,
        usage,
        mut grant,
        device,
        now,
        hold,
    } = p;
    if let (Some(h), Some(false)) = (hold, written.held) {
        return Outcome::Reject(RejectReason::SimultaneousUseLimit { limit: h.limit });
    }
    if let Some(mac) = grant.bind_device {
        match written.bound {
            Some(BindOutcome::LimitReached) => {
                ctx.holds.release(token.id, device);
                let limit = grant.device_limit.unwrap_or(0);
                return Outcome::Reject(RejectReason::DeviceLimitReached { limit });
            }
            // A device's first login on a code is an event an operator looks for (a
            // returning device's logins are at debug; accepts_total counts them all).
            Some(BindOutcome::Bound) => tracing::info!(
                client = %client.name, token = token.id, device = %mac,
                code = %MaskedCode(Some(&token.access_code)),
                "accepted: first login of this device with this code (device bound)"
            ),
            _ => {}
        }
    }
    if let (true, TokenOwner::Visitor { visitor_id, .. }) = (grant.check_in, owner) {
        let arrived_at = written.arrived_at.unwrap_or(now);
        if arrived_at != now {
            let owner = TokenOwner::Visitor {
                visitor_id,
                arrived_at: Some(arrived_at),
            };
            grant = match policy::decide(now, &token, owner, &usage, device, &settings.rules) {
                Ok(g) => Grant {
                    bind_device: grant.bind_device,
                    ..g
                },
                Err(reason) => {
                    ctx.holds.release(token.id, device);
                    if hold.is_some() {
                        // The place the writer held in the database goes too.
                        if let Err(e) = ctx.store.release_hold(token.id, device) {
                            tracing::warn!(error = %e, token = token.id,
                                "could not give up a simultaneous-use place; it ends by itself");
                        }
                    }
                    return Outcome::Reject(reason);
                }
            };
        }
        tracing::info!(client = %client.name, token = token.id, visitor = visitor_id, "visitor checked in by first Wi-Fi login");
    }
    Outcome::Accept { token, grant }
}

/// A login waiting for its writes: everything needed to answer it later. The
/// datagram is kept (its request is read again to answer), with the settings it
/// arrived under.
pub(super) struct Deferred {
    pub ctx: Arc<Context>,
    pub settings: Arc<Settings>,
    /// Who sent it (by address, or by a RadSec connection's certificate).
    pub client: Arc<Client>,
    pub counters: ClientCounters,
    pub responder: Arc<dyn Responder>,
    pub datagram: Box<[u8]>,
    pub source: SocketAddr,
    pub key: RequestKey,
    /// When its datagram was received (for the latency histogram).
    pub received: Instant,
    pub pending: PendingGrant,
}

impl Deferred {
    /// Queues the login's writes; it is answered when they are done.
    pub(super) fn submit(self) {
        let write = self
            .pending
            .write(self.received + self.settings.login_write_wait);
        let logins = self.ctx.logins.clone();
        logins.submit(write, Box::new(move |written| self.finish(written)));
    }

    /// Answers the login now that its writes are durable, or refuses it as briefly
    /// unavailable when they were given up (the lock held past the deadline, the file
    /// unwritable): in time for the NAS. Its guard ticket was settled when it was
    /// queued (its code was right): nothing here counts against a budget.
    fn finish(self, written: Result<Written, BatchError>) {
        let Deferred {
            ctx,
            settings,
            client,
            counters,
            responder,
            datagram,
            source,
            key,
            received,
            pending,
        } = self;
        // It was validated a moment ago.
        let Ok(packet) = crate::protocol::validate(&datagram) else {
            ctx.cache.abandon(key);
            return;
        };
        let client = &*client;
        let request = Request::read(client, packet, source);
        let (token_id, device) = (pending.token.id, pending.device);
        let outcome = match written {
            Ok(w) => Some(complete_grant(&ctx, &settings, client, pending, w)),
            Err(BatchError::Failed(e)) => {
                ctx.holds.release(token_id, device);
                if let Some(n) = ctx.drop_log.allow("login_write_failed", Instant::now()) {
                    tracing::error!(client = %client.name, error = %e, logins = n,
                        "could not write a login's device binding or check-in; not answering");
                }
                None
            }
            Err(e) => {
                ctx.holds.release(token_id, device);
                tracing::debug!(client = %client.name, error = %e, "login refused: its writes could not be made in time");
                Some(Outcome::Reject(RejectReason::Unavailable))
            }
        };
        match outcome.and_then(|o| encode_outcome(&ctx, &settings, client, &counters, &request, o))
        {
            Some(bytes) => sender(&ctx, responder, key, source, received, bytes)(),
            None => ctx.cache.abandon(key),
        }
    }
}

/// Sends an answer decided off the batch path: recorded for retransmits, sent, timed.
pub(super) fn sender(
    ctx: &Arc<Context>,
    responder: Arc<dyn Responder>,
    key: RequestKey,
    source: SocketAddr,
    received: Instant,
    bytes: Vec<u8>,
) -> Box<dyn FnOnce() + Send> {
    let ctx = ctx.clone();
    Box::new(move || {
        ctx.cache.complete(key, &bytes);
        responder.respond(&bytes, source);
        ctx.metrics
            .auth_latency
            .observe(received.elapsed().as_secs_f64());
    })
}
