//! Access-Request and Status-Server on the auth port (RFC 2865, RFC 5997).

use super::cache::{RequestKey, Seen};
use super::datagrams::{ReceiveBatch, SendBatch};
use super::guard::{Charge, NasLabel, Verdict};
use super::{Context, Settings};
use crate::config::{Client, PasswordMode};
use crate::metrics::ClientCounters;
use crate::model::{AccessToken, LockScope, LogSafe, Mac, MaskedCode, TokenOwner};
use crate::policy::{self, Grant, RejectReason};
use crate::protocol::{self, Code, Packet, PacketBuilder, attr};
use crate::store::{BindOutcome, ReadPoint, SharedToken};
use chrono::{DateTime, SubsecRound, Utc};
use std::net::SocketAddr;
use std::time::Instant;

/// Datagrams taken per receive call and answers sent per send call. Each thread owns
/// one batch's buffers (32 x 4 KiB).
const BATCH: usize = 32;

/// What the receive loop does with a datagram.
pub(super) enum Triage<'s> {
    /// Not for us, or not valid: no answer.
    Drop,
    /// Answered without a worker: Status-Server, or a retransmit's cached answer.
    Reply(Vec<u8>),
    /// A new, authentic Access-Request for a worker (recorded in flight under `key`).
    Work {
        client: &'s Client,
        counters: &'s ClientCounters,
        key: RequestKey,
    },
}

/// First look at a datagram, on the receive loop: everything that needs no I/O.
pub(super) fn triage<'s>(
    ctx: &Context,
    settings: &'s Settings,
    datagram: &[u8],
    source: SocketAddr,
    now: Instant,
) -> Triage<'s> {
    let Some((client, counters, packet)) = ctx.admit(settings, datagram, source, "auth") else {
        return Triage::Drop;
    };
    let secret = client.secret.as_bytes();
    match packet.code() {
        Code::AccessRequest => {}
        Code::StatusServer => {
            if !ctx.status_server_authentic(&packet, client, counters, source) {
                return Triage::Drop;
            }
            let mut b =
                PacketBuilder::with_message_authenticator(Code::AccessAccept, packet.identifier());
            let _ = b.add(attr::REPLY_MESSAGE, b"pinradius up");
            protocol::copy_proxy_state(&packet, &mut b);
            return Triage::Reply(b.finish_response(packet.authenticator(), secret));
        }
        other => {
            ctx.log_drop(
                "unexpected_code",
                source,
                &format_args!(
                    "client {}: {} is not accepted on the auth port",
                    client.name,
                    other.string()
                ),
            );
            return Triage::Drop;
        }
    }
    match protocol::verify_message_authenticator(&packet, secret, None) {
        Some(true) => {}
        Some(false) => {
            ctx.log_drop(
                "bad_message_authenticator",
                source,
                &format_args!(
                    "client {}: Message-Authenticator does not verify (wrong secret?)",
                    client.name
                ),
            );
            return Triage::Drop;
        }
        None if client.require_message_authenticator => {
            ctx.log_drop(
                "missing_message_authenticator",
                source,
                &format_args!(
                    "client {}: no Message-Authenticator and require_message_authenticator = true",
                    client.name
                ),
            );
            return Triage::Drop;
        }
        None => {}
    }
    let key = RequestKey {
        source,
        identifier: packet.identifier(),
        authenticator: *packet.authenticator(),
    };
    match ctx.cache.begin(key, now) {
        Seen::New => Triage::Work {
            client,
            counters,
            key,
        },
        Seen::InFlight => {
            ctx.metrics.retransmit("auth");
            Triage::Drop
        }
        Seen::Answered(bytes) => {
            ctx.metrics.retransmit("auth");
            tracing::debug!(%source, client = %client.name, "retransmit: replaying cached answer");
            Triage::Reply(bytes)
        }
    }
}

