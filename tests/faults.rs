//! Faults an operator or an attacker brings (issue 15), against the real binary.

mod common;

use common::{cli, create_token, radclient, radclient_send, serve_with, write_config};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// `GET /metrics`: the status, or `None` when the connection is refused or closed.
fn metrics_status(http: SocketAddr) -> Option<u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    agent
        .get(format!("http://{http}/metrics"))
        .call()
        .ok()
        .map(|r| r.status().as_u16())
}

/// The HTTP listener's address, from the server's listening line.
fn http_addr(server: &common::Running) -> SocketAddr {
    server
        .wait_for_log("pinradius listening")
        .split("http=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap()
}

/// One line of `GET /metrics` that starts with `name`.
fn metric(http: SocketAddr, name: &str) -> Option<String> {
    let body = ureq::get(format!("http://{http}/metrics"))
        .call()
        .ok()?
        .into_body()
        .read_to_string()
        .ok()?;
    body.lines()
        .find(|l| l.starts_with(name))
        .map(str::to_string)
}

#[test]
fn a_slow_connection_flood_is_bounded_and_starves_neither_radius_nor_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[http]\nlisten = \"127.0.0.1:0\"\nmax_connections = 40\nheader_timeout_seconds = 2\n",
    );
    create_token(&config, "48213", 60);
    // 128 open files at most: 500 idle connections would take them all without the
    // connection limit (and SQLite could open no more connections).
    let mut command = std::process::Command::new("sh");
    command.arg("-c").arg(format!(
        "ulimit -n 128 && exec {} --config {} serve",
        common::bin(),
        config.display()
    ));
    let server = serve_with(command);
    let http = http_addr(&server);
    assert_eq!(metrics_status(http), Some(200));
    // 500 connections that never send a request.
    let flood: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect(http).ok())
        .collect();
    assert!(flood.len() > 40, "{} connections", flood.len());
    std::thread::sleep(Duration::from_millis(300));
    // RADIUS answers (a first-use login writes to SQLite) while the flood holds.
    if let Some(rc) = radclient() {
        let (ok, out) = radclient_send(
            &rc,
            server.auth,
            "auth",
            "User-Name = \"48213\", User-Password = \"48213\", Calling-Station-Id = \"aa-bb-cc-00-00-01\", Message-Authenticator = 0x00",
        );
        assert!(ok, "a login during the flood: {out}");
    }
    // Connections past the limit were closed at once; the others are cut off after
    // the header timeout, and the API answers again.
    let closed_at_once = flood
        .iter()
        .filter(|s| {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut buf = [0u8; 1];
            matches!((&**s).read(&mut buf), Ok(0))
        })
        .count();
    assert!(
        closed_at_once >= flood.len() - 40,
        "{closed_at_once} of {} closed",
        flood.len()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics_status(http) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the API did not come back after the header timeout"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.log_count("HTTP connection refused") >= 1);
    drop(flood);
    assert!(cli(&config, &["token", "show", "48213"]).status.success());
}

/// What radclient heard back.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    Accept,
    /// An Access-Reject and its Reply-Message.
    Reject(String),
    /// An Accounting-Response.
    Ack,
    Nothing,
}

/// Sends one request with radclient (one try, `wait_seconds` for the answer).
fn send(rc: &std::path::Path, to: SocketAddr, kind: &str, attrs: &str, wait_seconds: u32) -> Heard {
    let (_, out) = common::radclient_send_within(rc, to, kind, attrs, wait_seconds);
    if out.contains("Received Access-Accept") {
        Heard::Accept
    } else if out.contains("Received Access-Reject") {
        Heard::Reject(common::printed(&out, "Reply-Message").unwrap_or_default())
    } else if out.contains("Received Accounting-Response") {
        Heard::Ack
    } else {
        Heard::Nothing
    }
}

fn login(rc: &std::path::Path, to: SocketAddr, code: &str, mac: u8, wait_seconds: u32) -> Heard {
    let attrs = format!(
        "User-Name = \"{code}\", User-Password = \"{code}\", Calling-Station-Id = \"aa-bb-cc-00-00-{mac:02x}\", Message-Authenticator = 0x00"
    );
    send(rc, to, "auth", &attrs, wait_seconds)
}

