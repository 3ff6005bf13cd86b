//! The load generator over RadSec (RFC 6614): one TLS connection with a client
//! certificate, `window` Access-Requests in flight on it (at most 256: one per
//! identifier), each answered one sent, for `duration`. The same requests as over UDP
//! (fresh authenticators, PAP, Message-Authenticator), with the secret "radsec".

use super::{BenchOptions, BenchReport, build, percentiles};
use crate::protocol::{self, Code};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// The NAS's certificate, its key, and the CA that signed the server's.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub ca: PathBuf,
    /// The name the server's certificate must carry; none: the target's address.
    pub server_name: Option<String>,
}

fn pem_error(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("{what} {}: {e}", path.display()))
}

/// Runs the load over one RadSec connection to `o.target`.
pub fn run(o: &BenchOptions, files: &TlsFiles) -> std::io::Result<BenchReport> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in
        CertificateDer::pem_file_iter(&files.ca).map_err(|e| pem_error("--tls-ca", &files.ca, e))?
    {
        roots
            .add(ca.map_err(|e| pem_error("--tls-ca", &files.ca, e))?)
            .map_err(|e| pem_error("--tls-ca", &files.ca, e))?;
    }
    let chain = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error("--tls-cert", &files.certificate, e))?;
    let key = PrivateKeyDer::from_pem_file(&files.private_key)
        .map_err(|e| pem_error("--tls-key", &files.private_key, e))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_root_certificates(roots)
    // The server's name is not checked against the target address: the load tool
    // trusts the CA it was given.
    .with_client_auth_cert(chain, key)
    .map_err(std::io::Error::other)?;
    let name = match &files.server_name {
        Some(n) => ServerName::try_from(n.clone())
            .map_err(|e| std::io::Error::other(format!("--tls-name {n}: {e}")))?,
        None => ServerName::from(o.target.ip()),
    };
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let sock = TcpStream::connect(o.target)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(o.timeout))?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let secret = b"radsec";
    let o = BenchOptions {
        secret: "radsec".into(),
        ..o.clone()
    };
    let window = o.window.clamp(1, 256) as usize;
    let mut sent_at: Vec<Option<(Instant, [u8; 16])>> = vec![None; 256];
    let mut report = BenchReport::default();
    let mut latencies = Vec::with_capacity(1 << 20);
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let start = Instant::now();
    let deadline = start + o.duration;
    let mut seq = 0u64;
    let mut send = |tls: &mut rustls::StreamOwned<_, _>,
                    id: u8,
                    sent_at: &mut Vec<Option<(Instant, [u8; 16])>>,
                    report: &mut BenchReport|
     -> std::io::Result<()> {
        let mut authenticator = [0u8; 16];
        let request = build(&o, id, seq, &mut authenticator, &mut rng);
        seq += 1;
        tls.write_all(&request)?;
        sent_at[usize::from(id)] = Some((Instant::now(), authenticator));
        report.sent += 1;
        Ok(())
    };
    for id in 0..window {
        send(&mut tls, id as u8, &mut sent_at, &mut report)?;
    }
    let mut buf = [0u8; protocol::MAX_PACKET_LEN];
    let mut in_flight = window;
    while in_flight > 0 {
        if tls.read_exact(&mut buf[..4]).is_err() {
            report.lost += in_flight as u64;
            break;
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if !(protocol::HEADER_LEN..=protocol::MAX_PACKET_LEN).contains(&len)
            || tls.read_exact(&mut buf[4..len]).is_err()
        {
            report.lost += in_flight as u64;
            break;
        }
        in_flight -= 1;
        let Ok(answer) = protocol::validate(&buf[..len]) else {
            report.bad += 1;
            continue;
        };
        let id = answer.identifier();
        let Some((at, authenticator)) = sent_at[usize::from(id)].take() else {
            report.bad += 1;
            continue;
        };
        if !protocol::verify_response(&answer, &authenticator, secret) {
            report.bad += 1;
        } else if answer.code() == Code::AccessAccept {
            report.accepts += 1;
        } else {
            report.rejects += 1;
        }
        latencies.push(u32::try_from(at.elapsed().as_micros()).unwrap_or(u32::MAX));
        if Instant::now() < deadline {
            send(&mut tls, id, &mut sent_at, &mut report)?;
            in_flight += 1;
        }
    }
    report.elapsed = start
        .elapsed()
        .min(o.duration)
        .max(std::time::Duration::from_millis(1));
    percentiles(&mut report, latencies);
    Ok(report)
}
