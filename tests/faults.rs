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
    let line = server.wait_for_log("pinradius listening");
    let http: SocketAddr = line
        .split("http=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap();
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
