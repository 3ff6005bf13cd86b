//! RADIUS over TLS (issue 17), against the real binary. radsecproxy 1.9 plays the NAS
//! that speaks RadSec (radclient sends it UDP; it forwards over one TLS connection with
//! its client certificate); a rustls client plays the NASes that must be refused.
//! Certificates are made with rcgen: a test CA, the server's, a NAS's, and a NAS's
//! from another CA, expired, or with a name no client has.

mod common;

use common::{cli, create_token, radclient, radsecproxy, stdout};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A certificate and its key, as PEM.
struct Made {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Made {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    Made {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// A leaf signed by `issuer`: `cn`, subjectAltName DNS `dns` (if any) and IP
/// 127.0.0.1, valid from `from` to `to` (days from now).
fn leaf(issuer: &Made, cn: &str, dns: Option<&str>, days: (i64, i64)) -> Made {
    let mut p =
        CertificateParams::new(dns.map(str::to_string).into_iter().collect::<Vec<_>>()).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.distinguished_name.push(DnType::CommonName, cn);
    let (y, m, d) = day(days.0);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = day(days.1);
    p.not_after = rcgen::date_time_ymd(y, m, d);
    let key = KeyPair::generate().unwrap();
    Made {
        cert: p.signed_by(&key, &issuer.cert, &issuer.key).unwrap(),
        key,
    }
}

/// The date `n` days from today (UTC): year, month, day.
fn day(n: i64) -> (i32, u8, u8) {
    use chrono::Datelike;
    let d = chrono::Utc::now() + chrono::Duration::days(n);
    (d.year(), d.month() as u8, d.day() as u8)
}

fn write(dir: &Path, name: &str, made: &Made) {
    std::fs::write(dir.join(format!("{name}.pem")), made.cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), made.key.serialize_pem()).unwrap();
}

/// Every certificate the tests use, in `dir`.
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let test_ca = ca("pinradius test CA");
    let other_ca = ca("another CA");
    write(dir, "ca", &test_ca);
    write(
        dir,
        "server",
        &leaf(
            &test_ca,
            "pinradius-server",
            Some("radius.example.net"),
            (-1, 2),
        ),
    );
    write(
        dir,
        "lobby",
        &leaf(&test_ca, "lobby", Some("lobby.example.net"), (-1, 2)),
    );
    write(
        dir,
        "stranger",
        &leaf(&test_ca, "stranger", Some("stranger.example.net"), (-1, 2)),
    );
    write(
        dir,
        "expired",
        &leaf(&test_ca, "lobby", Some("lobby.example.net"), (-10, -1)),
    );
    write(
        dir,
        "foreign",
        &leaf(&other_ca, "lobby", Some("lobby.example.net"), (-1, 2)),
    );
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// pinradius with a RadSec listener and a RadSec client `lobby` (certificate name
/// lobby.example.net), plus the UDP client the helpers add.
fn radsec_config(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    common::write_config(
        dir,
        &format!(
            "[[client]]\nname = \"lobby\"\naddress = \"127.0.0.1\"\ncertificate_name = \"lobby.example.net\"\nbusiness_id = 1\n\
             [radsec]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"certs/server.pem\"\nprivate_key = \"certs/server.key\"\n\
             client_ca = \"certs/ca.pem\"\n{extra}\n"
        ),
    )
}

/// A rustls client with the certificate `name` from `certs`: connects, sends one
/// Status-Server (secret "radsec") and returns whether a verified answer came.
fn status_over_tls(certs: &Path, name: &str, port: u16) -> bool {
    status_over_tls_signed(certs, name, port, b"radsec")
}

/// The same, the Status-Server signed with `secret`.
fn status_over_tls_signed(certs: &Path, name: &str, port: u16, secret: &[u8]) -> bool {
    use pinradius::protocol::{self, Code, PacketBuilder};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs.join("ca.pem")).unwrap())
        .unwrap();
    let chain = vec![CertificateDer::from_pem_file(certs.join(format!("{name}.pem"))).unwrap()];
    let key = PrivateKeyDer::from_pem_file(certs.join(format!("{name}.key"))).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    let server = ServerName::try_from("127.0.0.1").unwrap();
    let Ok(conn) = rustls::ClientConnection::new(Arc::new(config), server) else {
        return false;
    };
    let Ok(sock) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let authenticator = [7u8; 16];
    let request = PacketBuilder::with_message_authenticator(Code::StatusServer, 9)
        .finish_request(&authenticator, secret);
    if tls.write_all(&request).is_err() {
        return false;
    }
    let mut header = [0u8; 4];
    if tls.read_exact(&mut header).is_err() {
        return false;
    }
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut answer = header.to_vec();
    answer.resize(len, 0);
    if tls.read_exact(&mut answer[4..]).is_err() {
        return false;
    }
    protocol::validate(&answer).is_ok_and(|p| {
        p.code() == Code::AccessAccept && protocol::verify_response(&p, &authenticator, b"radsec")
    })
}

