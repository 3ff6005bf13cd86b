//! RADIUS over TLS (RFC 6614, on RFC 6613's RADIUS over TCP): the transport only.
//! A NAS connects with a certificate signed by `[radsec] client_ca`; the
//! `[[client]]` whose `certificate_name` the certificate carries (and whose `address`
//! holds the peer) is who it is; every packet then takes the same path as a UDP
//! datagram from that client (`process_auth_packet`, `on_accounting`), with the fixed
//! secret "radsec" for its authenticators and attribute hiding.
//!
//! The stream is a sequence of packets, each delimited by its Length (RFC 6613 section
//! 2.1); one that is not a valid RADIUS packet closes the connection (section 2.6.4).
//! Many requests may be in flight on a connection and are answered in any order (a
//! first login when its writes are done). Connections are bounded in number, in
//! handshakes in progress, in handshake time, and closed when idle.

use super::acct::{Reply, on_accounting};
use super::auth::{Arrived, Processed, process_auth_packet};
use super::{Context, Responder};
use crate::config::{RadsecLimits, certificate_names};
use crate::protocol::{self, Code};
use crate::store::LedgerWriter;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

/// Answers waiting to be written on one connection, at most; beyond, the connection
/// is not keeping up (its NAS is not reading) and it is closed.
const ANSWERS_QUEUED: usize = 1024;

/// Access-Requests of one connection being decided at once, at most.
const MAX_IN_FLIGHT: usize = 256;
/// How long a closing connection's answers may take to go out.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends a connection's answers to its writer task.
struct Connection {
    answers: mpsc::Sender<Vec<u8>>,
    /// Set when the queue was full: the reader then closes the connection.
    overflow: Arc<AtomicBool>,
}

impl Responder for Connection {
    fn respond(&self, answer: &[u8], _to: SocketAddr) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.answers.try_send(answer.to_vec()) {
            self.overflow.store(true, Ordering::Relaxed);
        }
    }
}

