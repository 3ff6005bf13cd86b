//! Test harness: a pinradius server started in-process on 127.0.0.1 port 0 with a
//! temporary database and a fixed clock, and a RADIUS client over real UDP.
//!
//! The same tests run twice: on SQLite (the `e2e` binary) and on PostgreSQL (the
//! `e2e_postgres` binary, which includes these files), each server on a schema of its
//! own in the server `PINRADIUS_TEST_POSTGRES` names.
//!
//! The client builds and checks packets with the `radius` crate and its own HMAC code,
//! not with `pinradius::protocol`, so a bug in our codec cannot hide itself.

#![allow(dead_code)]

use crate::common;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac as _};
use md5::Md5;
use pinradius::clock::FixedClock;
use pinradius::config::Config;
use pinradius::server::Server;
use pinradius::store::Store;
use radius::core::avp::AVP;
use radius::core::code::Code;
use radius::core::packet::Packet;
use radius::core::{rfc2865, rfc2866};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

pub const SECRET: &str = "e2e-shared-secret-0123456789";

/// The fixed "now" every test starts at.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

pub struct Harness {
    /// The running server's shared state (to run the reaper by hand).
    pub ctx: Arc<pinradius::server::Context>,
    pub store: Arc<Store>,
    pub clock: Arc<FixedClock>,
    pub auth: SocketAddr,
    pub acct: SocketAddr,
    /// The HTTP API, when the config has `[http]`.
    pub http: Option<SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
    /// The PostgreSQL schema this server's data is in (dropped with the harness).
    _schema: Option<common::pg::Schema>,
}

/// Whether this binary runs the tests on PostgreSQL.
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME") == "e2e_postgres"
}

impl Harness {
    /// A server with one client (127.0.0.1, business 1) and `extra` appended to its
    /// config (e.g. `[visitors]` settings).
    pub async fn start(extra: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // Without a test server (and not under CI, where that fails) the PostgreSQL
        // binary runs on SQLite, and says so.
        let schema = on_postgres().then(common::pg::Schema::new).flatten();
        if on_postgres() && schema.is_none() {
            eprintln!("PINRADIUS_TEST_POSTGRES is not set: this e2e_postgres test runs on SQLite");
        }
        let database = schema
            .as_ref()
            .map_or("t.db".to_string(), |s| s.url.clone());
        let text = format!(
            "[server]\nauth_listen = \"127.0.0.1:0\"\nacct_listen = \"127.0.0.1:0\"\ndatabase = \"{database}\"\n\
             [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nbusiness_id = 1\n{extra}\n"
        );
        let config = Config::from_toml(&dir.path().join("p.toml"), &text).unwrap();
        let store = Arc::new(Store::open_database(&config.database).unwrap());
        let clock = Arc::new(FixedClock::new(t0()));
        let server = Server::bind(&config, store.clone(), clock.clone())
            .await
            .unwrap();
        let (auth, acct) = (server.auth_addr().unwrap(), server.acct_addr().unwrap());
        let http = server.http_addr();
        let ctx = server.context().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Harness {
            ctx,
            store,
            clock,
            auth,
            acct,
            http,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
            _schema: schema,
        }
    }

    pub fn db_path(&self) -> &Path {
        self.store.path()
    }

    /// Runs one statement on the server's database directly (`$1` parameters), as an
    /// operator's SQL would.
    pub fn sql(&self, sql: &str, args: &[&dyn pinradius::store::sql::Arg]) {
        self.store.execute_sql(sql, args).unwrap();
    }

    /// Stops the server and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
    }
}

/// Client socket on 127.0.0.1 port 0.
pub struct Client {
    sock: UdpSocket,
}

