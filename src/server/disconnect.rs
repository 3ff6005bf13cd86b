//! Sends the queued Disconnect-Requests (RFC 5176) to the NAS that holds each session
//! and records the answer. The queue is a table (see `store/disconnects.rs`) filled
//! in the same transaction as the change that ends the session, by this process or an
//! admin command in another; this task polls it every second, and is woken at once
//! by changes made in-process (the HTTP API, the reaper). Each row is claimed before
//! it is sent, so of several servers sharing the database one sends it.

use super::Context;
use crate::config::Client;
use crate::protocol::{self, Code, PacketBuilder, attr};
use crate::store::DisconnectRow;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// How often the queue is read when nothing wakes the task.
const POLL: Duration = Duration::from_secs(1);
/// Rows taken from the queue per read.
const BATCH: usize = 64;
/// How much longer than its sends a claim on a queued disconnect lasts.
const CLAIM_MARGIN: Duration = Duration::from_secs(5);
/// Framed-IP-Address (RFC 2865 5.8) and Error-Cause (RFC 5176 3.5).
const FRAMED_IP_ADDRESS: u8 = 8;
const ERROR_CAUSE: u8 = 101;
/// Error-Cause 503: the NAS has no such session (it already ended).
const SESSION_CONTEXT_NOT_FOUND: u32 = 503;

pub(super) async fn run(ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
            _ = ctx.disconnect_wake.notified() => {}
        }
        // Claimed for as long as sending them may take, and a margin: another server
        // on the same database takes over a claim only once it ran out (this one died).
        let settings = ctx.settings();
        let lease = settings.disconnect.timeout * settings.disconnect.attempts + CLAIM_MARGIN;
        let (store, now) = (ctx.store.clone(), ctx.clock.now());
        let rows =
            match tokio::task::spawn_blocking(move || store.claim_disconnects(BATCH, now, lease))
                .await
            {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the disconnect queue");
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "disconnect queue task failed");
                    continue;
                }
            };
        for row in rows {
            if !in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(row.id)
            {
                continue;
            }
            let (ctx, in_flight) = (ctx.clone(), in_flight.clone());
            tokio::spawn(async move {
                let id = row.id;
                disconnect(&ctx, row).await;
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
            });
        }
    }
}

/// How one Disconnect-Request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Ack,
    /// Disconnect-NAK with its Error-Cause, if any.
    Nak(Option<u32>),
    /// No valid answer after every attempt.
    Timeout,
}

