//! Accounting-Request on the accounting port (RFC 2866). A record is answered only
//! once the ledger writer has committed it: an acknowledged record survives a crash.

use super::cache::{RequestKey, Seen};
use super::{Context, Responder};
use crate::config::Client;
use crate::metrics::ClientCounters;
use crate::model::Mac;
use crate::protocol::{self, Code, Packet, PacketBuilder, attr};
use crate::store::{AcctOutcome, AcctRecord, AcctStatus, LedgerWriter, TokenRef};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, watch};

/// NAS-IP-Address (RFC 2865 5.4) and Framed-IP-Address (5.8).
const NAS_IP_ADDRESS: u8 = 4;
const FRAMED_IP_ADDRESS: u8 = 8;

/// The accounting receive loop; returns when `stop` turns true.
pub(super) async fn serve(
    ctx: Arc<Context>,
    socket: Arc<UdpSocket>,
    ledger: LedgerWriter,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; protocol::MAX_PACKET_LEN];
    loop {
        let (len, source) = tokio::select! {
            _ = stop.changed() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "accounting recv_from failed; continuing");
                    continue;
                }
            },
        };
        on_datagram(
            &ctx,
            &socket,
            &ledger,
            &permits,
            &buf[..len],
            source,
            Instant::now(),
        );
    }
}

fn on_datagram(
    ctx: &Arc<Context>,
    socket: &Arc<UdpSocket>,
    ledger: &LedgerWriter,
    permits: &Arc<Semaphore>,
    datagram: &[u8],
    source: SocketAddr,
    now: Instant,
) {
    let settings = ctx.settings();
    let Some((client, counters, packet)) = ctx.admit(&settings, datagram, source, "accounting")
    else {
        return;
    };
    let responder: Arc<dyn Responder> = socket.clone();
    let to = Reply {
        responder: &responder,
        source,
        now,
    };
    on_accounting(ctx, client, counters, &packet, to, ledger, permits);
}

/// Where an accounting answer goes, and when its request arrived.
pub(super) struct Reply<'r> {
    pub responder: &'r Arc<dyn Responder>,
    pub source: SocketAddr,
    pub now: Instant,
}

