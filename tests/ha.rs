//! Two real `pinradius serve` processes on one real PostgreSQL database (a schema of
//! its own in the server `PINRADIUS_TEST_POSTGRES` names): every promise of the single
//! server holds across them. Without a test server these tests are skipped with a
//! note, except under `CI=true`, where that is a failure.

mod common;

use common::pg::Schema;
use common::{SECRET, cli, radclient, radclient_send, serve, stderr};
use pinradius::protocol::{self, Code, PacketBuilder, attr};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A shared database and the config both servers (and the CLI) use.
struct Shared {
    schema: Schema,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

/// The config for a schema of its own, `extra` appended; `None` without a test server.
fn shared(extra: &str) -> Option<Shared> {
    let Some(schema) = Schema::new() else {
        eprintln!("note: PINRADIUS_TEST_POSTGRES is not set; skipping the two-server test");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nauth_listen = \"127.0.0.1:0\"\nacct_listen = \"127.0.0.1:0\"\ndatabase = \"{}\"\n\
             [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nbusiness_id = 1\n{extra}\n",
            schema.url
        ),
    )
    .unwrap();
    let out = cli(&config, &["db", "init"]);
    assert!(out.status.success(), "db init: {}", stderr(&out));
    Some(Shared {
        schema,
        config,
        _dir: dir,
    })
}

fn create_token(config: &Path, code: &str, extra: &[&str]) {
    let mut args = vec!["token", "create", "--business-id", "1", "--code", code];
    if !extra.contains(&"--minutes") {
        args.extend_from_slice(&["--minutes", "600"]);
    }
    args.extend_from_slice(extra);
    let out = cli(config, &args);
    assert!(
        out.status.success(),
        "token create {code}: {}",
        stderr(&out)
    );
}

/// What a request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Accept,
    Reject(String),
    Nothing,
}

fn mac(n: u32) -> String {
    format!(
        "02-00-00-{:02X}-{:02X}-{:02X}",
        n >> 16,
        (n >> 8) & 0xff,
        n & 0xff
    )
}

/// A PAP login of `code` from device `mac`, built and checked with the protocol
/// module (the interop tests check the codec against radclient).
fn login(to: SocketAddr, code: &str, mac: &str) -> Answer {
    let authenticator: [u8; 16] = rand::random();
    let hidden = protocol::pap_encrypt(code.as_bytes(), SECRET.as_bytes(), &authenticator).unwrap();
    let mut b = PacketBuilder::with_message_authenticator(Code::AccessRequest, 7);
    b.add(attr::USER_NAME, code.as_bytes()).unwrap();
    b.add(attr::USER_PASSWORD, &hidden).unwrap();
    b.add(attr::CALLING_STATION_ID, mac.as_bytes()).unwrap();
    let request = b.finish_request(&authenticator, SECRET.as_bytes());
    exchange(to, &request, &authenticator)
        .map(|resp| {
            let p = protocol::validate(&resp).unwrap();
            match p.code() {
                Code::AccessAccept => Answer::Accept,
                _ => Answer::Reject(
                    p.attributes()
                        .find(|a| a.typ == attr::REPLY_MESSAGE)
                        .map(|a| String::from_utf8_lossy(a.value).into_owned())
                        .unwrap_or_default(),
                ),
            }
        })
        .unwrap_or(Answer::Nothing)
}

/// Sends `request` and waits up to 3 s for its verified answer.
fn exchange(to: SocketAddr, request: &[u8], authenticator: &[u8; 16]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(3000)))
        .unwrap();
    sock.send_to(request, to).unwrap();
    let mut buf = [0u8; 4096];
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        let Ok(resp) = protocol::validate(&buf[..len]) else {
            continue;
        };
        if resp.identifier() == request[1]
            && protocol::verify_response(&resp, authenticator, SECRET.as_bytes())
        {
            return Some(buf[..len].to_vec());
        }
    }
    None
}