/// Accepts connections until `stopped`; each is served by a task of its own.
pub(super) async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    limits: RadsecLimits,
    ledger: LedgerWriter,
    permits: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes));
    loop {
        let (stream, peer) = tokio::select! {
            () = stop(&mut stopped) => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: wait a moment rather than spin.
                    ctx.log_drop("radsec_accept", listener.local_addr().unwrap_or(([0, 0, 0, 0], 0).into()),
                        &format_args!("accept failed: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = connections.clone().try_acquire_owned() else {
            ctx.metrics.radsec_connection("limit");
            ctx.log_drop(
                "radsec_connection_limit",
                peer,
                &format_args!(
                    "RadSec connection refused: {} open (radsec.max_connections)",
                    limits.max_connections
                ),
            );
            drop(stream);
            continue;
        };
        let (ctx, handshakes, ledger, permits, stopped) = (
            ctx.clone(),
            handshakes.clone(),
            ledger.clone(),
            permits.clone(),
            stopped.clone(),
        );
        tokio::spawn(async move {
            connection(
                ctx, stream, peer, limits, handshakes, ledger, permits, stopped,
            )
            .await;
            drop(slot);
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    ctx: Arc<Context>,
    stream: TcpStream,
    peer: SocketAddr,
    limits: RadsecLimits,
    handshakes: Arc<Semaphore>,
    ledger: LedgerWriter,
    permits: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Some(tls) = ctx.settings().radsec_tls.clone() else {
        return;
    };
    // The handshake, within its time and among at most max_handshakes at once.
    let handshake = async {
        let _turn = handshakes.acquire().await.ok()?;
        tokio_rustls::TlsAcceptor::from(tls)
            .accept(stream)
            .await
            .ok()
    };
    let Ok(Some(stream)) = tokio::time::timeout(limits.handshake_timeout, handshake).await else {
        ctx.metrics.radsec_connection("handshake_failed");
        ctx.log_drop(
            "radsec_handshake",
            peer,
            &"RadSec handshake failed or timed out (no certificate, one from another CA, expired, or not TLS)",
        );
        return;
    };
    let names = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| certificate_names(leaf))
        .unwrap_or_default();
    let settings = ctx.settings();
    let Some((client, _)) = settings.clients.find_radsec(peer.ip(), &names) else {
        ctx.metrics.radsec_connection("unknown_client");
        ctx.log_drop(
            "radsec_unknown_client",
            peer,
            &format_args!(
                "RadSec connection closed: certificate names {names:?} from {} match no [[client]] certificate_name and address",
                peer.ip()
            ),
        );
        return;
    };
    let client_name = client.name.clone();
    ctx.metrics.radsec_connection("accepted");
    tracing::info!(client = %client_name, %peer, "RadSec connection");
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (answers, mut queued) = mpsc::channel::<Vec<u8>>(ANSWERS_QUEUED);
    let overflow = Arc::new(AtomicBool::new(false));
    let responder: Arc<dyn Responder> = Arc::new(Connection {
        answers,
        overflow: overflow.clone(),
    });
    // The writer outlives the reader: answers decided after the NAS stopped sending
    // (first logins waiting for their writes, records being committed) still go out.
    let writer = tokio::spawn(async move {
        while let Some(answer) = queued.recv().await {
            if writer.write_all(&answer).await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let why = async {
        let mut buf = vec![0u8; protocol::MAX_PACKET_LEN];
        loop {
            let header = tokio::select! {
                () = stop(&mut stopped) => return "shutting down",
                r = tokio::time::timeout(limits.idle_timeout, reader.read_exact(&mut buf[..4])) => r,
            };
            match header {
                Err(_) => return "idle",
                Ok(Err(_)) => return "closed by the NAS",
                Ok(Ok(_)) => {}
            }
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            if !(protocol::HEADER_LEN..=protocol::MAX_PACKET_LEN).contains(&len) {
                return "a packet Length out of range";
            }
            let body = reader.read_exact(&mut buf[4..len]);
            if !matches!(tokio::time::timeout(limits.idle_timeout, body).await, Ok(Ok(_))) {
                return "closed or stalled mid-packet";
            }
            let Ok(packet) = protocol::validate(&buf[..len]) else {
                return "a malformed packet";
            };
            // RFC 6613 section 2.6.4: over TCP a packet UDP would silently discard for a
            // failed authenticator closes the connection (the NAS would otherwise wait
            // for an answer on it forever).
            let secret = crate::config::RADSEC_SECRET.as_bytes();
            let authentic = match packet.code() {
                Code::AccountingRequest => protocol::verify_accounting_request(&packet, secret),
                _ => protocol::verify_message_authenticator(&packet, secret, None) != Some(false),
            };
            if !authentic {
                return "a packet whose authenticator does not verify";
            }
            if overflow.load(Ordering::Relaxed) {
                return "its answers are not being read";
            }
            // The settings now (a reload may have changed or removed this client).
            let settings = ctx.settings();
            let Some((client, counters)) = settings.clients.find_radsec(peer.ip(), &names) else {
                return "its client is no longer configured";
            };
            let now = Instant::now();
            match packet.code() {
                Code::AccessRequest | Code::StatusServer => {
                    // At most MAX_IN_FLIGHT decisions of this connection at once: past
                    // that, reading waits (TCP pushes back on the NAS).
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        return "shutting down";
                    };
                    let (ctx, settings, client, counters, responder) = (
                        ctx.clone(),
                        settings.clone(),
                        client.clone(),
                        counters.clone(),
                        responder.clone(),
                    );
                    let datagram = buf[..len].to_vec();
                    // The decision may read SQLite: off the async workers.
                    tokio::task::spawn_blocking(move || {
                        let at = Arrived {
                            source: peer,
                            received: now,
                            read_point: ctx.store.read_point(),
                        };
                        // The reader validated these bytes; they moved here with the work.
                        let Ok(packet) = protocol::validate(&datagram) else {
                            return;
                        };
                        if let Processed::Answer(a) = process_auth_packet(
                            &ctx, &settings, &client, &counters, &responder, packet, at,
                        ) {
                            responder.respond(&a.bytes, peer);
                            if a.decided {
                                ctx.metrics
                                    .auth_latency
                                    .observe(now.elapsed().as_secs_f64());
                            }
                        }
                        drop(permit);
                    });
                }
                Code::AccountingRequest => {
                    let to = Reply {
                        responder: &responder,
                        source: peer,
                        now,
                    };
                    on_accounting(&ctx, client, counters, &packet, to, &ledger, &permits);
                }
                other => ctx.log_drop(
                    "unexpected_code",
                    peer,
                    &format_args!(
                        "client {} (RadSec): {} is not taken",
                        client.name,
                        other.string()
                    ),
                ),
            }
        }
    }
    .await;
    drop(responder);
    let mut writer = writer;
    tokio::select! {
        _ = &mut writer => {}
        () = tokio::time::sleep(DRAIN) => {
            writer.abort();
            tracing::debug!(client = %client_name, %peer, "RadSec answers still queued after {DRAIN:?}; closed");
        }
    }
    tracing::debug!(client = %client_name, %peer, "RadSec connection ended: {why}");
}

/// Resolves when the server is stopping (the guard `wait_for` returns is dropped
/// inside, so the futures that select on this stay `Send`).
async fn stop(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}