/// One auth thread: receive a datagram, answer it, send the answer; until `halt`.
/// Errors are logged and the loop goes on: it never dies on a packet.
pub(super) fn serve_blocking(
    ctx: &Context,
    socket: &std::net::UdpSocket,
    halt: &std::sync::atomic::AtomicBool,
) {
    let mut batch = ReceiveBatch::new(BATCH, protocol::MAX_PACKET_LEN);
    let mut sender = SendBatch::new(BATCH);
    let mut answers: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    while !halt.load(std::sync::atomic::Ordering::Relaxed) {
        match batch.receive(socket) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                // E.g. ECONNREFUSED from an ICMP error for an earlier reply.
                tracing::debug!(error = %e, "recvmmsg failed; continuing");
                continue;
            }
        }
        // Taken after the datagrams arrived: whatever was committed before any of
        // them was sent is seen by all of them, and so is a reload.
        let (arrived, now) = (ctx.store.read_point(), Instant::now());
        let settings = ctx.settings();
        answers.clear();
        let mut decided = 0;
        for (datagram, source) in batch.datagrams() {
            if let Some(answer) =
                process_auth_datagram(ctx, &settings, datagram, source, now, arrived)
            {
                decided += usize::from(answer.decided);
                answers.push((answer.bytes, source));
            }
        }
        for (n, e) in sender.send(socket, &answers) {
            tracing::debug!(to = %answers[n].1, error = %e, "could not send an answer");
        }
        // The batch's answers left in that one call: one clock read times them all.
        if decided > 0 {
            let took = now.elapsed().as_secs_f64();
            for _ in 0..decided {
                ctx.metrics.auth_latency.observe(took);
            }
        }
    }
}

/// The answer to one datagram.
pub struct AuthAnswer {
    pub bytes: Vec<u8>,
    /// Decided now: an Access-Request processed, rather than Status-Server or a
    /// replayed retransmit (only those are timed in the latency histogram).
    pub decided: bool,
}

/// The whole auth path for one datagram, synchronously, without sockets: what each
/// auth thread does per datagram of a batch, and what the fuzzers and their corpus
/// replay call. `None`: no answer.
pub fn process_auth_datagram(
    ctx: &Context,
    settings: &Settings,
    datagram: &[u8],
    source: SocketAddr,
    now: Instant,
    arrived: ReadPoint,
) -> Option<AuthAnswer> {
    match triage(ctx, settings, datagram, source, now) {
        Triage::Drop => None,
        Triage::Reply(bytes) => Some(AuthAnswer {
            bytes,
            decided: false,
        }),
        Triage::Work {
            client,
            counters,
            key,
        } => {
            counters.access_requests.inc();
            let answer =
                answer_access_request(ctx, settings, client, counters, datagram, source, arrived);
            match &answer {
                Some(bytes) => ctx.cache.complete(key, bytes),
                None => ctx.cache.abandon(key),
            }
            answer.map(|bytes| AuthAnswer {
                bytes,
                decided: true,
            })
        }
    }
}

/// The credentials of an Access-Request (RFC 2865 section 4.1: User-Password or
/// CHAP-Password, not both).
enum Credentials<'a> {
    Pap(protocol::Password),
    Chap {
        response: &'a [u8],
        challenge: &'a [u8],
    },
    None,
}

fn credentials<'a>(packet: &Packet<'a>, secret: &[u8]) -> Credentials<'a> {
    match (
        packet.value(attr::USER_PASSWORD),
        packet.value(attr::CHAP_PASSWORD),
    ) {
        (Some(hidden), None) => match protocol::pap_decrypt(hidden, secret, packet.authenticator())
        {
            Some(p) => Credentials::Pap(p),
            None => Credentials::None,
        },
        (None, Some(response)) => Credentials::Chap {
            response,
            challenge: packet
                .value(attr::CHAP_CHALLENGE)
                .unwrap_or(packet.authenticator()),
        },
        _ => Credentials::None,
    }
}

fn password_matches(mode: PasswordMode, creds: &Credentials<'_>, code: &str) -> bool {
    use subtle::ConstantTimeEq;
    match (mode, creds) {
        (_, Credentials::None) => false,
        (PasswordMode::Any, _) => true,
        (PasswordMode::Code, Credentials::Pap(p)) => bool::from(p.ct_eq(code.as_bytes())),
        (
            PasswordMode::Code,
            Credentials::Chap {
                response,
                challenge,
            },
        ) => protocol::chap_matches(response, challenge, code.as_bytes()),
    }
}