fn acct_start(rc: &std::path::Path, to: SocketAddr, session: &str) -> Heard {
    let attrs = format!(
        "Acct-Status-Type = Start, Acct-Session-Id = \"{session}\", User-Name = \"48213\", Calling-Station-Id = \"aa-bb-cc-00-00-01\""
    );
    send(rc, to, "acct", &attrs, 1)
}

const UNAVAILABLE: &str = "Wi-Fi login is briefly unavailable; please try again in a moment";

/// Waits up to 10 s for the `n`th log line containing `needle`.
fn wait_for_count(server: &common::Running, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log_count(needle) < n {
        assert!(
            Instant::now() < deadline,
            "no {n}th log line with {needle:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Holds the database's write lock from another connection (as the sqlite3 shell or
/// a long import would) for `hold`; returns once it is held.
fn hold_write_lock(db: std::path::PathBuf, hold: Duration) -> std::thread::JoinHandle<()> {
    let (held, is_held) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        held.send(()).unwrap();
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
    });
    is_held.recv().unwrap();
    holder
}

#[test]
fn a_held_write_lock_stops_no_login_and_first_logins_are_answered_in_time() {
    let Some(rc) = radclient() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let db = dir.path().join("p.db");
    create_token(&config, "48213", 60);
    create_token(&config, "55555", 60);
    let server = common::serve(&config);
    assert_eq!(login(&rc, server.auth, "48213", 1, 2), Heard::Accept);
    // The lock held for 4 s, past the 1.5 s a login may wait for it
    // ([server] login_write_wait_ms): the bound device and Status-Server are answered
    // while it is held, and a first login is refused in time, uncounted.
    let holder = hold_write_lock(db.clone(), Duration::from_secs(4));
    let started = Instant::now();
    assert_eq!(login(&rc, server.auth, "48213", 1, 1), Heard::Accept);
    let status = send(
        &rc,
        server.auth,
        "status",
        "Message-Authenticator = 0x00",
        1,
    );
    assert_eq!(status, Heard::Accept, "Status-Server");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered while the lock is held"
    );
    assert_eq!(
        login(&rc, server.auth, "55555", 2, 3),
        Heard::Reject(UNAVAILABLE.into())
    );
    assert!(
        !holder.is_finished(),
        "refused while the lock is still held"
    );
    holder.join().unwrap();
    // Held for less than that, a first login is accepted once it frees.
    let holder = hold_write_lock(db, Duration::from_millis(500));
    assert_eq!(login(&rc, server.auth, "55555", 2, 3), Heard::Accept);
    holder.join().unwrap();
    let shown = common::stdout(&cli(&config, &["token", "show", "55555"]));
    assert!(shown.contains("AA:BB:CC:00:00:02"), "{shown}");
}

