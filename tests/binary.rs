//! Tests that run the real binary: FreeRADIUS's radclient as the peer (PAP, CHAP,
//! Message-Authenticator, Status-Server, accounting), admin commands while the server
//! runs, and the handling of bad configs and bad command lines.

mod common;

use common::{cli, printed, radclient, radclient_send, serve, stderr, stdout, write_config};
use std::os::unix::fs::PermissionsExt;

fn create(config: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let out = cli(config, &all);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn radclient_pap_chap_message_authenticator_status_and_accounting() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let id = create(
        &config,
        &["--business-id", "1", "--code", "12345", "--minutes", "60"],
    );
    assert_eq!(
        id.trim().parse::<i64>().unwrap(),
        1,
        "token create prints only the id"
    );
    let server = serve(&config);
    let Some(rc) = radclient() else { return };

    let pap = "User-Name = \"12345\", User-Password = \"12345\", Calling-Station-Id = \"aa-bb-cc-dd-ee-01\", Message-Authenticator = 0x00";
    let (ok, out) = radclient_send(&rc, server.auth, "auth", pap);
    assert!(ok, "{out}");
    assert!(out.contains("Received Access-Accept"), "{out}");
    let timeout: u32 = printed(&out, "Session-Timeout").unwrap().parse().unwrap();
    assert!((3599..=3600).contains(&timeout), "{out}");
    assert!(printed(&out, "Class").is_some(), "{out}");

    let chap = "User-Name = \"12345\", CHAP-Password = \"12345\", Calling-Station-Id = \"aa-bb-cc-dd-ee-01\", Message-Authenticator = 0x00";
    let (ok, out) = radclient_send(&rc, server.auth, "auth", chap);
    assert!(ok && out.contains("Received Access-Accept"), "{out}");
    let wrong = "User-Name = \"12345\", CHAP-Password = \"54321\", Message-Authenticator = 0x00";
    let (ok, out) = radclient_send(&rc, server.auth, "auth", wrong);
    assert!(!ok && out.contains("Received Access-Reject"), "{out}");
    assert_eq!(
        printed(&out, "Reply-Message").as_deref(),
        Some("Unknown or wrong access code"),
        "{out}"
    );

    // No Message-Authenticator: dropped (require_message_authenticator defaults to true).
    let (ok, out) = radclient_send(
        &rc,
        server.auth,
        "auth",
        "User-Name = \"12345\", User-Password = \"12345\"",
    );
    assert!(!ok && !out.contains("Received"), "{out}");

    let (ok, out) = radclient_send(&rc, server.auth, "status", "Message-Authenticator = 0x00");
    assert!(ok && out.contains("Received Access-Accept"), "{out}");

    // Accounting through radclient: 20 minutes used, then the next login gets 40.
    for record in [
        "Acct-Status-Type = Start, User-Name = \"12345\", Acct-Session-Id = \"r1\", Calling-Station-Id = \"aa-bb-cc-dd-ee-01\"",
        "Acct-Status-Type = Stop, User-Name = \"12345\", Acct-Session-Id = \"r1\", Calling-Station-Id = \"aa-bb-cc-dd-ee-01\", Acct-Session-Time = 1200, Message-Authenticator = 0x00",
    ] {
        let (ok, out) = radclient_send(&rc, server.acct, "acct", record);
        assert!(ok && out.contains("Received Accounting-Response"), "{out}");
    }
    let (_, out) = radclient_send(&rc, server.auth, "auth", pap);
    let timeout: u32 = printed(&out, "Session-Timeout").unwrap().parse().unwrap();
    assert!((2399..=2400).contains(&timeout), "{out}");
    let shown = stdout(&cli(&config, &["token", "show", "12345"]));
    assert!(
        shown.contains("used:             1200 s (2400 s left)"),
        "{shown}"
    );
    let sessions = stdout(&cli(&config, &["session", "list", "--json"]));
    let sessions: serde_json::Value = serde_json::from_str(&sessions).unwrap();
    assert_eq!(sessions[0]["session_time"], 1200);
    // An open session closed by hand frees its place; closing it again says so.
    let start = "Acct-Status-Type = Start, User-Name = \"12345\", Acct-Session-Id = \"r2\", Calling-Station-Id = \"aa-bb-cc-dd-ee-01\"";
    assert!(radclient_send(&rc, server.acct, "acct", start).0);
    let open = stdout(&cli(&config, &["session", "list", "--open"]));
    assert!(open.contains("r2") && !open.contains("r1"), "{open}");
    assert!(stdout(&cli(&config, &["session", "close", "2"])).contains("session 2 closed"));
    assert!(stdout(&cli(&config, &["session", "close", "2"])).contains("already closed"));
    assert!(stderr(&cli(&config, &["session", "close", "99"])).contains("no session 99"));
}