/// The outcome of one login, before encoding.
enum Outcome {
    Accept { token: SharedToken, grant: Grant },
    Reject(RejectReason),
}

/// Decides and encodes the answer to an Access-Request. Runs on a blocking thread
/// (it reads and may write the store). `None`: no answer (the store failed; the NAS
/// will retransmit and we try again).
fn answer_access_request(
    ctx: &Context,
    settings: &Settings,
    client: &Client,
    counters: &ClientCounters,
    request: &[u8],
    source: SocketAddr,
    arrived: ReadPoint,
) -> Option<Vec<u8>> {
    let packet = protocol::validate(request).ok()?;
    // Stored times are whole milliseconds; deciding on the same grain keeps a
    // recomputation from stored values (first-login check-in) exact.
    let now = ctx.clock.now().trunc_subsecs(3);
    let secret = client.secret.as_bytes();
    let text = |typ| packet.value(typ).and_then(|v| std::str::from_utf8(v).ok());
    let code = text(attr::USER_NAME);
    let station = text(attr::CALLING_STATION_ID);
    let device: Option<Mac> = station.and_then(|s| s.parse().ok());
    let creds = credentials(&packet, secret);
    let nas = NasLabel {
        client: &client.name,
        nas: super::nas_of(&packet, source.ip()),
    };
    let login = Login {
        code,
        email: code.filter(|c| client.email_login && c.contains('@')),
        device,
        creds: &creds,
        arrival: Arrival {
            now,
            read_point: arrived,
        },
    };
    let outcome = match decide(ctx, settings, client, nas, &login) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(client = %client.name, error = %e, "could not decide an Access-Request; not answering");
            return None;
        }
    };
    let masked = MaskedCode(code);
    let station = LogSafe(station.unwrap_or("-"));
    let mut b;
    match &outcome {
        Outcome::Accept { token, grant } => {
            tracing::debug!(client = %client.name, code = %masked, %station, token = token.id,
                session_timeout = grant.session_timeout, limited_by = %grant.limited_by, "accept");
            counters.accepts.inc();
            b = PacketBuilder::with_message_authenticator(Code::AccessAccept, packet.identifier());
            encode_accept(&mut b, &settings.reply, client, token, grant).ok()?;
        }
        Outcome::Reject(reason) => {
            tracing::debug!(client = %client.name, code = %masked, %station, reason = reason.label(), "reject: {reason}");
            ctx.reject_log
                .count(&client.name, reason.label(), std::time::Instant::now());
            ctx.metrics
                .rejects
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: reason.label(),
                })
                .inc();
            b = PacketBuilder::with_message_authenticator(Code::AccessReject, packet.identifier());
            b.add(attr::REPLY_MESSAGE, reason.to_string().as_bytes())
                .ok()?;
        }
    }
    protocol::copy_proxy_state(&packet, &mut b);
    Some(b.finish_response(packet.authenticator(), secret))
}

/// When a request is decided: the wall-clock time its rules are applied at, and the
/// point its datagram arrived at, which its store reads must be at least as fresh as.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    now: DateTime<Utc>,
    read_point: ReadPoint,
}

/// What an Access-Request asks.
struct Login<'a> {
    /// The User-Name: a code, or an email.
    code: Option<&'a str>,
    /// The User-Name when it is an email and the client takes email + PIN logins.
    email: Option<&'a str>,
    device: Option<Mac>,
    creds: &'a Credentials<'a>,
    arrival: Arrival,
}