/// A pinradius with RadSec, its certificates, port and config.
struct Setup {
    dir: tempfile::TempDir,
    certs: std::path::PathBuf,
    port: u16,
    config: std::path::PathBuf,
    server: common::Running,
}

/// Makes the certificates and starts pinradius with `extra` in `[radsec]`.
fn start(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    certificates(&certs);
    let port = free_tcp_port();
    let config = radsec_config(dir.path(), port, extra);
    let server = common::serve(&config);
    Setup {
        dir,
        certs,
        port,
        config,
        server,
    }
}

#[test]
fn only_a_nas_with_a_known_certificate_from_the_ca_is_served() {
    let Setup {
        dir: _dir,
        certs,
        port,
        server,
        ..
    } = start("");
    assert!(
        server
            .wait_for_log("pinradius listening")
            .contains(&format!("radsec=127.0.0.1:{port}"))
    );
    assert!(
        status_over_tls(&certs, "lobby", port),
        "the lobby's own certificate"
    );
    assert!(
        !status_over_tls(&certs, "foreign", port),
        "a certificate from another CA"
    );
    assert!(
        !status_over_tls(&certs, "expired", port),
        "an expired certificate"
    );
    assert!(
        !status_over_tls(&certs, "stranger", port),
        "a name no client has"
    );
    server.wait_for_log("match no [[client]] certificate_name");
    // A plain TCP client and a garbage stream disturb nobody else.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .unwrap();
    assert!(status_over_tls(&certs, "lobby", port));
    // It gets a TLS alert at most, then the connection is closed.
    plain
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut rest = Vec::new();
    assert!(
        plain.read_to_end(&mut rest).is_ok(),
        "closed, not left open: {rest:?}"
    );
}