/// Sends one queued disconnect (or decides it need not be sent) and records the end.
async fn disconnect(ctx: &Arc<Context>, row: DisconnectRow) {
    let settings = ctx.settings();
    let target = settings
        .clients
        .by_name(&row.client)
        .map(|c| (c.clone(), nas_address(c, &row)));
    let (result, label, session_over): (String, &'static str, bool) = if !settings
        .disconnect
        .enabled
    {
        ("disabled".into(), "disabled", false)
    } else if blocking(ctx, {
        let id = row.session_id;
        move |s| s.session_stopped_by_nas(id)
    })
    .await
    .unwrap_or(false)
    {
        ("already_stopped".into(), "already_stopped", false)
    } else {
        match target {
            None => (
                format!(
                    "no_address: client {:?} is no longer configured",
                    row.client
                ),
                "no_address",
                false,
            ),
            // RFC 5176 over UDP with RadSec's public secret would be forgeable by
            // anyone: a RadSec NAS's sessions are not disconnected that way.
            Some((client, _)) if client.certificate_name.is_some() => (
                format!(
                    "not_sent: client {:?} is a RadSec client; Disconnect-Request over UDP with the public secret \"radsec\" is not sent",
                    row.client
                ),
                "radsec_client",
                false,
            ),
            Some((_, None)) => (
                format!(
                    "no_address: client {:?} is a network and the NAS address is unknown",
                    row.client
                ),
                "no_address",
                false,
            ),
            Some((client, Some(ip))) => {
                let to = SocketAddr::new(ip, client.coa_port);
                let request = disconnect_request(&row, &client);
                match send(
                    &request,
                    to,
                    &client,
                    settings.disconnect.timeout,
                    settings.disconnect.attempts,
                )
                .await
                {
                    Ok(Answer::Ack) => (format!("ack from {to}"), "ack", true),
                    Ok(Answer::Nak(cause)) => (
                        format!(
                            "nak from {to}: {}",
                            cause.map_or("no Error-Cause".into(), error_cause_text)
                        ),
                        "nak",
                        cause == Some(SESSION_CONTEXT_NOT_FOUND),
                    ),
                    Ok(Answer::Timeout) => (
                        format!(
                            "timeout: no answer from {to} after {} attempt(s)",
                            settings.disconnect.attempts
                        ),
                        "timeout",
                        false,
                    ),
                    Err(e) => (format!("error: {e}"), "error", false),
                }
            }
        }
    };
    let user = row
        .user_name
        .as_deref()
        .map(crate::model::mask_code)
        .unwrap_or_else(|| "-".into());
    match label {
        "ack" | "already_stopped" | "disabled" => tracing::info!(
            client = %row.client, session = %crate::model::LogSafe(&row.acct_session_id), user = %user, reason = %row.reason,
            "disconnect: {result}"
        ),
        _ => tracing::warn!(
            client = %row.client, session = %crate::model::LogSafe(&row.acct_session_id), user = %user, reason = %row.reason,
            "disconnect: {result}"
        ),
    }
    ctx.metrics
        .disconnects
        .get_or_create(&crate::metrics::ResultLabel { result: label })
        .inc();
    let now = ctx.clock.now();
    let (id, session) = (row.id, row.session_id);
    if let Err(e) = blocking(ctx, move |s| {
        s.finish_disconnect(id, session, &result, session_over, now)
    })
    .await
    {
        tracing::error!(error = %e, "cannot record the end of a disconnect");
    }
}

async fn blocking<T: Send + 'static>(
    ctx: &Arc<Context>,
    f: impl FnOnce(&crate::store::Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, String> {
    let store = ctx.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Where the NAS is: the address its accounting came from; else the NAS-IP-Address
/// it reported, if inside the client's network; else the client's address when it is
/// a single host.
fn nas_address(client: &Client, row: &DisconnectRow) -> Option<IpAddr> {
    let parse = |s: &Option<String>| s.as_deref().and_then(|s| s.parse::<IpAddr>().ok());
    parse(&row.nas_address)
        .filter(|ip| client.network.contains(ip))
        .or_else(|| parse(&row.nas_ip).filter(|ip| client.network.contains(ip)))
        .or_else(|| {
            (client.network.prefix_len() == client.network.max_prefix_len())
                .then(|| client.network.addr())
        })
}

/// The Disconnect-Request for a session (RFC 5176 3): User-Name, Acct-Session-Id,
/// Framed-IP-Address and Calling-Station-Id identify it; Message-Authenticator first.
pub fn disconnect_request(row: &DisconnectRow, client: &Client) -> Vec<u8> {
    let mut b =
        PacketBuilder::with_message_authenticator(Code::DisconnectRequest, rand::random::<u8>());
    // Each value fits an attribute (they came from one), so adding cannot fail.
    if let Some(u) = &row.user_name {
        let _ = b.add(attr::USER_NAME, u.as_bytes());
    }
    let _ = b.add(attr::ACCT_SESSION_ID, row.acct_session_id.as_bytes());
    if let Some(ip) = row
        .framed_ip
        .as_deref()
        .and_then(|s| s.parse::<std::net::Ipv4Addr>().ok())
    {
        let _ = b.add(FRAMED_IP_ADDRESS, &ip.octets());
    }
    if let Some(mac) = &row.mac {
        let _ = b.add(attr::CALLING_STATION_ID, mac.as_bytes());
    }
    b.finish_accounting_request(client.secret.as_bytes())
}

/// Sends `request` to `to` up to `attempts` times, `timeout` apart (the same packet
/// each time: a retransmission, RFC 5176 2.3), until an authentic ACK or NAK arrives.
pub async fn send(
    request: &[u8],
    to: SocketAddr,
    client: &Client,
    timeout: Duration,
    attempts: u32,
) -> std::io::Result<Answer> {
    let bind: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    let socket = UdpSocket::bind(bind).await?;
    let authenticator: [u8; 16] = request[4..20].try_into().expect("a packet has a header");
    let identifier = request[1];
    let mut buf = vec![0u8; protocol::MAX_PACKET_LEN];
    for _ in 0..attempts {
        socket.send_to(request, to).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
            else {
                break;
            };
            let Ok((n, from)) = received else { continue };
            if from.ip() != to.ip() {
                continue;
            }
            let Ok(p) = protocol::validate(&buf[..n]) else {
                continue;
            };
            if p.identifier() != identifier
                || !protocol::verify_response(&p, &authenticator, client.secret.as_bytes())
            {
                continue;
            }
            match p.code() {
                Code::DisconnectACK => return Ok(Answer::Ack),
                Code::DisconnectNAK => {
                    let cause = p
                        .value(ERROR_CAUSE)
                        .and_then(|v| <[u8; 4]>::try_from(v).ok())
                        .map(u32::from_be_bytes);
                    return Ok(Answer::Nak(cause));
                }
                _ => continue,
            }
        }
    }
    Ok(Answer::Timeout)
}

/// RFC 5176 section 3.5 Error-Cause values.
fn error_cause_text(code: u32) -> String {
    let name = match code {
        201 => "Residual Session Context Removed",
        202 => "Invalid EAP Packet",
        401 => "Unsupported Attribute",
        402 => "Missing Attribute",
        403 => "NAS Identification Mismatch",
        404 => "Invalid Request",
        405 => "Unsupported Service",
        406 => "Unsupported Extension",
        407 => "Invalid Attribute Value",
        501 => "Administratively Prohibited",
        502 => "Request Not Routable (Proxy)",
        503 => "Session Context Not Found",
        504 => "Session Context Not Removable",
        505 => "Other Proxy Processing Error",
        506 => "Resources Unavailable",
        507 => "Request Initiated",
        508 => "Multiple Session Selection Unsupported",
        _ => "unknown",
    };
    format!("Error-Cause {code} ({name})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(address: &str) -> Client {
        let text = format!(
            "[server]\n[[client]]\nname = \"nas\"\naddress = \"{address}\"\nsecret = \"s3cret-s3cret-s3cret\"\nbusiness_id = 1\n"
        );
        crate::config::Config::from_toml(std::path::Path::new("p.toml"), &text)
            .unwrap()
            .clients
            .remove(0)
    }

    fn row() -> DisconnectRow {
        DisconnectRow {
            id: 1,
            session_id: 7,
            client: "nas".into(),
            nas_address: None,
            nas_ip: None,
            user_name: Some("48213".into()),
            acct_session_id: "81a00003".into(),
            framed_ip: Some("10.5.50.7".into()),
            mac: Some("AA:BB:CC:DD:EE:01".into()),
            reason: "revoked".into(),
            requested_at: chrono::DateTime::default(),
            finished_at: None,
            result: None,
        }
    }

    #[test]
    fn the_nas_address_comes_from_accounting_then_the_client() {
        let mut r = row();
        assert_eq!(
            nas_address(&client("192.168.88.1"), &r),
            Some("192.168.88.1".parse().unwrap())
        );
        assert_eq!(nas_address(&client("10.10.0.0/16"), &r), None);
        r.nas_ip = Some("10.10.3.4".into());
        assert_eq!(
            nas_address(&client("10.10.0.0/16"), &r),
            Some("10.10.3.4".parse().unwrap())
        );
        r.nas_address = Some("10.10.9.9".into());
        assert_eq!(
            nas_address(&client("10.10.0.0/16"), &r),
            Some("10.10.9.9".parse().unwrap())
        );
        // A reported NAS-IP-Address outside the client's network is not trusted.
        r.nas_address = None;
        r.nas_ip = Some("8.8.8.8".into());
        assert_eq!(nas_address(&client("10.10.0.0/16"), &r), None);
    }

    #[test]
    fn request_identifies_the_session_and_authenticates() {
        let c = client("192.168.88.1");
        let bytes = disconnect_request(&row(), &c);
        let p = protocol::validate(&bytes).unwrap();
        assert_eq!(p.code(), Code::DisconnectRequest);
        assert_eq!(bytes[20], attr::MESSAGE_AUTHENTICATOR, "first attribute");
        assert!(protocol::verify_accounting_request(&p, c.secret.as_bytes()));
        assert_eq!(p.value(attr::USER_NAME), Some(&b"48213"[..]));
        assert_eq!(p.value(attr::ACCT_SESSION_ID), Some(&b"81a00003"[..]));
        assert_eq!(p.value(FRAMED_IP_ADDRESS), Some(&[10, 5, 50, 7][..]));
        assert_eq!(
            p.value(attr::CALLING_STATION_ID),
            Some(&b"AA:BB:CC:DD:EE:01"[..])
        );
        assert!(!protocol::verify_accounting_request(&p, b"wrong"));
    }
}