#[test]
fn revoke_with_the_cli_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    create(
        &config,
        &["--business-id", "1", "--code", "55555", "--minutes", "30"],
    );
    let server = serve(&config);
    let Some(rc) = radclient() else { return };
    let pap = "User-Name = \"55555\", User-Password = \"55555\", Message-Authenticator = 0x00";
    assert!(radclient_send(&rc, server.auth, "auth", pap).0);
    let out = cli(&config, &["token", "revoke", "55555"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (ok, out) = radclient_send(&rc, server.auth, "auth", pap);
    assert!(!ok, "{out}");
    assert_eq!(
        printed(&out, "Reply-Message").as_deref(),
        Some("This access code has been revoked"),
        "{out}"
    );
}

#[test]
fn sigterm_stops_the_server_cleanly_and_the_database_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut server = serve(&config);
    let mode = std::fs::metadata(dir.path().join("p.db"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let pid = server.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server still running 10 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn bad_configs_name_the_key_and_exit_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nauth_listen = \"127.0.0.1:0\"\n[[client]]\nname = \"x\"\naddress = \"10.0.0.300\"\nsecret = \"s\"\nbusiness_id = 1\n",
    )
    .unwrap();
    for args in [&["check-config"][..], &["serve"][..]] {
        let out = cli(&bad, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("error: client[0].address = \"10.0.0.300\""),
            "{err}"
        );
    }
    assert!(
        !dir.path().join("pinradius.db").exists(),
        "nothing created for a bad config"
    );

    let weak = write_config(dir.path(), "");
    std::fs::write(
        &weak,
        std::fs::read_to_string(&weak)
            .unwrap()
            .replace(common::SECRET, "short")
            + "require_message_authenticator = false\n",
    )
    .unwrap();
    let out = cli(&weak, &["check-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("warning: client \"nas\": secret is 5 characters"),
        "{text}"
    );
    assert!(text.contains("BlastRADIUS"), "{text}");

    for shipped in ["config/pinradius.toml", "config/docker.toml"] {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(shipped);
        let out = cli(&shipped, &["check-config"]);
        assert!(
            out.status.success(),
            "the shipped {} is valid: {}",
            shipped.display(),
            stderr(&out)
        );
    }
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let mut child = std::process::Command::new(common::bin())
        .args(["--log-format", "json", "--config"])
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let logs = child.stderr.take().unwrap();
    // Every line is a JSON object; read up to the listening line.
    let mut listening = None;
    for line in std::io::BufReader::new(logs).lines().take(20) {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
        if v["fields"]["message"] == "pinradius listening" {
            listening = Some((v, line));
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let (v, line) = listening.expect("the listening line");
    assert_eq!(v["level"], "INFO", "{line}");
    assert_eq!(v["fields"]["message"], "pinradius listening", "{line}");
    assert!(
        v["fields"]["auth"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{line}"
    );

    let out = cli(&config, &["--log-format", "yaml", "check-config"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("yaml"), "{}", stderr(&out));
}

#[test]
fn bad_command_lines_name_the_field_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    create(
        &config,
        &["--business-id", "1", "--code", "11111", "--minutes", "60"],
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["--business-id", "1", "--code", "22222", "--minutes", "-5"],
            "--minutes: \"-5\"",
        ),
        (
            &["--business-id", "1", "--code", "22222", "--minutes", "0"],
            "--minutes: \"0\"",
        ),
        (
            &[
                "--business-id",
                "1",
                "--code",
                "22222",
                "--minutes",
                "5",
                "--valid-from",
                "yesterday",
            ],
            "--valid-from: \"yesterday\"",
        ),
        (
            &[
                "--business-id",
                "1",
                "--code",
                "22222",
                "--minutes",
                "5",
                "--mac",
                "zz:zz",
            ],
            "--mac: \"zz:zz\"",
        ),
        (
            &["--business-id", "x", "--code", "22222", "--minutes", "5"],
            "--business-id: \"x\"",
        ),
        (
            &["--business-id", "1", "--code", "11111", "--minutes", "5"],
            "already used by token 1",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        let out = cli(&config, &all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let list: serde_json::Value =
        serde_json::from_str(&stdout(&cli(&config, &["token", "list", "--json"]))).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the first token exists: {list}"
    );
    assert_eq!(list[0]["access_code"], "11111");
    let out = cli(
        &config,
        &[
            "customer",
            "create",
            "--business-id",
            "1",
            "--name",
            "Bob",
            "--pin",
            "12ab5",
        ],
    );
    assert!(
        stderr(&out).contains("PIN: must be exactly 5 digits"),
        "{}",
        stderr(&out)
    );
    let out = cli(
        &config,
        &[
            "visitor",
            "register",
            "--business-id",
            "1",
            "--name",
            "",
            "--email",
            "no-at-sign",
        ],
    );
    assert!(
        stderr(&out).contains("--name") && stderr(&out).contains("--email: \"no-at-sign\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn import_explain_visitors_and_customers_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let csv = dir.path().join("tokens.csv");
    std::fs::write(
        &csv,
        "business_id,access_code,minutes_included,device_limit\n1,30001,60,2\n1,30002,90,\n",
    )
    .unwrap();
    let out = cli(&config, &["token", "import", csv.to_str().unwrap()]);
    assert!(
        out.status.success() && stdout(&out).contains("imported 2 token(s)"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        &csv,
        "business_id,access_code,minutes_included\n1,30003,60\n1,30004,soon\n",
    )
    .unwrap();
    let out = cli(&config, &["token", "import", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 3: minutes_included: \"soon\""),
        "{}",
        stderr(&out)
    );
    assert!(
        !stdout(&cli(&config, &["token", "list"])).contains("30003"),
        "nothing of a failed import is kept"
    );

    let out = stdout(&cli(
        &config,
        &["token", "explain", "30001", "--mac", "aa:bb:cc:dd:ee:ff"],
    ));
    assert!(out.contains("ACCEPT: Session-Timeout = 3600 s"), "{out}");
    cli(&config, &["token", "revoke", "30001"]);
    let out = stdout(&cli(&config, &["token", "explain", "30001"]));
    assert!(out.contains("REJECT (revoked)"), "{out}");

    let out = cli(
        &config,
        &[
            "visitor",
            "register",
            "--business-id",
            "1",
            "--name",
            "Ada",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (guid, pin) = (v["guid"].as_str().unwrap(), v["pin"].as_str().unwrap());
    assert_eq!(pin.len(), 5);
    assert!(
        stdout(&cli(&config, &["visitor", "show", guid]))
            .contains(&format!("pin:              {pin}"))
    );
    let out = stdout(&cli(
        &config,
        &["token", "explain", pin, "--mac", "aa-bb-cc-dd-ee-01"],
    ));
    assert!(
        out.contains("not checked in") && out.contains("would check the visitor in"),
        "{out}"
    );
    assert!(
        cli(
            &config,
            &["visitor", "check-in", guid, "--at", "2026-11-23T09:00:00Z"]
        )
        .status
        .success()
    );

    let out = cli(
        &config,
        &[
            "customer",
            "create",
            "--business-id",
            "1",
            "--name",
            "Bob",
            "--email",
            "bob@example.com",
            "--json",
        ],
    );
    let c: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = c["id"].to_string();
    let reminder: serde_json::Value = serde_json::from_str(&stdout(&cli(
        &config,
        &["customer", "pin-reminder", &id, "--json"],
    )))
    .unwrap();
    assert_eq!(reminder[0]["email"], "bob@example.com");
    assert_eq!(reminder[0]["pin"], c["pin"]);
    assert!(
        cli(&config, &["customer", "set-pin", &id, "97531"])
            .status
            .success()
    );
    assert!(stdout(&cli(&config, &["customer", "list"])).contains("97531"));
}

#[test]
fn sighup_reloads_clients_and_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    // At first 127.0.0.1 is not a client: only 127.0.0.2 is.
    let config = write_config(dir.path(), "");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        original.replace("address = \"127.0.0.1\"", "address = \"127.0.0.2\""),
    )
    .unwrap();
    create(
        &config,
        &["--business-id", "1", "--code", "12345", "--minutes", "60"],
    );
    let server = serve(&config);
    let Some(rc) = radclient() else { return };
    let pap = "User-Name = \"12345\", User-Password = \"12345\", Message-Authenticator = 0x00";
    let (ok, out) = radclient_send(&rc, server.auth, "auth", pap);
    assert!(!ok && !out.contains("Received"), "not a client yet: {out}");
    server.wait_for_log("dropped datagram");

    // Add 127.0.0.1 and reload: answered.
    std::fs::write(&config, original.clone() + "[[client]]\nname = \"other\"\naddress = \"127.0.0.2\"\nsecret = \"x\"\nbusiness_id = 1\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("configuration reloaded");
    let (ok, out) = radclient_send(&rc, server.auth, "auth", pap);
    assert!(ok && out.contains("Received Access-Accept"), "{out}");

    // A bad config on reload is refused, logged, and the running one stays.
    std::fs::write(
        &config,
        original.replace("business_id = 1", "business_id = -1"),
    )
    .unwrap();
    server.signal("HUP");
    let line = server.wait_for_log("reload refused");
    assert!(line.contains("client[0].business_id = -1"), "{line}");
    let (ok, out) = radclient_send(&rc, server.auth, "auth", pap);
    assert!(ok && out.contains("Received Access-Accept"), "{out}");
}

#[test]
fn lockouts_survive_a_restart_and_attacks_are_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    create(
        &config,
        &["--business-id", "1", "--code", "12345", "--minutes", "60"],
    );
    let server = serve(&config);
    let Some(rc) = radclient() else { return };
    let guess = |n: u32| {
        format!(
            "User-Name = \"{n:05}\", User-Password = \"{n:05}\", Calling-Station-Id = \"aa-bb-cc-00-00-66\", Message-Authenticator = 0x00"
        )
    };
    for n in 0..12 {
        assert!(!radclient_send(&rc, server.auth, "auth", &guess(n)).0);
    }
    server.wait_for_log("device locked out");
    let right = "User-Name = \"12345\", User-Password = \"12345\", Calling-Station-Id = \"aa-bb-cc-00-00-66\", Message-Authenticator = 0x00";
    let (ok, out) = radclient_send(&rc, server.auth, "auth", right);
    assert!(!ok && out.contains("Too many failed attempts"), "{out}");
    // One warning for the lockout; rejects are counted, not logged one by one at
    // info (the first count is written at once, the next a minute later at most).
    assert_eq!(server.log_count("device locked out"), 1);
    assert_eq!(server.log_count("Access-Rejects since the last count"), 1);
    assert_eq!(server.log_count("reject:"), 0, "a line per reject at info");
    drop(server);

    let listed = stdout(&cli(&config, &["lockout", "list"]));
    assert!(listed.contains("AA:BB:CC:00:00:66"), "{listed}");
    let server = serve(&config);
    let (ok, out) = radclient_send(&rc, server.auth, "auth", right);
    assert!(
        !ok && out.contains("Too many failed attempts"),
        "still locked after a restart: {out}"
    );
    assert!(
        cli(&config, &["lockout", "clear", "aa:bb:cc:00:00:66"])
            .status
            .success()
    );
    let (ok, out) = radclient_send(&rc, server.auth, "auth", right);
    assert!(ok, "cleared from the CLI while running: {out}");
    server.wait_for_log("accepted: first login of this device with this code");
    let again = stderr(&cli(&config, &["lockout", "clear", "aa:bb:cc:00:00:66"]));
    assert!(
        again.contains("no lock for device AA:BB:CC:00:00:66"),
        "{again}"
    );
}

/// An Access-Request (PAP, no Message-Authenticator) built with the `radius` crate.
fn raw_pap(user_name: &str, station: &str) -> Vec<u8> {
    use radius::core::{code::Code, packet::Packet, rfc2865};
    let mut p = Packet::new(Code::AccessRequest, common::SECRET.as_bytes());
    rfc2865::add_user_name(&mut p, user_name);
    rfc2865::add_user_password(&mut p, b"x").unwrap();
    rfc2865::add_calling_station_id(&mut p, station);
    p.encode().unwrap()
}

#[test]
fn control_characters_in_a_user_name_never_reach_the_log_raw() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "require_message_authenticator = false\n");
    let server = serve(&config);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 4096];
    for n in 0..10 {
        let name = format!("{n}\r\nFAKE pinradius accepted\u{1b}[31m\u{7}");
        sock.send_to(&raw_pap(&name, "aa-bb-cc-00-00-77"), server.auth)
            .unwrap();
        sock.recv_from(&mut buf).expect("a reject");
    }
    let line = server.wait_for_log("device locked out");
    assert!(
        line.contains("***m\\x07"),
        "the code masked and escaped: {line}"
    );
    for line in server.log.lock().unwrap().iter() {
        assert!(
            !line.chars().any(|c| c.is_control()),
            "raw control character in {line:?}"
        );
        assert!(!line.starts_with("FAKE"), "forged line {line:?}");
    }
}

#[test]
fn the_load_generator_counts_verified_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let seeded = stdout(&cli(&config, &["bench", "seed", "--tokens", "50"]));
    assert!(seeded.starts_with("seeded 50 token(s)"), "{seeded}");
    let server = serve(&config);
    let run_with = |load: &str,
                    target: std::net::SocketAddr,
                    secret: &str,
                    extra: &[&str]|
     -> serde_json::Value {
        let target = target.to_string();
        let mut args = vec![
            "bench",
            load,
            "--target",
            &target,
            "--secret",
            secret,
            "--tokens",
            "50",
            "--devices",
            "50",
            "--window",
            "16",
            "--duration",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = cli(&config, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let run = |load: &str, target: std::net::SocketAddr, secret: &str| -> serde_json::Value {
        run_with(load, target, secret, &[])
    };
    let auth = run("auth", server.auth, common::SECRET);
    assert!(auth["accepts"].as_u64().unwrap() > 100, "{auth}");
    assert_eq!(
        (
            auth["rejects"].as_u64(),
            auth["bad"].as_u64(),
            auth["lost"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{auth}"
    );
    let acct = run("acct", server.acct, common::SECRET);
    assert!(acct["accepts"].as_u64().unwrap() > 10, "{acct}");
    assert_eq!(acct["bad"].as_u64(), Some(0), "{acct}");
    // Paced: the rate asked for, every answer verified and timed (by the kernel's
    // arrival stamp) as a plausible loopback round trip.
    let paced = run_with("auth", server.auth, common::SECRET, &["--rate", "400"]);
    let sent = paced["sent"].as_u64().unwrap();
    assert!((360..=440).contains(&sent), "{paced}");
    assert_eq!(paced["accepts"].as_u64(), Some(sent), "{paced}");
    let p50 = paced["p50_us"].as_u64().unwrap();
    assert!(p50 > 0 && p50 < 500_000, "{paced}");
    // With the wrong secret nothing is answered (the server drops forged requests).
    let forged = run("auth", server.auth, "not-the-secret");
    assert_eq!(forged["accepts"].as_u64(), Some(0), "{forged}");
    assert!(forged["lost"].as_u64().unwrap() > 0, "{forged}");
}

#[test]
fn first_impressions_of_a_new_operator() {
    let dir = tempfile::tempdir().unwrap();
    // A missing config: the OS error once.
    let out = cli(&dir.path().join("missing.toml"), &["check-config"]);
    let e = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    let config = write_config(dir.path(), "");
    // The code the operator typed is named as typed.
    let e = stderr(&cli(&config, &["token", "show", "48213"]));
    assert!(e.contains("no access token with code 48213"), "{e}");
    // A token that has already expired is refused, naming the field.
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
            "60",
            "--valid-to",
            "2020-01-01T00:00:00Z",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--valid-to") && stderr(&out).contains("in the past"),
        "{}",
        stderr(&out)
    );
    // Logs to a pipe carry no colour codes (no NO_COLOR here).
    let out = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&config)
        .args(["token", "list"])
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
    // `token explain` for a device locked out for guessing says so.
    create(
        &config,
        &["--business-id", "1", "--code", "12345", "--minutes", "60"],
    );
    let db = rusqlite::Connection::open(dir.path().join("p.db")).unwrap();
    db.execute(
        "INSERT INTO guard_locks VALUES ('device', 'AA:BB:CC:00:00:66', 1, 32503680000000, 'nas', 0)",
        [],
    )
    .unwrap();
    let explained = stdout(&cli(
        &config,
        &["token", "explain", "12345", "--mac", "aa:bb:cc:00:00:66"],
    ));
    assert!(explained.contains("REJECT (locked_out)"), "{explained}");
}

#[test]
fn admin_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndatabase = \"typo.db\"\n[[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{}\"\nbusiness_id = 1\n",
            common::SECRET
        ),
    )
    .unwrap();
    let db = dir.path().join("typo.db");
    for args in [
        vec!["token", "list"],
        vec!["customer", "list"],
        vec!["lockout", "list"],
        vec!["sync", "status"],
    ] {
        let out = cli(&config, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains(&format!("database {} does not exist", db.display())),
            "{}",
            stderr(&out)
        );
        assert!(!db.exists(), "{args:?} created the database");
    }
    let out = cli(&config, &["db", "init"]);
    assert!(
        out.status.success() && stdout(&out).contains("created database"),
        "{}",
        stderr(&out)
    );
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(stdout(&cli(&config, &["db", "init"])).contains("up to date"));
    assert!(cli(&config, &["token", "list"]).status.success());
}
