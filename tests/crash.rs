//! Crash safety of accounting: SIGKILL the real server in the middle of an accounting
//! burst, then check that every record it acknowledged is in the database, and that
//! the server starts again on the same file with no repair.

mod common;

use common::{SECRET, cli, serve, write_config};
use pinradius::protocol::{self, Code, PacketBuilder, attr};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn stop_record(id: u8, session: &str) -> Vec<u8> {
    let mut b = PacketBuilder::with_message_authenticator(Code::AccountingRequest, id);
    b.add_u32(attr::ACCT_STATUS_TYPE, 2).unwrap();
    b.add(attr::ACCT_SESSION_ID, session.as_bytes()).unwrap();
    b.add(attr::USER_NAME, b"12345").unwrap();
    b.add(attr::CALLING_STATION_ID, b"02-00-00-00-00-01")
        .unwrap();
    b.add_u32(attr::ACCT_SESSION_TIME, 1).unwrap();
    b.finish_accounting_request(SECRET.as_bytes())
}

#[test]
fn sigkill_during_accounting_burst_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let out = cli(
        &config,
        &[
            "token",
            "create",
            "--business-id",
            "1",
            "--code",
            "12345",
            "--minutes",
            "100000",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut server = serve(&config);
    let acct = server.acct;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..16)
        .map(|t| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut buf = [0u8; 4096];
                for n in 0u32.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let session = format!("t{t}-{n}");
                    let request = stop_record((n % 256) as u8, &session);
                    sock.send_to(&request, acct).unwrap();
                    // Wait for this request's answer; anything else is stale.
                    while let Ok((len, _)) = sock.recv_from(&mut buf) {
                        let Ok(resp) = protocol::validate(&buf[..len]) else {
                            continue;
                        };
                        let auth: &[u8; 16] = request[4..20].try_into().unwrap();
                        if resp.code() == Code::AccountingResponse
                            && resp.identifier() == request[1]
                            && protocol::verify_response(&resp, auth, SECRET.as_bytes())
                        {
                            acked.lock().unwrap().push(session.clone());
                            break;
                        }
                    }
                }
            })
        })
        .collect();

    // Let the burst run, then kill the server mid-stream, without warning.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 300 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300,
        "the burst was acknowledged at all: {}",
        acked.len()
    );

    // Every acknowledged record is on disk.
    let db = rusqlite::Connection::open(dir.path().join("p.db")).unwrap();
    let stored: std::collections::HashSet<String> = db
        .prepare("SELECT acct_session_id FROM sessions WHERE session_time = 1 AND stopped_at IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    common::assert_none_lost(&acked, &stored);
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(db);

    // The server starts again on the same file, no repair, and the ledger adds up.
    let server = serve(&config);
    let acct = server.acct;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&stop_record(1, "after-restart"), acct)
        .unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = sock.recv_from(&mut buf).expect("restarted server answers");
    assert_eq!(
        protocol::validate(&buf[..len]).unwrap().code(),
        Code::AccountingResponse
    );
    let out = cli(&config, &["token", "show", "12345", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(shown["used_seconds"].as_u64().unwrap() > acked.len() as u64);
}

#[test]
fn sigkill_during_a_token_import_leaves_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let csv = dir.path().join("big.csv");
    let mut text = String::from("business_id,access_code,minutes_included,device_limit\n");
    for i in 0..20_000 {
        text.push_str(&format!("1,code-{i:06},60,2\n"));
    }
    std::fs::write(&csv, text).unwrap();
    // Make sure the database exists, so each kill lands inside the import itself.
    assert!(cli(&config, &["token", "list"]).status.success());
    let db_path = dir.path().join("p.db");
    let mut outcomes = Vec::new();
    for delay_ms in [5u64, 40, 120, 400] {
        let mut child = std::process::Command::new(common::bin())
            .args([
                "--config",
                config.to_str().unwrap(),
                "token",
                "import",
                csv.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let db = rusqlite::Connection::open(&db_path).unwrap();
        let count: i64 = db
            .query_row("SELECT count(*) FROM access_tokens", [], |r| r.get(0))
            .unwrap();
        let integrity: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
        assert!(
            count == 0 || count == 20_000,
            "half an import after SIGKILL at {delay_ms} ms: {count} rows"
        );
        outcomes.push((delay_ms, finished, count));
        if count == 20_000 {
            break;
        }
    }
    // The kills landed inside the import at least once; then a full run gets through.
    assert!(
        outcomes
            .iter()
            .any(|(_, finished, count)| !finished && *count == 0),
        "{outcomes:?}"
    );
    if outcomes.last().map(|o| o.2) != Some(20_000) {
        let out = cli(&config, &["token", "import", csv.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Startup after the kills needs no repair: the CLI and the server open the file.
    assert!(
        cli(&config, &["token", "list", "--json"]).status.success(),
        "{outcomes:?}"
    );
    let _server = serve(&config);
}