/// Decides a login, guarded against guessing (`guard.rs`): the attempt is admitted
/// against the failure budgets of its device, account, NAS and the server before it
/// is decided, and settled after. A refused login counts against them unless the
/// device was already bound to the code it presented. While a budget other than the
/// device's is spent, only such bound devices are decided at all.
fn decide(
    ctx: &Context,
    settings: &Settings,
    client: &Client,
    nas: NasLabel<'_>,
    login: &Login<'_>,
) -> Result<Outcome, crate::store::StoreError> {
    let now = login.arrival.now;
    let charge = Charge {
        nas,
        device: login.device,
        account: login.email.map(|e| (client.business_id, e)),
        user_name: login.code,
    };
    let version = ctx.store.data_version(login.arrival.read_point)?;
    let (ticket, decided) =
        match ctx
            .guard
            .admit(&ctx.store, &settings.lockout, &charge, version, now)?
        {
            Verdict::Go(ticket) => (ticket, decide_login(ctx, settings, client, login)),
            Verdict::Refuse(reason) => {
                ctx.metrics.guard_refused(LockScope::Device);
                return Ok(Outcome::Reject(reason));
            }
            Verdict::BoundOnly {
                scope,
                reason,
                ticket,
            } => {
                // The one question asked of the code: is this device bound to it? Any
                // code, existing or not, gets the same answer when it is not, and that
                // refusal counts against the device (and account) like any other.
                let bound = match (login.device, login.code) {
                    (Some(mac), Some(name)) => {
                        ctx.store
                            .device_bound(client.business_id, name, login.email.is_some(), mac)
                    }
                    _ => Ok(false),
                };
                let decided = match bound {
                    Ok(true) => decide_login(ctx, settings, client, login),
                    Ok(false) => {
                        ctx.metrics.guard_refused(scope);
                        Ok((Outcome::Reject(reason), false))
                    }
                    Err(e) => Err(e),
                };
                (ticket, decided)
            }
        };
    let counted = match &decided {
        Ok((Outcome::Reject(_), bound)) => !bound,
        _ => false,
    };
    ctx.guard.settle(
        &ctx.store,
        &settings.lockout,
        ticket,
        counted,
        &charge,
        &ctx.metrics,
        now,
    );
    decided.map(|(outcome, _)| outcome)
}

/// The code an email + PIN login logs in with: the code (PIN) of a person with that
/// email whose PIN the password proves. `Ok(None)`: no person of the business has
/// that email (the User-Name may then be a code); `Ok(Some(None))`: the email is
/// known but no PIN of it matches.
fn code_of_email(
    ctx: &Context,
    client: &Client,
    email: &str,
    creds: &Credentials<'_>,
) -> Result<Option<Option<String>>, crate::store::StoreError> {
    let codes = ctx.store.codes_of_email(client.business_id, email)?;
    if codes.is_empty() {
        return Ok(None);
    }
    Ok(Some(codes.into_iter().find(|pin| {
        password_matches(PasswordMode::Code, creds, pin)
    })))
}

/// Decides a login admitted by the guard; also says whether the device was already
/// bound to the token the login resolved to (its refusals are not counted).
fn decide_login(
    ctx: &Context,
    settings: &Settings,
    client: &Client,
    login: &Login<'_>,
) -> Result<(Outcome, bool), crate::store::StoreError> {
    let Arrival { now, read_point } = login.arrival;
    let (device, creds) = (login.device, login.creds);
    let reject = |reason| Ok((Outcome::Reject(reason), false));
    let Some(user_name) = login.code else {
        return reject(RejectReason::UnknownCode);
    };
    if matches!(creds, Credentials::None) {
        return reject(RejectReason::NoCredentials);
    }
    // Email + PIN: the password is a PIN, whatever the client's password mode.
    let by_email = match login.email {
        Some(email) => code_of_email(ctx, client, email, creds)?,
        None => None,
    };
    let (code, mode) = match &by_email {
        Some(Some(pin)) => (pin.as_str(), PasswordMode::Code),
        Some(None) => return reject(RejectReason::BadPassword),
        None => (user_name, client.password_mode),
    };
    let Some((token, owner, usage)) = ctx.store.login_facts(
        read_point,
        client.business_id,
        code,
        device,
        now,
        settings.rules.stale_before(now),
    )?
    else {
        return reject(RejectReason::UnknownCode);
    };
    if !password_matches(mode, creds, &token.access_code) {
        return reject(RejectReason::BadPassword);
    }
    let bound = device.is_some_and(|d| usage.bound_devices.contains(&d));
    let outcome = grant_login(ctx, settings, client, (token, owner, usage), device, now)?;
    Ok((outcome, bound))
}