/// The accounting path for a packet from `client` (found by the datagram's source
/// address, or by a RadSec connection's certificate): Status-Server and
/// Accounting-Request, answered through `to` once durable.
pub(super) fn on_accounting(
    ctx: &Arc<Context>,
    client: &Client,
    counters: &ClientCounters,
    packet: &Packet<'_>,
    to: Reply<'_>,
    ledger: &LedgerWriter,
    permits: &Arc<Semaphore>,
) {
    let Reply {
        responder,
        source,
        now,
    } = to;
    let packet = *packet;
    let secret = client.secret.as_bytes();
    if packet.code() == Code::StatusServer {
        // RFC 5997 section 3: Status-Server on the accounting port is answered with an
        // Accounting-Response (a proxy's watchdog: FreeRADIUS with
        // `status_check = status-server`).
        if ctx.status_server_authentic(&packet, client, counters, source) {
            responder.respond(&status_answer(&packet, secret), source);
        }
        return;
    }
    if packet.code() != Code::AccountingRequest {
        ctx.log_drop(
            "unexpected_code",
            source,
            &format_args!(
                "client {}: {} on the accounting port",
                client.name,
                packet.code().string()
            ),
        );
        return;
    }
    if !protocol::verify_accounting_request(&packet, secret) {
        ctx.log_drop(
            "bad_request_authenticator",
            source,
            &format_args!(
                "client {}: Accounting-Request does not authenticate (wrong secret?)",
                client.name
            ),
        );
        return;
    }
    let key = RequestKey {
        source,
        identifier: packet.identifier(),
        authenticator: *packet.authenticator(),
    };
    match ctx.acct_cache.begin(key, now) {
        Seen::New => {}
        Seen::InFlight => {
            ctx.metrics.retransmit("acct");
            return;
        }
        Seen::Answered(bytes) => {
            ctx.metrics.retransmit("acct");
            responder.respond(&bytes, source);
            return;
        }
    }
    counters.accounting_requests.inc();
    let record = record_of(
        &packet,
        &client.name,
        client.business_id,
        source.ip(),
        ctx.clock.now(),
    );
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        ctx.acct_cache.abandon(key);
        ctx.log_drop(
            "overload",
            source,
            &"too many accounting requests in flight",
        );
        return;
    };
    let reply = response(&packet, secret);
    let (ctx, responder, ledger, client_name) = (
        ctx.clone(),
        responder.clone(),
        ledger.clone(),
        client.name.clone(),
    );
    let device = record.mac;
    tokio::spawn(async move {
        let status = record.status;
        let handed_over = Instant::now();
        match ledger.record(record).await {
            Ok(outcome) => {
                ctx.metrics
                    .acct_commit
                    .observe(handed_over.elapsed().as_secs_f64());
                if let AcctOutcome::Recorded { token, .. } = outcome {
                    // The device's session counts from now on: its login's hold ends.
                    ctx.holds.release(token, device);
                }
                if let AcctOutcome::Unmatched { reason } = outcome {
                    ctx.metrics.unmatched(reason);
                    if let Some(n) = ctx.drop_log.allow("unmatched_accounting", Instant::now()) {
                        tracing::warn!(client = %client_name, reason, records = n,
                            "accounting record kept as unmatched (nothing counted): see `pinradius accounting unmatched`");
                    }
                }
                tracing::debug!(client = %client_name, ?status, ?outcome, "accounting recorded");
                ctx.acct_cache.complete(key, &reply);
                responder.respond(&reply, source);
                ctx.metrics
                    .acct_latency
                    .observe(now.elapsed().as_secs_f64());
            }
            Err(e) => {
                // Not durable, so not acknowledged: the NAS retransmits.
                ctx.acct_cache.abandon(key);
                match e {
                    // The store's watcher logs these once per interval, with the count.
                    crate::store::LedgerError::Unavailable(_) => {
                        tracing::debug!(client = %client_name, error = %e, "accounting record not stored; not acknowledging");
                    }
                    _ => {
                        if let Some(n) = ctx.drop_log.allow("accounting_not_stored", Instant::now())
                        {
                            tracing::error!(client = %client_name, error = %e, records = n,
                                "accounting record not stored; not acknowledging");
                        }
                    }
                }
            }
        }
        drop(permit);
    });
}

/// Accounting-Response (RFC 2866 4.2): no attributes but the request's Proxy-States.
/// No Message-Authenticator: RFC 2866 defines none, and implementations disagree on
/// how to compute one here (FreeRADIUS 3.2 over a zeroed authenticator, radsecproxy
/// over the request's), so whichever we chose, one proxy would reject every answer.
fn response(packet: &Packet<'_>, secret: &[u8]) -> Vec<u8> {
    let mut b =
        PacketBuilder::without_message_authenticator(Code::AccountingResponse, packet.identifier());
    protocol::copy_proxy_state(packet, &mut b);
    b.finish_accounting_response(packet.authenticator(), secret)
}

/// The answer to Status-Server on the accounting port (RFC 5997 section 3): an
/// Accounting-Response with a Message-Authenticator computed with the request's
/// authenticator, as for Access responses, and the request's Proxy-States.
fn status_answer(packet: &Packet<'_>, secret: &[u8]) -> Vec<u8> {
    let mut b =
        PacketBuilder::with_message_authenticator(Code::AccountingResponse, packet.identifier());
    protocol::copy_proxy_state(packet, &mut b);
    b.finish_response(packet.authenticator(), secret)
}

fn text<'a>(packet: &Packet<'a>, typ: u8) -> Option<&'a str> {
    packet.value(typ).and_then(|v| std::str::from_utf8(v).ok())
}

/// A 4-octet integer attribute: `None` when absent, `Err(len)` when present with
/// another length.
fn u32_of(packet: &Packet<'_>, typ: u8) -> Result<Option<u32>, usize> {
    match packet.value(typ) {
        None => Ok(None),
        Some(v) => <[u8; 4]>::try_from(v)
            .map(|b| Some(u32::from_be_bytes(b)))
            .map_err(|_| v.len()),
    }
}