#[test]
fn a_database_made_read_only_moved_or_deleted_stops_acknowledgements_until_it_is_back() {
    use std::os::unix::fs::PermissionsExt;
    let Some(rc) = radclient() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[http]\nlisten = \"127.0.0.1:0\"\n");
    let db = dir.path().join("p.db");
    create_token(&config, "48213", 60);
    create_token(&config, "55555", 60);
    let server = common::serve(&config);
    let http = http_addr(&server);
    assert_eq!(login(&rc, server.auth, "48213", 1, 2), Heard::Accept);
    let state = |s: &str| metric(http, &format!("pinradius_store_state{{state=\"{s}\"}}"));

    // Read-only: nothing is acknowledged, a first login is refused, a bound device
    // gets in; check-config says why; writable again, the retransmit is kept.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
    server.wait_for_log("became read-only");
    assert_eq!(acct_start(&rc, server.acct, "s1"), Heard::Nothing);
    assert_eq!(login(&rc, server.auth, "48213", 1, 2), Heard::Accept);
    assert_eq!(
        login(&rc, server.auth, "55555", 2, 2),
        Heard::Reject(UNAVAILABLE.into())
    );
    assert_eq!(
        state("read_only").as_deref(),
        Some("pinradius_store_state{state=\"read_only\"} 1")
    );
    let checked = cli(&config, &["check-config"]);
    assert!(!checked.status.success());
    assert!(
        common::stderr(&checked).contains("read-only"),
        "{}",
        common::stderr(&checked)
    );
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    server.wait_for_log("database writable again");
    assert_eq!(acct_start(&rc, server.acct, "s1"), Heard::Ack);

    // Moved away (as good as deleted) and back: the same file, so writes resume.
    let moved = dir.path().join("moved.db");
    std::fs::rename(&db, &moved).unwrap();
    server.wait_for_log("was deleted while the server runs");
    assert_eq!(acct_start(&rc, server.acct, "s2"), Heard::Nothing);
    let show = cli(&config, &["token", "show", "48213"]);
    assert!(
        !show.status.success(),
        "an admin command creates no database"
    );
    assert!(common::stderr(&show).contains(&db.display().to_string()));
    assert!(!db.exists());
    let checked = cli(&config, &["check-config"]);
    assert!(
        common::stderr(&checked).contains("deleted while a server had it open"),
        "{}",
        common::stderr(&checked)
    );
    std::fs::rename(&moved, &db).unwrap();
    wait_for_count(&server, "database writable again", 2);
    assert_eq!(acct_start(&rc, server.acct, "s2"), Heard::Ack);
    let sessions = common::stdout(&cli(&config, &["session", "list", "--json"]));
    assert!(
        sessions.contains("\"s1\"") && sessions.contains("\"s2\""),
        "{sessions}"
    );

    // Deleted for good: never acknowledged into the unlinked file; logged once.
    std::fs::remove_file(&db).unwrap();
    wait_for_count(&server, "was deleted while the server runs", 2);
    assert_eq!(acct_start(&rc, server.acct, "s3"), Heard::Nothing);
    assert_eq!(acct_start(&rc, server.acct, "s4"), Heard::Nothing);
    assert_eq!(
        login(&rc, server.auth, "48213", 1, 2),
        Heard::Accept,
        "decided from memory"
    );
    assert_eq!(
        state("missing").as_deref(),
        Some("pinradius_store_state{state=\"missing\"} 1")
    );
    assert_eq!(server.log_count("was deleted while the server runs"), 2);
}

#[test]
fn a_full_disk_is_logged_once_acknowledges_nothing_and_service_resumes_with_space() {
    let Some(rc) = radclient() else { return };
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("note: cannot mount a tmpfs (needs root); skipping the full-disk test");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(disk.clone());
    let config = write_config(&disk, "");
    create_token(&config, "48213", 60);
    let server = common::serve(&config);
    assert_eq!(login(&rc, server.auth, "48213", 1, 2), Heard::Accept);
    assert_eq!(acct_start(&rc, server.acct, "s0"), Heard::Ack);
    // Fill the disk.
    let filler = disk.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).and_then(|_| f.sync_all()).is_ok() {}
    }
    for session in ["s1", "s2", "s3"] {
        assert_eq!(
            acct_start(&rc, server.acct, session),
            Heard::Nothing,
            "{session}"
        );
    }
    server.wait_for_log("the disk is full");
    server.wait_for_log("writes not acknowledged since the last report");
    assert_eq!(server.log_count("the disk is full"), 1, "logged once");
    // Space again: the NAS's next retransmit is kept (a full disk ends with the first
    // write that succeeds), and nothing acknowledged was lost.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(acct_start(&rc, server.acct, "s1"), Heard::Ack);
    server.wait_for_log("database writable again");
    for session in ["s2", "s3"] {
        assert_eq!(
            acct_start(&rc, server.acct, session),
            Heard::Ack,
            "{session}"
        );
    }
    let sessions = common::stdout(&cli(&config, &["session", "list", "--json"]));
    for session in ["s0", "s1", "s2", "s3"] {
        assert!(
            sessions.contains(&format!("\"{session}\"")),
            "{session}: {sessions}"
        );
    }
}