impl Client {
    pub async fn new() -> Client {
        Client {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    /// Sends `request` and waits up to 2 s for the answer with its identifier.
    pub async fn exchange(&self, to: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
        self.sock.send_to(request, to).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            match tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) if n >= 20 && buf[1] == request[1] => {
                    return Some(buf[..n].to_vec());
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

fn hmac_md5(data: &[u8]) -> [u8; 16] {
    let mut m = <Hmac<Md5> as hmac::Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Encodes an Access-Request and inserts a Message-Authenticator as the first
/// attribute (computed here, RFC 3579 3.2).
fn encode_with_message_authenticator(p: Packet) -> Vec<u8> {
    let bytes = p.encode().unwrap();
    let mut out = bytes[..20].to_vec();
    out.extend_from_slice(&[80, 18]);
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&bytes[20..]);
    let len = out.len() as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    let ma = hmac_md5(&out);
    out[22..38].copy_from_slice(&ma);
    out
}

/// An Access-Request: User-Name = code, PAP password, optional Calling-Station-Id.
pub fn pap(code: &str, password: &str, mac: Option<&str>) -> Vec<u8> {
    let mut p = Packet::new(Code::AccessRequest, SECRET.as_bytes());
    rfc2865::add_user_name(&mut p, code);
    rfc2865::add_user_password(&mut p, password.as_bytes()).unwrap();
    if let Some(m) = mac {
        rfc2865::add_calling_station_id(&mut p, m);
    }
    encode_with_message_authenticator(p)
}

/// An Accounting-Request (no Message-Authenticator; RFC 2866 does not need one).
pub fn acct(
    status: u32,
    session: &str,
    code: &str,
    mac: &str,
    session_time: Option<u32>,
    class: Option<&[u8]>,
) -> Vec<u8> {
    let mut p = Packet::new(Code::AccountingRequest, SECRET.as_bytes());
    rfc2866::add_acct_status_type(&mut p, status);
    rfc2866::add_acct_session_id(&mut p, session);
    rfc2865::add_user_name(&mut p, code);
    rfc2865::add_calling_station_id(&mut p, mac);
    if let Some(t) = session_time {
        rfc2866::add_acct_session_time(&mut p, t);
    }
    if let Some(c) = class {
        p.add(AVP::from_bytes(rfc2865::CLASS_TYPE, c));
    }
    p.encode().unwrap()
}

/// A Status-Server (RFC 5997) with a Message-Authenticator and the given Proxy-States.
pub fn status_server(proxy_states: &[&[u8]]) -> Vec<u8> {
    let mut p = Packet::new(Code::StatusServer, SECRET.as_bytes());
    for s in proxy_states {
        p.add(AVP::from_bytes(33, s));
    }
    encode_with_message_authenticator(p)
}

/// An Accounting-Request as [`acct`] makes it, with Proxy-States appended.
pub fn acct_with_proxy_states(status: u32, session: &str, code: &str, states: &[&[u8]]) -> Vec<u8> {
    let mut p = Packet::new(Code::AccountingRequest, SECRET.as_bytes());
    rfc2866::add_acct_status_type(&mut p, status);
    rfc2866::add_acct_session_id(&mut p, session);
    rfc2865::add_user_name(&mut p, code);
    for s in states {
        p.add(AVP::from_bytes(33, s));
    }
    p.encode().unwrap()
}

/// A checked reply: Response Authenticator (radius crate) and Message-Authenticator
/// (our own HMAC) both verified against the request, or the test fails.
pub struct Reply {
    pub code: Code,
    pub packet: Packet,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn check(request: &[u8], response: Vec<u8>) -> Reply {
        assert!(
            Packet::is_authentic_response(&response, request, SECRET.as_bytes()),
            "Response Authenticator does not verify"
        );
        let packet = Packet::decode(&response, SECRET.as_bytes()).unwrap();
        if packet.get_code() == Code::AccountingResponse && request[0] != 12 {
            // RFC 2866 defines no Message-Authenticator for Accounting-Response, and
            // proxies disagree on how to compute one: none is sent.
            assert!(
                packet.lookup(80).is_none(),
                "no Message-Authenticator in an Accounting-Response"
            );
            return Reply {
                code: packet.get_code(),
                packet,
                bytes: response,
            };
        }
        // Message-Authenticator: first attribute, HMAC over the reply with the Request
        // Authenticator in the header (RFC 3579 3.2; Status-Server answers on either
        // port alike, RFC 5997 3).
        assert_eq!(
            response[20], 80,
            "Message-Authenticator is the first attribute"
        );
        let mut copy = response.clone();
        copy[22..38].fill(0);
        copy[4..20].copy_from_slice(&request[4..20]);
        assert_eq!(
            hmac_md5(&copy),
            response[22..38],
            "Message-Authenticator does not verify"
        );
        Reply {
            code: packet.get_code(),
            packet,
            bytes: response,
        }
    }

    pub fn session_timeout(&self) -> Option<u32> {
        rfc2865::lookup_session_timeout(&self.packet).map(|r| r.unwrap())
    }

    pub fn reply_message(&self) -> String {
        rfc2865::lookup_reply_message(&self.packet)
            .map(|r| r.unwrap())
            .unwrap_or_default()
    }

    pub fn class(&self) -> Option<Vec<u8>> {
        rfc2865::lookup_class(&self.packet)
    }
}

/// Sends `request` to `to` and returns the checked reply, or `None` without one.
pub async fn ask(to: SocketAddr, request: Vec<u8>) -> Option<Reply> {
    let c = Client::new().await;
    c.exchange(to, &request)
        .await
        .map(|r| Reply::check(&request, r))
}

/// An Access-Request with CHAP (RFC 2865 5.3): CHAP-Password = ident +
/// MD5(ident + password + challenge), the challenge in CHAP-Challenge when given,
/// else the Request Authenticator.
pub fn chap(code: &str, password: &str, challenge: Option<[u8; 16]>, mac: Option<&str>) -> Vec<u8> {
    use md5::Digest;
    let mut p = Packet::new(Code::AccessRequest, SECRET.as_bytes());
    rfc2865::add_user_name(&mut p, code);
    let ident = 0x2a;
    let used_challenge =
        challenge.unwrap_or_else(|| p.get_authenticator().as_slice().try_into().unwrap());
    let mut md5 = Md5::new();
    md5.update([ident]);
    md5.update(password.as_bytes());
    md5.update(used_challenge);
    let mut value = vec![ident];
    value.extend_from_slice(&md5.finalize());
    rfc2865::add_chap_password(&mut p, &value);
    if let Some(c) = challenge {
        rfc2865::add_chap_challenge(&mut p, &c);
    }
    if let Some(m) = mac {
        rfc2865::add_calling_station_id(&mut p, m);
    }
    encode_with_message_authenticator(p)
}

/// A PAP Access-Request without Message-Authenticator.
pub fn pap_without_message_authenticator(code: &str, password: &str) -> Vec<u8> {
    let mut p = Packet::new(Code::AccessRequest, SECRET.as_bytes());
    rfc2865::add_user_name(&mut p, code);
    rfc2865::add_user_password(&mut p, password.as_bytes()).unwrap();
    p.encode().unwrap()
}

/// Sends raw bytes and reports whether anything came back within 400 ms.
pub async fn answered(to: SocketAddr, bytes: &[u8]) -> bool {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(bytes, to).await.unwrap();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_millis(400), sock.recv_from(&mut buf))
        .await
        .is_ok()
}
