//! `pinradius probe`: is the server of this config answering? A Status-Server (RFC
//! 5997) to its `auth_listen`, sent from 127.0.0.1 with the secret of the `[[client]]`
//! that covers 127.0.0.1, and the answer verified. The container image's HEALTHCHECK,
//! and a check an operator can run on the box itself.

use crate::config::Config;
use crate::protocol::{self, Code, PacketBuilder};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "{config}: no [[client]] covers 127.0.0.1, so the server would drop a probe from this machine: add one (address = \"127.0.0.1\")"
    )]
    NoLoopbackClient { config: String },
    #[error("probe: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "no answer from {target} within {waited:?} (is `pinradius serve` running with this config?)"
    )]
    NoAnswer {
        target: SocketAddr,
        waited: Duration,
    },
    #[error(
        "the answer from {target} does not verify: is the loopback client's secret the server's?"
    )]
    BadAnswer { target: SocketAddr },
}

/// Sends a Status-Server to the config's auth port; the round trip when answered.
pub fn probe(config: &Config, wait: Duration) -> Result<Duration, ProbeError> {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // The client the server would match a datagram from 127.0.0.1 to: its own table.
    let clients = crate::server::ClientTable::new(&config.clients, &crate::metrics::Metrics::new());
    let (client, _) = clients
        .find(loopback)
        .ok_or_else(|| ProbeError::NoLoopbackClient {
            config: config.path.display().to_string(),
        })?;
    let mut target = config.auth_listen;
    if target.ip().is_unspecified() {
        target.set_ip(loopback);
    }
    let secret = client.secret.as_bytes();
    let socket = UdpSocket::bind(SocketAddr::new(loopback, 0))?;
    let authenticator: [u8; 16] = rand::random();
    let identifier: u8 = rand::random();
    let request = PacketBuilder::with_message_authenticator(Code::StatusServer, identifier)
        .finish_request(&authenticator, secret);
    let started = Instant::now();
    socket.send_to(&request, target)?;
    let mut buf = [0u8; protocol::MAX_PACKET_LEN];
    loop {
        let left = wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(ProbeError::NoAnswer {
                target,
                waited: wait,
            });
        }
        socket.set_read_timeout(Some(left))?;
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ProbeError::NoAnswer {
                    target,
                    waited: wait,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let Ok(answer) = protocol::validate(&buf[..n]) else {
            continue;
        };
        if from != target || answer.identifier() != identifier {
            continue;
        }
        if !protocol::verify_response(&answer, &authenticator, secret) {
            return Err(ProbeError::BadAnswer { target });
        }
        return Ok(started.elapsed());
    }
}