/// Applies the policy to a login whose code and password are right, binds a new
/// device and checks a visitor in on their first login.
fn grant_login(
    ctx: &Context,
    settings: &Settings,
    client: &Client,
    (token, owner, usage): (SharedToken, TokenOwner, crate::model::TokenUsage),
    device: Option<Mac>,
    now: DateTime<Utc>,
) -> Result<Outcome, crate::store::StoreError> {
    let mut grant = match policy::decide(now, &token, owner, &usage, device, &settings.rules) {
        Ok(g) => g,
        Err(reason) => return Ok(Outcome::Reject(reason)),
    };
    // Simultaneous use counts the sessions accounting opened and the places held by
    // accepts whose accounting has not started yet (`holds.rs`).
    if let Some(limit) = token.user_limit
        && !ctx.holds.claim(
            token.id,
            device,
            limit,
            usage.open_sessions_elsewhere,
            now,
            settings.login_hold,
        )
    {
        return Ok(Outcome::Reject(RejectReason::SimultaneousUseLimit {
            limit,
        }));
    }
    if let Some(mac) = grant.bind_device {
        let bound = ctx
            .store
            .bind_device(token.id, mac, grant.device_limit, now);
        if !matches!(bound, Ok(BindOutcome::Bound | BindOutcome::AlreadyBound)) {
            ctx.holds.release(token.id, device);
        }
        match bound? {
            BindOutcome::LimitReached => {
                let limit = grant.device_limit.unwrap_or(0);
                return Ok(Outcome::Reject(RejectReason::DeviceLimitReached { limit }));
            }
            // A device's first login on a code is an event an operator looks for (a
            // returning device's logins are at debug; accepts_total counts them all).
            BindOutcome::Bound => tracing::info!(
                client = %client.name, token = token.id, device = %mac,
                code = %MaskedCode(Some(&token.access_code)),
                "accepted: first login of this device with this code (device bound)"
            ),
            BindOutcome::AlreadyBound => {}
        }
    }
    if let (true, TokenOwner::Visitor { visitor_id, .. }) = (grant.check_in, owner) {
        // First accepted login checks the visitor in. Should another login have won
        // the race, its arrival stands and the window is recomputed from it.
        let arrived_at = ctx.store.check_in_on_login(visitor_id, now)?;
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
                    return Ok(Outcome::Reject(reason));
                }
            };
        }
        tracing::info!(client = %client.name, token = token.id, visitor = visitor_id, "visitor checked in by first Wi-Fi login");
    }
    Ok(Outcome::Accept { token, grant })
}

/// The Class value that lets accounting find the token again (RFC 2865 section 5.25:
/// the NAS echoes it unmodified in Accounting-Requests): the token's uid, which no
/// other token will ever have, so a late record can never charge another token.
pub fn class_for_token(uid: &str) -> String {
    format!("{CLASS_PREFIX}{uid}")
}

const CLASS_PREFIX: &str = "pinradius:uid=";

fn encode_accept(
    b: &mut PacketBuilder,
    reply: &super::ReplySettings,
    client: &Client,
    token: &AccessToken,
    grant: &Grant,
) -> Result<(), protocol::EncodeError> {
    b.add_u32(attr::SESSION_TIMEOUT, grant.session_timeout)?;
    if let Some(idle) = reply.idle_timeout {
        b.add_u32(attr::IDLE_TIMEOUT, idle)?;
    }
    if let Some(interim) = reply.acct_interim_interval {
        b.add_u32(attr::ACCT_INTERIM_INTERVAL, interim)?;
    }
    b.add_parts(
        attr::CLASS,
        &[CLASS_PREFIX.as_bytes(), token.uid.as_bytes()],
    )?;
    for a in &client.reply_attributes {
        match a.vendor {
            Some(vendor) => b.add_vendor(vendor, a.number, &a.value)?,
            None => b.add(a.number, &a.value)?,
        };
    }
    Ok(())
}
