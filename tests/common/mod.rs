//! Running the real `pinradius` binary in tests: configs in a temp folder, the server
//! on 127.0.0.1 port 0 (its addresses read from its "pinradius listening" log line),
//! CLI calls, and FreeRADIUS's radclient as an independent peer.

#![allow(dead_code)]

pub mod pg;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SECRET: &str = "binary-test-secret-0123456789";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pinradius")
}

/// Writes a config with one client (127.0.0.1, business 1) plus `extra`, and creates
/// its database (`db init`: admin commands never create one) when the config is valid.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nauth_listen = \"127.0.0.1:0\"\nacct_listen = \"127.0.0.1:0\"\ndatabase = \"p.db\"\n\
             [[client]]\nname = \"nas\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nbusiness_id = 1\n{extra}\n"
        ),
    )
    .unwrap();
    let _ = cli(&path, &["db", "init"]);
    path
}

/// Runs `pinradius --config CONFIG ARGS...`.
pub fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `token create` in business 1; panics with the CLI's error if it fails.
pub fn create_token(config: &Path, code: &str, minutes: u32) {
    let out = cli(
        config,
        &[
            "token",
            "create",
            "--business-id",
            "1",
            "--code",
            code,
            "--minutes",
            &minutes.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "token create {code}: {}",
        stderr(&out)
    );
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running server; killed (SIGKILL) and reaped when dropped, so no process
/// outlives a failing test.
pub struct Running {
    pub child: Child,
    pub auth: SocketAddr,
    pub acct: SocketAddr,
    /// Every line the server logged so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    /// Sends a signal (`TERM`, `HUP`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits up to 10 s for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no log line with {needle:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, name: &str) -> Option<SocketAddr> {
    line.split(&format!("{name}="))
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Starts `pinradius serve` and waits for its listening line.
pub fn serve(config: &Path) -> Running {
    let mut command = Command::new(bin());
    command.arg("--config").arg(config).arg("serve");
    serve_with(command)
}

/// Starts `command` (a `pinradius serve`, perhaps wrapped, e.g. in a shell that
/// lowers a limit first) and waits for its listening line.
pub fn serve_with(mut command: Command) -> Running {
    let child = command
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let unbound: SocketAddr = "0.0.0.0:0".parse().unwrap();
    // The guard exists before anything can fail, so the child is always reaped.
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut running = Running {
        child,
        auth: unbound,
        acct: unbound,
        log: log.clone(),
    };
    let stderr = running.child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        log.lock().unwrap().push(line.clone());
        if let (Some(auth), Some(acct)) = (field(&line, "auth"), field(&line, "acct")) {
            // Keep reading stderr (into the log) so the server never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
            running.auth = auth;
            running.acct = acct;
            return running;
        }
    }
    panic!("server did not report its listening addresses");
}

/// FreeRADIUS's radclient. Under CI (`CI=true`) its absence fails the test; elsewhere
/// the radclient part is skipped with a note.
pub fn radclient() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("radclient"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("radclient not found: install freeradius-utils (CI=true makes this a failure)");
        }
        eprintln!(
            "note: radclient not found; skipping the radclient part (apt-get install freeradius-utils)"
        );
    }
    found
}

/// Runs radclient with `attributes` (one request) against `to`; returns (success,
/// everything it printed).
pub fn radclient_send(
    radclient: &Path,
    to: SocketAddr,
    kind: &str,
    attributes: &str,
) -> (bool, String) {
    radclient_send_within(radclient, to, kind, attributes, 1)
}

/// The value radclient printed for `attribute` (e.g. "Session-Timeout").
pub fn printed(output: &str, attribute: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let (name, value) = l.trim().split_once(" = ")?;
        (name == attribute).then(|| value.trim_matches('"').to_string())
    })
}

/// A program by any of `names`, on PATH or in the sbin folders where daemons live (a
/// non-root PATH often lacks them).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .collect();
    names
        .iter()
        .find_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()))
}

/// `found`, or under CI (`CI=true`) a failure naming the Debian package to install;
/// elsewhere a printed note, and the caller skips the part that needs it.
fn required_peer(found: Option<PathBuf>, program: &str, package: &str) -> Option<PathBuf> {
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{program} not found: install {package} (CI=true makes this a failure)");
        }
        eprintln!(
            "note: {program} not found; skipping the {program} part (apt-get install {package})"
        );
    }
    found
}

/// The FreeRADIUS server (`freeradius` on Debian, `radiusd` elsewhere), used as a proxy
/// in front of pinradius. Missing: a failure under CI, a skip with a note elsewhere.
pub fn freeradius() -> Option<PathBuf> {
    required_peer(
        find_program(&["freeradius", "radiusd"]),
        "freeradius",
        "freeradius",
    )
}

/// radsecproxy, used as a proxy in front of pinradius. Missing: a failure under CI, a
/// skip with a note elsewhere.
pub fn radsecproxy() -> Option<PathBuf> {
    required_peer(find_program(&["radsecproxy"]), "radsecproxy", "radsecproxy")
}

/// [`radclient_send`] with one try that waits up to `timeout_seconds` for the answer
/// (a proxy in between, a loaded machine).
pub fn radclient_send_within(
    radclient: &Path,
    to: SocketAddr,
    kind: &str,
    attributes: &str,
    timeout_seconds: u32,
) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(radclient)
        .args(["-x", "-r", "1", "-t", &timeout_seconds.to_string()])
        .arg(to.to_string())
        .arg(kind)
        .arg(SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(attributes.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// The openssl command line, which makes the test CA and certificates for the RadSec
/// tests. Missing: a failure under CI, a skip with a note elsewhere.
pub fn openssl() -> Option<PathBuf> {
    required_peer(find_program(&["openssl"]), "openssl", "openssl")
}

/// Asserts that every acknowledged record (by Acct-Session-Id) is among `stored`: a
/// server killed mid-burst lost nothing it acknowledged.
pub fn assert_none_lost(acked: &[String], stored: &std::collections::HashSet<String>) {
    let lost: Vec<&String> = acked.iter().filter(|s| !stored.contains(*s)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}