/// An accounting record of session `sid` from device 02-00-00-00-00-01 for `code`.
fn accounting(status: u32, sid: &str, code: &str, seconds: u32, id: u8) -> Vec<u8> {
    let mut b = PacketBuilder::with_message_authenticator(Code::AccountingRequest, id);
    b.add_u32(attr::ACCT_STATUS_TYPE, status).unwrap();
    b.add(attr::ACCT_SESSION_ID, sid.as_bytes()).unwrap();
    b.add(attr::USER_NAME, code.as_bytes()).unwrap();
    b.add(attr::CALLING_STATION_ID, b"02-00-00-00-00-01")
        .unwrap();
    if status != 1 {
        b.add_u32(attr::ACCT_SESSION_TIME, seconds).unwrap();
    }
    b.finish_accounting_request(SECRET.as_bytes())
}

/// Sends an accounting record; true when it was acknowledged.
fn account(to: SocketAddr, request: &[u8]) -> bool {
    let authenticator: [u8; 16] = request[4..20].try_into().unwrap();
    exchange(to, request, &authenticator).is_some()
}

/// `token show CODE --json` through the CLI (on the shared database).
fn shown(config: &Path, code: &str) -> serde_json::Value {
    let out = cli(config, &["token", "show", code, "--json"]);
    assert!(out.status.success(), "token show: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn fifty_devices_racing_through_two_servers_for_the_last_place_one_wins() {
    // The 49 devices refused each round count against the NAS's and the server's
    // budgets: raised here, so the race alone is measured.
    let budgets = "[lockout]\nclient_max_failures = 100000\nserver_max_failures = 100000\n";
    let Some(db) = shared(budgets) else { return };
    let (a, b) = (serve(&db.config), serve(&db.config));
    for round in 0..20u32 {
        let code = format!("{}", 20000 + round);
        create_token(&db.config, &code, &["--device-limit", "2"]);
        // One place taken before the race, through A.
        assert_eq!(login(a.auth, &code, &mac(round << 8)), Answer::Accept);
        let answers: Vec<Answer> = std::thread::scope(|s| {
            let racers: Vec<_> = (1..=50u32)
                .map(|n| {
                    let (to, code) = (if n % 2 == 0 { a.auth } else { b.auth }, &code);
                    s.spawn(move || login(to, code, &mac(round << 8 | n)))
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let accepted = answers.iter().filter(|a| **a == Answer::Accept).count();
        assert_eq!(accepted, 1, "round {round}: {answers:?}");
        assert!(
            answers.iter().all(|a| *a == Answer::Accept
                || matches!(a, Answer::Reject(m) if m.contains("Device limit"))),
            "round {round}: {answers:?}"
        );
        assert_eq!(
            shown(&db.config, &code)["bound_devices"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}

#[test]
fn a_token_created_or_revoked_through_one_server_is_seen_by_the_other_on_the_next_request() {
    let Some(db) = shared("") else { return };
    let Some(rc) = radclient() else { return };
    let (a, b) = (serve(&db.config), serve(&db.config));
    let pap = |code: &str| {
        format!(
            "User-Name = \"{code}\"\nUser-Password = \"{code}\"\nCalling-Station-Id = \"02-00-00-00-00-09\"\nMessage-Authenticator = 0x00"
        )
    };
    // B learns that the code does not exist (and keeps that in its cache) ...
    let (ok, printed) = radclient_send(&rc, b.auth, "auth", &pap("48213"));
    assert!(!ok && printed.contains("Access-Reject"), "{printed}");
    // ... then it is created through the CLI (and, below, through A's API-less twin:
    // the CLI writes the shared database as any server does).
    create_token(&db.config, "48213", &[]);
    let (ok, printed) = radclient_send(&rc, b.auth, "auth", &pap("48213"));
    assert!(
        ok && printed.contains("Access-Accept"),
        "B on the next request: {printed}"
    );
    let (ok, _) = radclient_send(&rc, a.auth, "auth", &pap("48213"));
    assert!(ok, "A too");
    let out = cli(&db.config, &["token", "revoke", "48213"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for server in [&a, &b] {
        let (ok, printed) = radclient_send(&rc, server.auth, "auth", &pap("48213"));
        assert!(!ok && printed.contains("revoked"), "{printed}");
    }
}

#[test]
fn a_session_started_on_one_server_and_stopped_on_the_other_counts_once() {
    let Some(db) = shared("") else { return };
    let (a, b) = (serve(&db.config), serve(&db.config));
    create_token(&db.config, "31415", &[]);
    assert_eq!(login(a.auth, "31415", "02-00-00-00-00-01"), Answer::Accept);
    // The NAS fails over mid-session: Start to A, Interim to B, the Stop to both
    // (retransmitted after a timeout), and the Interim again, late, to A.
    assert!(account(a.acct, &accounting(1, "s1", "31415", 0, 1)));
    assert!(account(b.acct, &accounting(3, "s1", "31415", 300, 2)));
    let stop = accounting(2, "s1", "31415", 600, 3);
    assert!(account(b.acct, &stop));
    assert!(account(a.acct, &stop));
    assert!(account(a.acct, &accounting(3, "s1", "31415", 300, 4)));
    let token = shown(&db.config, "31415");
    assert_eq!(token["used_seconds"], 600, "{token}");
    let out = cli(&db.config, &["session", "list", "--json"]);
    let sessions: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert!(!sessions[0]["stopped_at"].is_null(), "{sessions:?}");
}

#[test]
fn failures_spread_over_both_servers_lock_the_device_at_max_failures() {
    let Some(db) = shared("[lockout]\nmax_failures = 6\n") else {
        return;
    };
    let (a, b) = (serve(&db.config), serve(&db.config));
    create_token(&db.config, "77777", &[]);
    let device = "02-00-00-00-0A-0A";
    // Six wrong codes from one device, alternating servers: the sixth locks it.
    for n in 0..6u32 {
        let to = if n % 2 == 0 { a.auth } else { b.auth };
        let answer = login(to, &format!("{}", 10000 + n), device);
        assert!(
            matches!(&answer, Answer::Reject(m) if m.contains("not valid") || m.contains("Unknown") || m.contains("unknown")),
            "guess {n}: {answer:?}"
        );
    }
    // Locked on both, even for the right code.
    for server in [&a, &b] {
        let answer = login(server.auth, "77777", device);
        assert!(
            matches!(&answer, Answer::Reject(m) if m.contains("Too many failed")),
            "{answer:?}"
        );
    }
    // Another device is not locked.
    assert_eq!(login(b.auth, "77777", "02-00-00-00-0B-0B"), Answer::Accept);
}

#[test]
fn each_revoke_sends_one_disconnect_request_though_two_servers_run() {
    let nas = UdpSocket::bind("127.0.0.1:0").unwrap();
    let coa = nas.local_addr().unwrap().port();
    let Some(db) = shared(&format!("coa_port = {coa}\n")) else {
        return;
    };
    let (a, b) = (serve(&db.config), serve(&db.config));
    // Twenty sessions, each through one of the servers.
    let codes: Vec<String> = (0..20).map(|n| format!("{}", 27100 + n)).collect();
    for (n, code) in codes.iter().enumerate() {
        let (via, device) = (if n % 2 == 0 { &a } else { &b }, mac(n as u32 + 1));
        create_token(&db.config, code, &[]);
        assert_eq!(login(via.auth, code, &device), Answer::Accept);
        let mut start = PacketBuilder::with_message_authenticator(Code::AccountingRequest, n as u8);
        start.add_u32(attr::ACCT_STATUS_TYPE, 1).unwrap();
        start
            .add(attr::ACCT_SESSION_ID, format!("d{n}").as_bytes())
            .unwrap();
        start.add(attr::USER_NAME, code.as_bytes()).unwrap();
        start
            .add(attr::CALLING_STATION_ID, device.as_bytes())
            .unwrap();
        assert!(account(
            via.acct,
            &start.finish_accounting_request(SECRET.as_bytes())
        ));
    }
    // Revoked together (both servers poll the shared queue every second).
    for code in &codes {
        let out = cli(&db.config, &["token", "revoke", code]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    // The NAS acknowledges every Disconnect-Request; count them per session.
    nas.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got: std::collections::HashMap<String, usize> = Default::default();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        if let Ok((len, from)) = nas.recv_from(&mut buf) {
            let request = protocol::validate(&buf[..len]).unwrap();
            assert_eq!(request.code(), Code::DisconnectRequest);
            let sid = request
                .attributes()
                .find(|a| a.typ == attr::ACCT_SESSION_ID)
                .map(|a| String::from_utf8_lossy(a.value).into_owned())
                .unwrap_or_default();
            *got.entry(sid).or_default() += 1;
            let auth: [u8; 16] = buf[4..20].try_into().unwrap();
            let ack = PacketBuilder::without_message_authenticator(Code::DisconnectACK, buf[1])
                .finish_response(&auth, SECRET.as_bytes());
            nas.send_to(&ack, from).unwrap();
        }
    }
    assert_eq!(got.len(), 20, "every session: {got:?}");
    assert!(got.values().all(|n| *n == 1), "each once: {got:?}");
}

#[test]
fn sigkill_of_one_server_during_an_accounting_burst_loses_nothing_acknowledged() {
    let Some(db) = shared("") else { return };
    create_token(&db.config, "12345", &["--minutes", "100000"]);
    let mut a = serve(&db.config);
    let b = serve(&db.config);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..8u32)
        .map(|t| {
            let (acked, stop) = (acked.clone(), stop.clone());
            // Half the senders go to A, half to B.
            let to = if t % 2 == 0 { a.acct } else { b.acct };
            std::thread::spawn(move || {
                for n in 0u32.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let sid = format!("t{t}-{n}");
                    if account(to, &accounting(2, &sid, "12345", 1, (n % 256) as u8)) {
                        acked.lock().unwrap().push(sid);
                    } else if to == a.acct {
                        return; // A is gone
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acked.lock().unwrap().len() < 400 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    a.child.kill().unwrap(); // SIGKILL, mid-burst
    a.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500)); // B goes on meanwhile
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 400,
        "the burst was acknowledged: {}",
        acked.len()
    );
    let stored = stopped_sessions(&db.schema);
    common::assert_none_lost(&acked, &stored);
    // A starts again on the same database and the ledger adds up.
    let a = serve(&db.config);
    assert!(account(a.acct, &accounting(2, "after", "12345", 1, 1)));
    // Every acknowledged second counted once; records A committed but was killed
    // before acknowledging may count too (their NAS would send them again).
    let used = shown(&db.config, "12345")["used_seconds"].as_u64().unwrap();
    let sent = stopped_sessions(&db.schema).len() as u64;
    assert_eq!(used, sent, "each stored record counted once");
    assert!(used > acked.len() as u64, "{used} {}", acked.len());
}

/// The Acct-Session-Ids of the stopped sessions in the schema, read directly.
fn stopped_sessions(schema: &Schema) -> std::collections::HashSet<String> {
    let url = schema.url.clone();
    std::thread::spawn(move || {
        let mut client = url
            .parse::<postgres::Config>()
            .unwrap()
            .connect(postgres::NoTls)
            .unwrap();
        client
            .query(
                "SELECT acct_session_id FROM sessions WHERE session_time = 1 AND stopped_at IS NOT NULL",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    })
    .join()
    .unwrap()
}

/// A TCP relay to the PostgreSQL test server that a test can cut (every connection
/// reset, new ones refused) and restore: the database unreachable and back.
struct Relay {
    addr: SocketAddr,
    on: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn to(upstream: SocketAddr) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            on: Arc::new(AtomicBool::new(true)),
            open: Arc::default(),
        };
        let (on, open) = (relay.on.clone(), relay.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !on.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is closed at once
                }
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let mut open = open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        relay
    }

    fn cut(&self) {
        self.on.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.on.store(true, Ordering::SeqCst);
    }
}

#[test]
fn the_database_unreachable_refuses_in_time_acknowledges_nothing_and_service_resumes() {
    let Some(db) = shared("") else { return };
    let server: postgres::Config = common::pg::server_url().unwrap().parse().unwrap();
    let (host, port) = match (&server.get_hosts()[0], server.get_ports()[0]) {
        (postgres::config::Host::Tcp(h), p) => (h.clone(), p),
        other => panic!("a TCP test server: {other:?}"),
    };
    let relay = Relay::to(format!("{host}:{port}").parse().unwrap());
    let via_relay = std::fs::read_to_string(&db.config)
        .unwrap()
        .replace(&format!("{host}:{port}"), &relay.addr.to_string());
    std::fs::write(&db.config, &via_relay).unwrap();

    // Unreachable at start: a clear error, naming the database, not a hang.
    relay.cut();
    let started = Instant::now();
    let out = cli(&db.config, &["serve"]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("database") && said.contains(&relay.addr.to_string()),
        "{said}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    relay.restore();

    create_token(&db.config, "48213", &[]);
    // A code with a simultaneous-use limit holds its places in the database.
    create_token(&db.config, "48214", &["--user-limit", "2"]);
    let a = serve(&db.config);
    let (bound, new) = ("02-00-00-00-00-01", "02-00-00-00-00-02");
    for code in ["48213", "48214"] {
        assert_eq!(login(a.auth, code, bound), Answer::Accept);
        assert_eq!(login(a.auth, code, bound), Answer::Accept, "cached");
    }

    relay.cut();
    // The bound device is decided from memory; a first login needs the database and
    // is refused in time; accounting is not acknowledged.
    let started = Instant::now();
    assert_eq!(login(a.auth, "48213", bound), Answer::Accept);
    assert_eq!(
        login(a.auth, "48214", bound),
        Answer::Accept,
        "held in memory meanwhile"
    );
    assert_eq!(
        login(a.auth, "48213", new),
        Answer::Reject("Wi-Fi login is briefly unavailable; please try again in a moment".into())
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !account(a.acct, &accounting(1, "u1", "48213", 0, 1)),
        "acknowledged"
    );
    a.wait_for_log("cannot be reached");

    // Back: the same requests succeed, without a restart.
    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    while login(a.auth, "48213", new) != Answer::Accept {
        assert!(Instant::now() < deadline, "service did not resume");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(account(a.acct, &accounting(1, "u1", "48213", 0, 2)));
    assert!(account(a.acct, &accounting(2, "u1", "48213", 60, 3)));
    assert_eq!(shown(&db.config, "48213")["used_seconds"], 60);
}

#[test]
fn devices_racing_through_two_servers_for_one_simultaneous_use_place_one_wins() {
    let budgets = "[lockout]\nclient_max_failures = 100000\nserver_max_failures = 100000\n";
    let Some(db) = shared(budgets) else { return };
    let (a, b) = (serve(&db.config), serve(&db.config));
    for round in 0..5u32 {
        let code = format!("{}", 30000 + round);
        create_token(&db.config, &code, &["--user-limit", "1"]);
        let answers: Vec<Answer> = std::thread::scope(|s| {
            let racers: Vec<_> = (1..=20u32)
                .map(|n| {
                    let (to, code) = (if n % 2 == 0 { a.auth } else { b.auth }, &code);
                    s.spawn(move || login(to, code, &mac(round << 8 | n)))
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let winners: Vec<u32> = (1..=20u32)
            .zip(&answers)
            .filter(|(_, a)| **a == Answer::Accept)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
        assert!(
            answers.iter().all(|a| *a == Answer::Accept
                || matches!(a, Answer::Reject(m) if m.contains("Simultaneous-use"))),
            "round {round}: {answers:?}"
        );
        // The winner's session starts and ends (through the other server): the place
        // is free again for another device.
        let winner = mac(round << 8 | winners[0]);
        let record = |status: u32, seconds: u32, id: u8| {
            let mut r = PacketBuilder::with_message_authenticator(Code::AccountingRequest, id);
            r.add_u32(attr::ACCT_STATUS_TYPE, status).unwrap();
            r.add(attr::ACCT_SESSION_ID, format!("h{round}").as_bytes())
                .unwrap();
            r.add(attr::USER_NAME, code.as_bytes()).unwrap();
            r.add(attr::CALLING_STATION_ID, winner.as_bytes()).unwrap();
            if status == 2 {
                r.add_u32(attr::ACCT_SESSION_TIME, seconds).unwrap();
            }
            r.finish_accounting_request(SECRET.as_bytes())
        };
        assert!(account(a.acct, &record(1, 0, 1)));
        assert!(
            matches!(login(b.auth, &code, &mac(round << 8 | 99)), Answer::Reject(m) if m.contains("Simultaneous-use"))
        );
        assert!(account(b.acct, &record(2, 30, 2)));
        assert_eq!(login(b.auth, &code, &mac(round << 8 | 99)), Answer::Accept);
    }
}
