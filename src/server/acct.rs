//! Accounting-Request on the accounting port (RFC 2866). A record is answered only
//! once the ledger writer has committed it: an acknowledged record survives a crash.

use super::Context;
use super::cache::{RequestKey, Seen};
use crate::model::Mac;
use crate::protocol::{self, Code, Packet, PacketBuilder, attr};
use crate::store::{AcctRecord, AcctStatus, LedgerWriter};
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
    let secret = client.secret.as_bytes();
    if packet.code() == Code::StatusServer {
        // RFC 5997 section 3: Status-Server on the accounting port is answered with an
        // Accounting-Response, when it carries a valid Message-Authenticator (a
        // proxy's watchdog: FreeRADIUS with `status_check = status-server`).
        if protocol::verify_message_authenticator(&packet, secret, None) != Some(true) {
            ctx.log_drop(
                "bad_message_authenticator",
                source,
                &format_args!(
                    "client {}: Status-Server without a valid Message-Authenticator",
                    client.name
                ),
            );
            return;
        }
        counters.status_server.inc();
        let _ = socket.try_send_to(&status_answer(&packet, secret), source);
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
            let _ = socket.try_send_to(&bytes, source);
            return;
        }
    }
    counters.accounting_requests.inc();
    let record = match record_of(
        &packet,
        &client.name,
        client.business_id,
        source.ip(),
        ctx.clock.now(),
    ) {
        Ok(r) => r,
        Err(why) => {
            // Well-formed and authentic but not something we keep (an unknown
            // Acct-Status-Type, no Acct-Session-Id): acknowledge so the NAS moves on.
            tracing::info!(client = %client.name, %source, "accounting record not kept: {why}");
            let bytes = response(&packet, secret);
            ctx.acct_cache.complete(key, &bytes);
            let _ = socket.try_send_to(&bytes, source);
            return;
        }
    };
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
    let (ctx, socket, ledger, client_name) = (
        ctx.clone(),
        socket.clone(),
        ledger.clone(),
        client.name.clone(),
    );
    tokio::spawn(async move {
        let status = record.status;
        let handed_over = Instant::now();
        match ledger.record(record).await {
            Ok(outcome) => {
                ctx.metrics
                    .acct_commit
                    .observe(handed_over.elapsed().as_secs_f64());
                tracing::debug!(client = %client_name, ?status, ?outcome, "accounting recorded");
                ctx.acct_cache.complete(key, &reply);
                if let Err(e) = socket.send_to(&reply, source).await {
                    tracing::debug!(%source, error = %e, "send_to failed");
                }
                ctx.metrics
                    .acct_latency
                    .observe(now.elapsed().as_secs_f64());
            }
            Err(e) => {
                // Not durable, so not acknowledged: the NAS retransmits.
                ctx.acct_cache.abandon(key);
                tracing::error!(client = %client_name, error = %e, "accounting record not stored; not acknowledging");
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

fn u32_of(packet: &Packet<'_>, typ: u8) -> Option<u32> {
    packet
        .value(typ)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(u32::from_be_bytes)
}

fn ipv4_of(packet: &Packet<'_>, typ: u8) -> Option<String> {
    packet
        .value(typ)
        .and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(|o| Ipv4Addr::from(o).to_string())
}

/// The token id in a Class we issued (`pinradius:token=N`).
pub fn token_from_class(class: &[u8]) -> Option<i64> {
    std::str::from_utf8(class)
        .ok()?
        .strip_prefix("pinradius:token=")?
        .parse()
        .ok()
}

/// Reads the attributes the ledger keeps. `Err` names why the record is not kept.
/// `sender` is the address the record came from (where a Disconnect-Request goes).
pub fn record_of(
    packet: &Packet<'_>,
    client: &str,
    business_id: i64,
    sender: std::net::IpAddr,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<AcctRecord, String> {
    let code = u32_of(packet, attr::ACCT_STATUS_TYPE).ok_or("no Acct-Status-Type")?;
    let status = AcctStatus::from_code(code).ok_or_else(|| {
        format!("Acct-Status-Type {code} is not Start, Stop, Interim-Update, Accounting-On or -Off")
    })?;
    let acct_session_id = text(packet, attr::ACCT_SESSION_ID)
        .unwrap_or_default()
        .to_string();
    if acct_session_id.is_empty()
        && !matches!(status, AcctStatus::AccountingOn | AcctStatus::AccountingOff)
    {
        return Err("no Acct-Session-Id".into());
    }
    Ok(AcctRecord {
        client: client.to_string(),
        business_id,
        status,
        acct_session_id,
        token_id: packet
            .attributes()
            .filter(|a| a.typ == attr::CLASS)
            .find_map(|a| token_from_class(a.value)),
        user_name: text(packet, attr::USER_NAME).map(str::to_string),
        mac: text(packet, attr::CALLING_STATION_ID).and_then(|s| s.parse::<Mac>().ok()),
        session_time: u32_of(packet, attr::ACCT_SESSION_TIME),
        nas_ip: ipv4_of(packet, NAS_IP_ADDRESS),
        nas_address: Some(sender.to_string()),
        framed_ip: ipv4_of(packet, FRAMED_IP_ADDRESS),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_round_trips() {
        assert_eq!(
            token_from_class(super::super::auth::class_for_token(42).as_bytes()),
            Some(42)
        );
        assert_eq!(token_from_class(b"pinradius:token=x"), None);
        assert_eq!(token_from_class(b"other"), None);
    }
}