fn ipv4_of(packet: &Packet<'_>, typ: u8) -> Option<String> {
    packet
        .value(typ)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(|o| Ipv4Addr::from(o).to_string())
}

/// The token a Class we issued names (`pinradius:uid=...`, or `pinradius:token=N`
/// from versions before uids).
pub fn token_from_class(class: &[u8]) -> Option<TokenRef> {
    let text = std::str::from_utf8(class).ok()?;
    if let Some(uid) = text.strip_prefix("pinradius:uid=") {
        return (uid.len() == 32 && uid.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| TokenRef::Uid(uid.to_string()));
    }
    text.strip_prefix("pinradius:token=")?
        .parse()
        .ok()
        .map(TokenRef::Id)
}

/// Reads the attributes the ledger keeps. A record that is well-formed and authentic
/// but cannot be applied (no Acct-Status-Type or an unknown one, no Acct-Session-Id,
/// an Acct-Session-Time that is not 4 octets) carries its `problem`: it is kept with
/// the unmatched records, never dropped after being acknowledged. `sender` is the
/// address the record came from (where a Disconnect-Request goes).
pub fn record_of(
    packet: &Packet<'_>,
    client: &str,
    business_id: i64,
    sender: std::net::IpAddr,
    at: chrono::DateTime<chrono::Utc>,
) -> AcctRecord {
    let mut problem = None;
    let mut malformed = |detail: String| {
        problem.get_or_insert(("malformed", detail));
    };
    let status = match u32_of(packet, attr::ACCT_STATUS_TYPE) {
        Ok(Some(code)) => AcctStatus::from_code(code).unwrap_or(AcctStatus::Other(code)),
        Ok(None) => {
            malformed("no Acct-Status-Type".into());
            AcctStatus::Other(0)
        }
        Err(len) => {
            malformed(format!("Acct-Status-Type of {len} octets"));
            AcctStatus::Other(0)
        }
    };
    let acct_session_id = text(packet, attr::ACCT_SESSION_ID)
        .unwrap_or_default()
        .to_string();
    if acct_session_id.is_empty()
        && !matches!(status, AcctStatus::AccountingOn | AcctStatus::AccountingOff)
    {
        malformed("no Acct-Session-Id".into());
    }
    let session_time = u32_of(packet, attr::ACCT_SESSION_TIME).unwrap_or_else(|len| {
        malformed(format!("Acct-Session-Time of {len} octets"));
        None
    });
    let delay = u32_of(packet, attr::ACCT_DELAY_TIME)
        .ok()
        .flatten()
        .unwrap_or(0);
    if let (None, AcctStatus::Other(code)) = (&problem, status) {
        problem = Some((
            "unknown_status",
            format!(
                "Acct-Status-Type {code} is not Start, Stop, Interim-Update, Accounting-On or -Off"
            ),
        ));
    }
    AcctRecord {
        client: client.to_string(),
        nas: super::nas_of(packet, sender).to_string(),
        business_id,
        status,
        acct_session_id,
        class: packet
            .attributes()
            .filter(|a| a.typ == attr::CLASS)
            .find_map(|a| token_from_class(a.value)),
        user_name: text(packet, attr::USER_NAME).map(str::to_string),
        mac: text(packet, attr::CALLING_STATION_ID).and_then(|s| s.parse::<Mac>().ok()),
        session_time,
        delay,
        nas_ip: ipv4_of(packet, NAS_IP_ADDRESS),
        nas_address: Some(sender.to_string()),
        framed_ip: ipv4_of(packet, FRAMED_IP_ADDRESS),
        at,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_round_trips() {
        let uid = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            token_from_class(super::super::answer::class_for_token(uid).as_bytes()),
            Some(TokenRef::Uid(uid.into()))
        );
        assert_eq!(
            token_from_class(b"pinradius:token=42"),
            Some(TokenRef::Id(42))
        );
        assert_eq!(token_from_class(b"pinradius:token=x"), None);
        assert_eq!(token_from_class(b"pinradius:uid=short"), None);
        assert_eq!(token_from_class(b"other"), None);
    }
}
