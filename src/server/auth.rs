//! Access-Request and Status-Server on the auth port (RFC 2865, RFC 5997).

use super::answer::{Outcome, Request, encode_outcome};
use super::cache::{RequestKey, Seen};
use super::datagrams::{ReceiveBatch, SendBatch};
use super::grant::{Deferred, PendingGrant, Responder, grant_login, sender};
use super::guard::{LockToSave, Verdict};
use super::{Context, Settings};
use crate::config::{Client, PasswordMode};
use crate::metrics::ClientCounters;
use crate::model::LockScope;
use crate::policy::RejectReason;
use crate::protocol::{self, Code, Packet, PacketBuilder, attr};
use crate::store::ReadPoint;
use chrono::{DateTime, SubsecRound, Utc};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Datagrams taken per receive call and answers sent per send call. Each thread owns
/// one batch's buffers (32 x 4 KiB).
const BATCH: usize = 32;

/// What the receive loop does with a datagram.
enum Triage {
    /// Not for us, or not valid: no answer.
    Drop,
    /// Answered without a worker: Status-Server, or a retransmit's cached answer.
    Reply(Vec<u8>),
    /// A new, authentic Access-Request to decide (recorded in flight under `key`).
    Work { key: RequestKey },
}

/// First look at an authentic client's packet: everything that needs no I/O.
fn triage(
    ctx: &Context,
    client: &Client,
    counters: &ClientCounters,
    packet: &Packet<'_>,
    source: SocketAddr,
    now: Instant,
) -> Triage {
    let secret = client.secret.as_bytes();
    match packet.code() {
        Code::AccessRequest => {}
        Code::StatusServer => {
            if !ctx.status_server_authentic(packet, client, counters, source) {
                return Triage::Drop;
            }
            let mut b =
                PacketBuilder::with_message_authenticator(Code::AccessAccept, packet.identifier());
            let _ = b.add(attr::REPLY_MESSAGE, b"pinradius up");
            protocol::copy_proxy_state(packet, &mut b);
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
    match protocol::verify_message_authenticator(packet, secret, None) {
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
        Seen::New => Triage::Work { key },
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
    ctx: &Arc<Context>,
    socket: &Arc<std::net::UdpSocket>,
    halt: &std::sync::atomic::AtomicBool,
) {
    let mut batch = ReceiveBatch::new(BATCH, protocol::MAX_PACKET_LEN);
    let mut sender = SendBatch::new(BATCH);
    let mut answers: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    // Logins answered after their writes are sent from the writer thread.
    let responder: Arc<dyn Responder> = socket.clone();
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
            let step = Arrived {
                source,
                received: now,
                read_point: arrived,
            };
            if let Processed::Answer(answer) =
                process_auth_datagram(ctx, &settings, &responder, datagram, step)
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

/// Where and when a datagram arrived.
#[derive(Debug, Clone, Copy)]
pub struct Arrived {
    pub source: SocketAddr,
    /// When it was received (the retransmit cache's clock, the latency histogram).
    pub received: Instant,
    /// What its store reads must be at least as fresh as.
    pub read_point: ReadPoint,
}

/// The answer to one datagram.
pub struct AuthAnswer {
    pub bytes: Vec<u8>,
    /// Decided now: an Access-Request processed, rather than Status-Server or a
    /// replayed retransmit (only those are timed in the latency histogram).
    pub decided: bool,
}

/// What became of a datagram.
pub enum Processed {
    Answer(AuthAnswer),
    /// No answer (dropped, or the store failed and the NAS will retransmit).
    Nothing,
    /// A login waiting for its writes (a device's first login): answered through the
    /// responder once they are done.
    Later,
}

/// The whole auth path for one datagram, without sockets: what each auth thread does
/// per datagram of a batch, and what the fuzzers and their corpus replay call.
pub fn process_auth_datagram(
    ctx: &Arc<Context>,
    settings: &Arc<Settings>,
    responder: &Arc<dyn Responder>,
    datagram: &[u8],
    at: Arrived,
) -> Processed {
    match ctx.admit(settings, datagram, at.source, "auth") {
        Some((client, counters, packet)) => {
            process_auth_packet(ctx, settings, client, counters, responder, packet, at)
        }
        None => Processed::Nothing,
    }
}

/// The auth path for a packet from `client` (found by the datagram's source address,
/// or by a RadSec connection's certificate): the one entry point of every transport.
pub fn process_auth_packet(
    ctx: &Arc<Context>,
    settings: &Arc<Settings>,
    client: &Arc<Client>,
    counters: &ClientCounters,
    responder: &Arc<dyn Responder>,
    packet: Packet<'_>,
    at: Arrived,
) -> Processed {
    match triage(ctx, client, counters, &packet, at.source, at.received) {
        Triage::Drop => Processed::Nothing,
        Triage::Reply(bytes) => Processed::Answer(AuthAnswer {
            bytes,
            decided: false,
        }),
        Triage::Work { key, .. } => {
            counters.access_requests.inc();
            let request = Request::read(client, packet, at.source);
            match answer_access_request(ctx, settings, client, counters, &request, at.read_point) {
                Answered::Now(Some(bytes)) => {
                    ctx.cache.complete(key, &bytes);
                    Processed::Answer(AuthAnswer {
                        bytes,
                        decided: true,
                    })
                }
                Answered::Now(None) => {
                    ctx.cache.abandon(key);
                    Processed::Nothing
                }
                Answered::AfterLocks { bytes, locks, now } => {
                    let send = sender(ctx, responder.clone(), key, at.source, at.received, bytes);
                    ctx.persist_locks(locks, now, Some(send));
                    Processed::Later
                }
                Answered::Later(pending) => {
                    // In flight in the retransmit cache until it is answered.
                    Deferred {
                        ctx: ctx.clone(),
                        settings: settings.clone(),
                        client: client.clone(),
                        counters: counters.clone(),
                        responder: responder.clone(),
                        datagram: packet.bytes().into(),
                        source: at.source,
                        key,
                        received: at.received,
                        pending,
                    }
                    .submit();
                    Processed::Later
                }
            }
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

/// An Access-Request's answer: now (`None`: none, the store failed and the NAS will
/// retransmit), or later, once its writes are done.
enum Answered {
    Now(Option<Vec<u8>>),
    /// Decided, and sent once the rows of the locks it started are written.
    AfterLocks {
        bytes: Vec<u8>,
        locks: Vec<LockToSave>,
        now: DateTime<Utc>,
    },
    Later(PendingGrant),
}

/// Decides an Access-Request; encodes the answer unless it waits for writes.
fn answer_access_request(
    ctx: &Arc<Context>,
    settings: &Settings,
    client: &Client,
    counters: &ClientCounters,
    request: &Request<'_>,
    read_point: ReadPoint,
) -> Answered {
    let creds = credentials(&request.packet, client.secret.as_bytes());
    // Stored times are whole milliseconds; deciding on the same grain keeps a
    // recomputation from stored values (first-login check-in) exact.
    let now = ctx.clock.now().trunc_subsecs(3);
    let login = Login {
        request,
        creds: &creds,
        arrival: Arrival { now, read_point },
    };
    match decide(ctx, settings, client, &login) {
        Ok(Decision::Now(outcome, locks, shared)) => {
            let bytes = encode_outcome(ctx, settings, client, counters, request, outcome);
            match bytes {
                Some(bytes) if !locks.is_empty() || shared => {
                    Answered::AfterLocks { bytes, locks, now }
                }
                bytes => {
                    ctx.persist_locks(locks, now, None);
                    Answered::Now(bytes)
                }
            }
        }
        Ok(Decision::Later(pending)) => Answered::Later(pending),
        // The database file gone or unwritable (the watcher has said so once): the
        // login is refused in time rather than left to time out.
        Err(_) if ctx.store.health().state() != crate::store::health::FileState::Fine => {
            let refused = Outcome::Reject(RejectReason::Unavailable);
            Answered::Now(encode_outcome(
                ctx, settings, client, counters, request, refused,
            ))
        }
        Err(e) => {
            if let Some(n) = ctx
                .drop_log
                .allow("decide_failed", std::time::Instant::now())
            {
                tracing::error!(client = %client.name, error = %e, requests = n,
                    "could not decide an Access-Request; not answering");
            }
            Answered::Now(None)
        }
    }
}

/// When a request is decided: the wall-clock time its rules are applied at, and the
/// point its datagram arrived at, which its store reads must be at least as fresh as.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    now: DateTime<Utc>,
    read_point: ReadPoint,
}

/// What an Access-Request asks, with its credentials and when it is decided.
struct Login<'a> {
    request: &'a Request<'a>,
    creds: &'a Credentials<'a>,
    arrival: Arrival,
}

/// A decided login (with the locks it started, whose rows are written before it is
/// answered), or one whose answer waits for its writes.
enum Decision {
    /// The outcome, the locks it started, and whether it shared a failure with the
    /// other servers (then, like a lock, it is answered once that is written).
    Now(Outcome, Vec<LockToSave>, bool),
    Later(PendingGrant),
}

/// Decides a login, guarded against guessing (`guard.rs`): the attempt is admitted
/// against the failure budgets of its device, account, NAS and the server before it
/// is decided, and settled after. A refused login counts against them unless the
/// device was already bound to the code it presented. While a budget other than the
/// device's is spent, only such bound devices are decided at all.
fn decide(
    ctx: &Arc<Context>,
    settings: &Settings,
    client: &Client,
    login: &Login<'_>,
) -> Result<Decision, crate::store::StoreError> {
    let now = login.arrival.now;
    let request = login.request;
    let charge = request.charge(client);
    let version = ctx.store.data_version(login.arrival.read_point)?;
    // The failures other servers on the database counted since (none on SQLite).
    ctx.guard
        .catch_up(&ctx.store, &settings.lockout, version, now)?;
    let (ticket, decided) =
        match ctx
            .guard
            .admit(&ctx.store, &settings.lockout, &charge, version, now)?
        {
            Verdict::Go(ticket) => (ticket, decide_login(ctx, settings, client, login)),
            Verdict::Refuse(reason) => {
                ctx.metrics.guard_refused(LockScope::Device);
                return Ok(Decision::Now(Outcome::Reject(reason), Vec::new(), false));
            }
            Verdict::BoundOnly {
                scope,
                reason,
                ticket,
            } => {
                // The one question asked of the code: is this device bound to it? Any
                // code, existing or not, gets the same answer when it is not, and that
                // refusal counts against the device (and account) like any other.
                let bound = match (request.device, request.code) {
                    (Some(mac), Some(name)) => ctx.store.device_bound(
                        client.business_id,
                        name,
                        request.email.is_some(),
                        mac,
                    ),
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
    let (outcome, bound) = match decided {
        Ok((outcome, bound)) => (Ok(outcome), bound),
        Err(e) => (Err(e), false),
    };
    // A login that waits for its writes has proved its code and password: it is
    // settled now, uncounted, so its place in the budgets is not held while the
    // writer works (a burst of arrivals at one NAS is not a burst of failures).
    // Should the write still refuse it (another device took the last place first),
    // that refusal is not counted: the code was right.
    let counted = matches!(outcome, Ok(Outcome::Reject(_))) && !bound;
    let locks = ctx.guard.settle(
        &settings.lockout,
        ticket,
        counted,
        &charge,
        &ctx.metrics,
        now,
    );
    match outcome {
        Ok(Outcome::Write(pending)) => {
            ctx.persist_locks(locks, now, None);
            Ok(Decision::Later(pending))
        }
        Ok(outcome) => Ok(Decision::Now(outcome, locks, counted && ctx.guard.shares())),
        Err(e) => {
            ctx.persist_locks(locks, now, None);
            Err(e)
        }
    }
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
    let (device, creds) = (login.request.device, login.creds);
    let reject = |reason| Ok((Outcome::Reject(reason), false));
    let Some(user_name) = login.request.code else {
        return reject(RejectReason::UnknownCode);
    };
    if matches!(creds, Credentials::None) {
        return reject(RejectReason::NoCredentials);
    }
    // Email + PIN: the password is a PIN, whatever the client's password mode.
    let by_email = match login.request.email {
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
    let outcome = grant_login(ctx, settings, (token, owner, usage), device, now);
    Ok((outcome, bound))
}