#[test]
fn a_thousand_idle_connections_are_bounded() {
    raise_open_file_limit();
    let Setup {
        dir: _dir,
        certs,
        port,
        server,
        ..
    } = start("max_connections = 100\nmax_handshakes = 10\nhandshake_timeout_seconds = 2\n");
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(idle.len() >= 900, "{} connected", idle.len());
    // Past the limit they are closed at once; the rest when their handshake times out.
    std::thread::sleep(Duration::from_millis(300));
    // Closed: end of stream or a reset; still open: the read times out.
    let closed = |streams: &[TcpStream]| {
        streams
            .iter()
            .filter(|s| {
                s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
                let mut buf = [0u8; 1];
                match (&**s).read(&mut buf) {
                    Ok(n) => n == 0,
                    Err(e) => !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                }
            })
            .count()
    };
    assert!(
        closed(&idle) >= idle.len() - 100,
        "{} of {} closed at once",
        closed(&idle),
        idle.len()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !status_over_tls(&certs, "lobby", port) {
        assert!(Instant::now() < deadline, "the listener did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.log_count("radsec.max_connections") >= 1);
    drop(idle);
}

/// Open files for this test process: a thousand sockets need more than a default 1,024.
fn raise_open_file_limit() {
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let _ = nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        hard.min(65_536),
        hard,
    );
}

/// radsecproxy 1.9 as the NAS's RadSec side: UDP in from radclient, RadSec out to
/// pinradius with the lobby's certificate, Status-Server as its watchdog.
const NAS_SIDE_CONF: &str = r#"
ListenUDP 127.0.0.1:@LISTEN@
LogLevel 5
tls radsec {
    CACertificateFile "@CERTS@/ca.pem"
    CertificateFile "@CERTS@/lobby.pem"
    CertificateKeyFile "@CERTS@/lobby.key"
}
client nas {
    type udp
    host 127.0.0.1
    secret @SECRET@
}
server pinradius {
    type tls
    host 127.0.0.1
    port @PORT@
    tls radsec
    secret radsec
    StatusServer on
    CertificateNameCheck off
    MatchCertificateAttribute SubjectAltName:DNS:/^radius\.example\.net$/
}
realm * {
    server pinradius
    accountingServer pinradius
}
"#;

#[test]
fn radsecproxy_logs_in_and_accounts_over_tls() {
    let Some(rc) = radclient() else { return };
    let Some(proxy) = radsecproxy() else { return };
    let Setup {
        dir,
        certs,
        port,
        config,
        server,
    } = start("");
    create_token(&config, "48213", 60);
    let listen = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("nas-side.conf");
    std::fs::write(
        &conf,
        NAS_SIDE_CONF
            .replace("@LISTEN@", &listen.to_string())
            .replace("@CERTS@", &certs.display().to_string())
            .replace("@SECRET@", common::SECRET)
            .replace("@PORT@", &port.to_string()),
    )
    .unwrap();
    let mut child = Command::new(proxy)
        .args(["-f", "-c"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _proxy = Kill(std::mem::replace(
        &mut child,
        Command::new("true").spawn().unwrap(),
    ));
    let to: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();
    let ask = |kind: &str, attrs: &str| common::radclient_send_within(&rc, to, kind, attrs, 3);
    // PAP, until radsecproxy has its connection up.
    let deadline = Instant::now() + Duration::from_secs(15);
    let pap = "User-Name = \"48213\", User-Password = \"48213\", Calling-Station-Id = \"aa-bb-cc-00-00-01\", Message-Authenticator = 0x00";
    let accepted = loop {
        let (_, out) = ask("auth", pap);
        if out.contains("Access-Accept") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(accepted.contains("Access-Accept"), "{accepted}");
    assert!(accepted.contains("Session-Timeout"), "{accepted}");
    // CHAP.
    let (_, chap) = ask(
        "auth",
        "User-Name = \"48213\", CHAP-Password = \"48213\", Calling-Station-Id = \"aa-bb-cc-00-00-01\", Message-Authenticator = 0x00",
    );
    assert!(chap.contains("Access-Accept"), "{chap}");
    // A refusal with its Reply-Message.
    let (_, reject) = ask(
        "auth",
        "User-Name = \"99999\", User-Password = \"99999\", Calling-Station-Id = \"aa-bb-cc-00-00-02\", Message-Authenticator = 0x00",
    );
    assert!(reject.contains("Access-Reject"), "{reject}");
    assert!(reject.contains("Unknown or wrong access code"), "{reject}");
    // Start, Interim-Update, Stop: answered, and counted once.
    for (status, time) in [("Start", 0), ("Interim-Update", 60), ("Stop", 120)] {
        let (_, out) = ask(
            "acct",
            &format!(
                "Acct-Status-Type = {status}, Acct-Session-Id = \"tls-1\", User-Name = \"48213\", Calling-Station-Id = \"aa-bb-cc-00-00-01\", Acct-Session-Time = {time}"
            ),
        );
        assert!(out.contains("Accounting-Response"), "{status}: {out}");
    }
    let sessions = stdout(&cli(&config, &["session", "list", "--json"]));
    let list: Vec<serde_json::Value> = serde_json::from_str(&sessions).unwrap();
    let s = list
        .iter()
        .find(|s| s["acct_session_id"] == "tls-1")
        .unwrap();
    assert_eq!(s["session_time"], 120, "{s:#}");
    assert_eq!(s["client"], "lobby", "{s:#}");
    assert!(!s["stopped_at"].is_null(), "{s:#}");
    // Its logins and records came over RadSec from the lobby client.
    assert!(server.log_count("RadSec connection") >= 1);
}

#[test]
fn certificates_are_reloaded_on_sighup() {
    let Setup {
        dir: _dir,
        certs,
        port,
        config,
        server,
    } = start("");
    assert!(status_over_tls(&certs, "lobby", port));
    for ext in ["pem", "key"] {
        std::fs::copy(
            certs.join(format!("lobby.{ext}")),
            certs.join(format!("old-lobby.{ext}")),
        )
        .unwrap();
    }
    // A new CA, and new server and NAS certificates from it, in the same files.
    certificates(&certs);
    server.signal("HUP");
    server.wait_for_log("configuration reloaded");
    assert!(
        status_over_tls(&certs, "lobby", port),
        "the new certificate"
    );
    assert!(
        !status_over_tls(&certs, "old-lobby", port),
        "the old CA is no longer trusted"
    );
    let checked = cli(&config, &["check-config"]);
    assert!(checked.status.success(), "{}", common::stderr(&checked));
}
