//! Real proxies in front of the real pinradius binary, everything on 127.0.0.1:
//!
//! - radclient → FreeRADIUS 3.2 → pinradius over UDP, with separate auth and accounting
//!   home servers watched with Status-Server (RFC 5997): logins, refusals, accounting,
//!   and a pinradius restart that FreeRADIUS only notices through Status-Server answers
//!   on both ports;
//! - radsecproxy 1.9 as a RadSec front end: radclient → UDP → radsecproxy "nas-side" →
//!   RadSec (RADIUS over TLS, RFC 6614, mutual TLS with certificates from a throwaway
//!   test CA) → radsecproxy "front" → UDP → pinradius. radclient speaks no TLS, so the
//!   nas-side radsecproxy plays the RadSec NAS. Logins, refusals, accounting, and the
//!   front's own Status-Server checks of both pinradius ports.
//!
//! pinradius itself speaks only UDP; TLS ends at the front radsecproxy.
//!
//! The NAS → proxy leg uses `common::SECRET`, the proxy → pinradius leg `HOME_SECRET`
//! (and the RadSec leg RFC 6614's fixed "radsec"), so every login also checks that the
//! proxies re-encoded User-Password. Under `CI=true` a missing radclient, freeradius,
//! radsecproxy or openssl fails the test (`.ci/run` installs them); elsewhere the test
//! is skipped with a note.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The secret between a proxy and pinradius (the NAS → proxy leg uses `SECRET`).
const HOME_SECRET: &str = "proxy-to-pinradius-secret-9876543210";

/// How long radclient waits for one answer through a proxy.
const ANSWER_SECONDS: u32 = 5;

/// The code every test logs in with: 60 minutes, business 1.
const CODE: &str = "12345";
const MAC: &str = "aa-bb-cc-dd-ee-01";

/// `N` distinct free UDP ports on 127.0.0.1: bound together so they differ, then
/// released for the process that is about to bind them.
fn free_ports<const N: usize>() -> [u16; N] {
    let sockets: Vec<UdpSocket> = (0..N)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| sockets[i].local_addr().unwrap().port())
}

/// A free TCP port on 127.0.0.1 (RadSec runs over TCP), released for the process that
/// is about to listen on it.
fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Replaces each `@NAME@` (the peers' configs are full of braces, so no `format!`).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut text = template.to_string();
    for (name, value) in values {
        let placeholder = format!("@{name}@");
        assert!(text.contains(&placeholder), "{placeholder} not in template");
        text = text.replace(&placeholder, value);
    }
    assert!(!text.contains("@"), "unfilled placeholder in\n{text}");
    text
}

/// A pinradius config whose only client is the proxy (127.0.0.1, `HOME_SECRET`), on
/// fixed ports (0: any), with the code `CODE` created.
fn pinradius_behind_proxy(dir: &Path, auth: u16, acct: u16) -> PathBuf {
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nauth_listen = \"127.0.0.1:{auth}\"\nacct_listen = \"127.0.0.1:{acct}\"\ndatabase = \"p.db\"\n\
             [[client]]\nname = \"proxy\"\naddress = \"127.0.0.1\"\nsecret = \"{HOME_SECRET}\"\nbusiness_id = 1\n\
             require_message_authenticator = true\n"
        ),
    )
    .unwrap();
    let init = cli(&path, &["db", "init"]);
    assert!(init.status.success(), "{}", stderr(&init));
    common::create_token(&path, CODE, 60);
    path
}

/// `session list --json`.
fn sessions(config: &Path) -> Vec<serde_json::Value> {
    let out = cli(config, &["session", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The one session with this Acct-Session-Id (fails if there are none or several).
fn session(config: &Path, acct_session_id: &str) -> serde_json::Value {
    let all = sessions(config);
    let matching: Vec<_> = all
        .iter()
        .filter(|s| s["acct_session_id"] == acct_session_id)
        .collect();
    assert_eq!(matching.len(), 1, "sessions {acct_session_id}: {all:#?}");
    matching[0].clone()
}

/// A process (a proxy, or openssl) whose stdout and stderr are collected line by line;
/// killed and reaped when dropped, so it never outlives a failing test.
struct Peer {
    name: String,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Peer {
    /// Starts `command` and waits until it logs a line containing `ready` (it listens).
    fn start(name: impl Into<String>, command: Command, ready: &str) -> Peer {
        let mut peer = Peer::spawn(name, command);
        peer.wait_for(ready, 0, Duration::from_secs(30));
        peer
    }

    /// Starts `command`, collecting its output.
    fn spawn(name: impl Into<String>, mut command: Command) -> Peer {
        let name = name.into();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        // The guard exists before anything can fail, so the child is always reaped.
        let mut peer = Peer {
            name,
            child,
            log: Arc::default(),
            readers: Vec::new(),
        };
        let stdout = peer.child.stdout.take().unwrap();
        let stderr = peer.child.stderr.take().unwrap();
        peer.readers = vec![
            collect(stdout, peer.log.clone()),
            collect(stderr, peer.log.clone()),
        ];
        peer
    }

    /// Waits up to `within` for a short-lived command to exit, and for its last lines;
    /// fails, with its output, if it runs longer (it is killed) or exits with a failure.
    fn finish(mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Both pipes are closed now, so the readers end.
                for reader in self.readers.drain(..) {
                    reader.join().unwrap();
                }
                assert!(
                    status.success(),
                    "{} failed ({status}):\n{}",
                    self.name,
                    self.text()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running after {within:?}:\n{}",
                self.name,
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lines logged so far (a mark for [`Peer::wait_for`]).
    fn lines(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    fn text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Lines from line `after` on that contain `needle`.
    fn count(&self, needle: &str, after: usize) -> usize {
        self.matching(needle, after).len()
    }

    /// The lines from line `after` on that contain `needle`.
    fn matching(&self, needle: &str, after: usize) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .skip(after)
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits up to `within` for a line from line `after` on containing `needle`; fails,
    /// with the whole log, if the peer exits first or time runs out.
    fn wait_for(&mut self, needle: &str, after: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.count(needle, after) > 0 {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers catch the last lines before printing them.
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "{} exited ({status}) before logging {needle:?}:\n{}",
                    self.name,
                    self.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: no line with {needle:?} within {within:?}:\n{}",
                self.name,
                self.text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(pipe: impl Read + Send + 'static, log: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            log.lock().unwrap().push(line);
        }
    })
}

/// Sends with `ask` until it succeeds (every half second, each try waiting for its own
/// answer) or `within` passes; returns what radclient printed for the success.
fn until_answered(within: Duration, what: &str, mut ask: impl FnMut() -> (bool, String)) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (ok, out) = ask();
        if ok {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not answered within {within:?}; last try:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn pap(code: &str, mac: &str, nas_extra: &str) -> String {
    format!(
        "User-Name = \"{code}\", User-Password = \"{code}\", Calling-Station-Id = \"{mac}\", \
         NAS-Identifier = \"lobby\"{nas_extra}"
    )
}

fn accounting(status: &str, session_id: &str, session_time: Option<u32>) -> String {
    let mut record = format!(
        "Acct-Status-Type = {status}, User-Name = \"{CODE}\", Acct-Session-Id = \"{session_id}\", \
         Calling-Station-Id = \"{MAC}\", NAS-Identifier = \"lobby\""
    );
    if let Some(seconds) = session_time {
        record += &format!(", Acct-Session-Time = {seconds}");
    }
    record
}

/// The Session-Timeout of an Access-Accept radclient printed.
fn session_timeout(out: &str) -> u32 {
    assert!(out.contains("Received Access-Accept"), "{out}");
    printed(out, "Session-Timeout")
        .unwrap_or_else(|| panic!("no Session-Timeout:\n{out}"))
        .parse()
        .unwrap()
}

/// Through a proxy (Access-Requests to `auth`, Accounting-Requests to `acct`): `CODE`
/// logs in with its 60 minutes, a wrong code is refused with pinradius's Reply-Message,
/// Start / Interim-Update / Stop of a 600 s session `session_id` are each answered and
/// recorded as one stopped session, and the next login gets the 3000 s left.
/// `nas_extra` is added to every Access-Request the NAS sends.
fn login_refusal_and_accounting(
    rc: &Path,
    config: &Path,
    auth: SocketAddr,
    acct: SocketAddr,
    nas_extra: &str,
    session_id: &str,
) {
    let send = |to, kind, attributes: &str| {
        radclient_send_within(rc, to, kind, attributes, ANSWER_SECONDS)
    };
    let (ok, out) = send(auth, "auth", &pap(CODE, MAC, nas_extra));
    assert!(ok, "{out}");
    assert!((3599..=3600).contains(&session_timeout(&out)), "{out}");
    // radclient prints Class in hex: "pinradius:uid=" comes back through the proxy.
    assert!(
        printed(&out, "Class").is_some_and(|c| c.starts_with("0x70696e7261646975733a7569643d")),
        "Class pinradius:uid=...: {out}"
    );

    let (ok, out) = send(auth, "auth", &pap("54321", "aa-bb-cc-dd-ee-99", nas_extra));
    assert!(!ok && out.contains("Received Access-Reject"), "{out}");
    assert_eq!(
        printed(&out, "Reply-Message").as_deref(),
        Some("Unknown or wrong access code"),
        "{out}"
    );

    for record in [
        accounting("Start", session_id, None),
        accounting("Interim-Update", session_id, Some(300)),
        accounting("Stop", session_id, Some(600)),
    ] {
        let (ok, out) = send(acct, "acct", &record);
        assert!(ok && out.contains("Received Accounting-Response"), "{out}");
    }
    let recorded = session(config, session_id);
    assert_eq!(recorded["session_time"], 600, "{recorded:#}");
    assert!(!recorded["stopped_at"].is_null(), "{recorded:#}");
    assert_eq!(recorded["token_id"], 1, "{recorded:#}");

    let (ok, out) = send(auth, "auth", &pap(CODE, MAC, nas_extra));
    assert!(ok, "{out}");
    assert!(
        (2999..=3000).contains(&session_timeout(&out)),
        "600 s counted once: {out}"
    );
}

/// radiusd.conf of a private FreeRADIUS 3.2: no modules, no user switch, its files in
/// its own folder, logging to stdout; proxies every request to the realm `pinradius`.
const RADIUSD_CONF: &str = r#"
prefix = /usr
raddbdir = @DIR@
confdir = @DIR@
localstatedir = @DIR@
logdir = @DIR@
radacctdir = @DIR@
run_dir = @DIR@
db_dir = @DIR@
pidfile = @DIR@/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {
    destination = stdout
    colourise = no
}
security {
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}
thread pool {
    start_servers = 2
    max_servers = 4
    min_spare_servers = 1
    max_spare_servers = 4
    max_requests_per_server = 0
}
proxy_requests = yes
$INCLUDE proxy.conf
$INCLUDE clients.conf
modules {
}
server default {
    listen {
        type = auth
        ipaddr = 127.0.0.1
        port = @FR_AUTH@
    }
    listen {
        type = acct
        ipaddr = 127.0.0.1
        port = @FR_ACCT@
    }
    authorize {
        update control {
            &Proxy-To-Realm := "pinradius"
        }
    }
    authenticate {
    }
    preacct {
        update control {
            &Proxy-To-Realm := "pinradius"
        }
    }
    accounting {
    }
}
"#;

/// Two home servers, one per pinradius port, each watched with Status-Server. The
/// timers are the smallest FreeRADIUS 3.2.1 takes without "Ignoring ..., forcing to
/// ..." (checked below): check_interval >= 6, num_answers_to_alive >= 3, check_timeout
/// 1..10, response_window 0.001..30, zombie_period 1..120 and >= response_window.
/// response_window leaves pinradius 3 s per answer on a loaded machine.
const PROXY_CONF: &str = r#"
proxy server {
    default_fallback = no
}
home_server pinradius-auth {
    type = auth
    ipaddr = 127.0.0.1
    port = @AUTH@
    src_ipaddr = 127.0.0.1
    secret = @HOME_SECRET@
    response_window = 3
    zombie_period = 5
    status_check = status-server
    check_interval = 6
    check_timeout = 2
    num_answers_to_alive = 3
    max_outstanding = 1024
}
home_server pinradius-acct {
    type = acct
    ipaddr = 127.0.0.1
    port = @ACCT@
    src_ipaddr = 127.0.0.1
    secret = @HOME_SECRET@
    response_window = 3
    zombie_period = 5
    status_check = status-server
    check_interval = 6
    check_timeout = 2
    num_answers_to_alive = 3
    max_outstanding = 1024
}
home_server_pool auth_pool {
    type = fail-over
    home_server = pinradius-auth
}
home_server_pool acct_pool {
    type = fail-over
    home_server = pinradius-acct
}
realm pinradius {
    auth_pool = auth_pool
    acct_pool = acct_pool
    nostrip
}
"#;

const CLIENTS_CONF: &str = r#"
client nas {
    ipaddr = 127.0.0.1
    secret = @SECRET@
}
"#;

/// Starts FreeRADIUS in the foreground as a proxy to pinradius at `auth` / `acct`,
/// listening at `fr_auth` / `fr_acct`.
fn freeradius_proxy(
    freeradius: &Path,
    raddb: &Path,
    [auth, acct, fr_auth, fr_acct]: [u16; 4],
) -> Peer {
    std::fs::create_dir(raddb).unwrap();
    let dir = raddb.to_str().unwrap();
    let ports = [auth, acct, fr_auth, fr_acct].map(|p| p.to_string());
    let files = [
        (
            "radiusd.conf",
            fill(
                RADIUSD_CONF,
                &[("DIR", dir), ("FR_AUTH", &ports[2]), ("FR_ACCT", &ports[3])],
            ),
        ),
        (
            "proxy.conf",
            fill(
                PROXY_CONF,
                &[
                    ("AUTH", &ports[0]),
                    ("ACCT", &ports[1]),
                    ("HOME_SECRET", HOME_SECRET),
                ],
            ),
        ),
        ("clients.conf", fill(CLIENTS_CONF, &[("SECRET", SECRET)])),
    ];
    for (name, text) in files {
        std::fs::write(raddb.join(name), text).unwrap();
    }
    let mut command = Command::new(freeradius);
    command.arg("-f").arg("-d").arg(raddb);
    let proxy = Peer::start("freeradius", command, "Ready to process requests");
    assert!(
        !proxy.text().contains("forcing to"),
        "FreeRADIUS changed a timer:\n{}",
        proxy.text()
    );
    proxy
}

#[test]
fn freeradius_proxy_with_status_server_on_both_home_servers() {
    let Some(rc) = radclient() else { return };
    let Some(freeradius) = freeradius() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ports @ [auth, acct, fr_auth, fr_acct] = free_ports();
    // Fixed ports: pinradius comes back on the same ones after its restart below.
    let config = pinradius_behind_proxy(dir.path(), auth, acct);
    let server = serve(&config);
    assert_eq!((server.auth, server.acct), (local(auth), local(acct)));
    let mut proxy = freeradius_proxy(&freeradius, &dir.path().join("raddb"), ports);

    // The NAS sends no Message-Authenticator and pinradius requires one: FreeRADIUS
    // 3.2.1 adds it to every Access-Request it proxies, so the logins get through.
    login_refusal_and_accounting(&rc, &config, local(fr_auth), local(fr_acct), "", "fr-1");

    // pinradius goes away. One login and one accounting record go unanswered, so
    // FreeRADIUS marks both home servers zombie, then dead once Status-Server goes
    // unanswered too. While they are dead it sends them only Status-Server.
    drop(server);
    let stopped = proxy.lines();
    let (ok, out) = radclient_send_within(&rc, local(fr_auth), "auth", &pap(CODE, MAC, ""), 1);
    assert!(!ok, "{out}");
    let (ok, out) = radclient_send_within(
        &rc,
        local(fr_acct),
        "acct",
        &accounting("Start", "fr-lost", None),
        1,
    );
    assert!(!ok, "{out}");
    for port in [auth, acct] {
        proxy.wait_for(
            &format!("Marking home server 127.0.0.1 port {port} as dead"),
            stopped,
            Duration::from_secs(60),
        );
    }

    // pinradius is back on the same ports: FreeRADIUS revives each home server after
    // num_answers_to_alive answers to Status-Server, an Access-Accept on the auth port
    // and an Accounting-Response on the accounting port (both with a Message-Authenticator
    // FreeRADIUS verifies), and then logins and accounting get through again.
    let restarted = proxy.lines();
    let server = serve(&config);
    assert_eq!((server.auth, server.acct), (local(auth), local(acct)));
    let within = Duration::from_secs(90);
    let out = until_answered(within, "login after the restart", || {
        radclient_send_within(
            &rc,
            local(fr_auth),
            "auth",
            &pap(CODE, MAC, ""),
            ANSWER_SECONDS,
        )
    });
    assert!((2999..=3000).contains(&session_timeout(&out)), "{out}");
    let out = until_answered(within, "accounting after the restart", || {
        radclient_send_within(
            &rc,
            local(fr_acct),
            "acct",
            &accounting("Start", "fr-2", None),
            ANSWER_SECONDS,
        )
    });
    assert!(out.contains("Received Accounting-Response"), "{out}");
    let (ok, out) = radclient_send_within(
        &rc,
        local(fr_acct),
        "acct",
        &accounting("Stop", "fr-2", Some(120)),
        ANSWER_SECONDS,
    );
    assert!(ok && out.contains("Received Accounting-Response"), "{out}");
    for port in [auth, acct] {
        proxy.wait_for(
            &format!("Marking home server 127.0.0.1 port {port} alive"),
            restarted,
            Duration::from_secs(10),
        );
    }
    assert!(
        proxy.count("Received response to status check", restarted) >= 6,
        "3 Status-Server answers per home server:\n{}",
        proxy.text()
    );
    let revived = session(&config, "fr-2");
    assert_eq!(revived["session_time"], 120, "{revived:#}");
    assert!(!revived["stopped_at"].is_null(), "{revived:#}");
    assert_eq!(session(&config, "fr-1")["session_time"], 600);
}

/// The RadSec leg's certificates, made in `dir` with the openssl command line: a
/// throwaway CA (`ca.pem`) and, signed by it, `front.pem` / `front.key` (a TLS server
/// certificate, CN pinradius-front) and `nas-side.pem` / `nas-side.key` (a TLS client
/// certificate, CN pinradius-nas-side). Both name 127.0.0.1 as subjectAltName IP:
/// radsecproxy checks that against the address of the client or server block.
fn radsec_certificates(openssl: &Path, dir: &Path) {
    std::fs::create_dir(dir).unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(openssl);
        command.current_dir(dir).args(args);
        Peer::spawn(format!("openssl {}", args.join(" ")), command).finish(Duration::from_secs(60));
    };
    // EC P-256 keys, made at once (RSA key generation can take seconds).
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let days = ["-days", "2"];
    run(&[
        &["req", "-x509", "-subj", "/CN=pinradius test CA"][..],
        &new_key,
        &days,
        &["-keyout", "ca.key", "-out", "ca.pem"],
        &["-addext", "basicConstraints=critical,CA:TRUE"],
        &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]
    .concat());
    for (name, usage, serial) in [
        ("front", "serverAuth", "2"),
        ("nas-side", "clientAuth", "3"),
    ] {
        let (key, csr, ext, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
            format!("{name}.pem"),
        );
        std::fs::write(
            dir.join(&ext),
            format!(
                "basicConstraints = critical, CA:FALSE\n\
                 keyUsage = critical, digitalSignature\n\
                 extendedKeyUsage = {usage}\n\
                 subjectAltName = IP:127.0.0.1\n"
            ),
        )
        .unwrap();
        let subject = format!("/CN=pinradius-{name}");
        run(&[
            &["req", "-new", "-subj", &subject][..],
            &new_key,
            &["-keyout", &key, "-out", &csr],
        ]
        .concat());
        run(&[
            &[
                "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
            ][..],
            &["-set_serial", serial, "-extfile", &ext, "-out", &pem],
            &days,
        ]
        .concat());
    }
}

/// radsecproxy 1.9 "front": RadSec in from the nas-side radsecproxy (TLS with a client
/// certificate from the test CA, RFC 6614's secret "radsec"), UDP out to pinradius's
/// two ports, every user name to them. LogLevel 5 logs the Status-Server answers it
/// gets and each request with the client it came from.
const RADSECPROXY_FRONT_CONF: &str = r#"
ListenTLS 127.0.0.1:@TLS_PORT@
SourceUDP 127.0.0.1
LogLevel 5
tls radsec {
    CACertificateFile "@CERTS@/ca.pem"
    CertificateFile "@CERTS@/front.pem"
    CertificateKeyFile "@CERTS@/front.key"
}
client nas-side {
    type tls
    host 127.0.0.1
    tls radsec
    secret radsec
    MatchCertificateAttribute CN:/^pinradius-nas-side$/
}
server pinradius-auth {
    type udp
    host 127.0.0.1
    port @AUTH@
    secret @HOME_SECRET@
    StatusServer on
}
server pinradius-acct {
    type udp
    host 127.0.0.1
    port @ACCT@
    secret @HOME_SECRET@
    StatusServer on
}
realm * {
    server pinradius-auth
    accountingServer pinradius-acct
}
"#;

/// radsecproxy 1.9 "nas-side", standing in for a NAS that speaks RadSec: UDP in from
/// radclient, RadSec out to the front (TLS with its client certificate, checking the
/// front's), auth and accounting over the one TLS connection.
const RADSECPROXY_NAS_SIDE_CONF: &str = r#"
ListenUDP 127.0.0.1:@LISTEN@
LogLevel 5
tls radsec {
    CACertificateFile "@CERTS@/ca.pem"
    CertificateFile "@CERTS@/nas-side.pem"
    CertificateKeyFile "@CERTS@/nas-side.key"
}
client nas {
    type udp
    host 127.0.0.1
    secret @SECRET@
}
server front {
    type tls
    host 127.0.0.1
    port @TLS_PORT@
    tls radsec
    secret radsec
    MatchCertificateAttribute CN:/^pinradius-front$/
}
realm * {
    server front
    accountingServer front
}
"#;

/// Writes `conf` from `template` and starts radsecproxy on it in the foreground;
/// returns once it logs `ready`.
fn radsecproxy_peer(
    radsecproxy: &Path,
    name: &str,
    conf: &Path,
    template: &str,
    values: &[(&str, &str)],
    ready: &str,
) -> Peer {
    std::fs::write(conf, fill(template, values)).unwrap();
    let mut command = Command::new(radsecproxy);
    command.arg("-f").arg("-c").arg(conf);
    Peer::start(name, command, ready)
}

#[test]
fn radsecproxy_as_a_radsec_front_end() {
    let Some(rc) = radclient() else { return };
    let Some(radsecproxy) = radsecproxy() else {
        return;
    };
    let Some(openssl) = openssl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    radsec_certificates(&openssl, &certs);
    let config = pinradius_behind_proxy(dir.path(), 0, 0);
    let server = serve(&config);
    let [listen] = free_ports();
    let tls_port = free_tcp_port();
    let (listen_text, tls_text, auth, acct) = (
        listen.to_string(),
        tls_port.to_string(),
        server.auth.port().to_string(),
        server.acct.port().to_string(),
    );
    let certs = certs.to_str().unwrap();
    let mut front = radsecproxy_peer(
        &radsecproxy,
        "radsecproxy front",
        &dir.path().join("front.conf"),
        RADSECPROXY_FRONT_CONF,
        &[
            ("TLS_PORT", &tls_text),
            ("CERTS", certs),
            ("AUTH", &auth),
            ("ACCT", &acct),
            ("HOME_SECRET", HOME_SECRET),
        ],
        &format!("listening for tls on 127.0.0.1:{tls_port}"),
    );
    let mut nas_side = radsecproxy_peer(
        &radsecproxy,
        "radsecproxy nas-side",
        &dir.path().join("nas-side.conf"),
        RADSECPROXY_NAS_SIDE_CONF,
        &[
            ("LISTEN", &listen_text),
            ("CERTS", certs),
            ("SECRET", SECRET),
            ("TLS_PORT", &tls_text),
        ],
        &format!("listening for udp on 127.0.0.1:{listen}"),
    );

    // The nas-side connects at start; each end accepts the other's certificate (the
    // test CA, subjectAltName 127.0.0.1, the pinned CN).
    let within = Duration::from_secs(30);
    nas_side.wait_for(
        &format!(
            "TLS connection to front (127.0.0.1 port {tls_port}), subject CN=pinradius-front up"
        ),
        0,
        within,
    );
    front.wait_for(
        "client nas-side, subject CN=pinradius-nas-side up",
        0,
        within,
    );

    // radsecproxy passes Accounting-Responses back only when it accepts them (1.9
    // refused the Message-Authenticator pinradius used to put in them), so every
    // "Received Accounting-Response" below is also both radsecproxies' acceptance.
    login_refusal_and_accounting(
        &rc,
        &config,
        local(listen),
        local(listen),
        ", Message-Authenticator = 0x00",
        "rs-1",
    );
    // Each request reached the front once, over RadSec, from its TLS client nas-side:
    // 3 logins (one refused) and 3 accounting records.
    for kind in ["Access-Request", "Accounting-Request"] {
        let from_nas_side = front
            .matching(&format!("radsrv: got {kind} "), 0)
            .iter()
            .filter(|l| l.contains("from client nas-side (127.0.0.1)"))
            .count();
        assert_eq!(from_nas_side, 3, "{kind}s over RadSec:\n{}", front.text());
    }

    // With StatusServer on, the front checks both pinradius ports with Status-Server
    // (its first check comes about 25 s after it last heard from a server) and logs
    // each answer it accepts.
    for name in ["pinradius-auth", "pinradius-acct"] {
        front.wait_for(
            &format!("got status server response from {name}"),
            0,
            Duration::from_secs(90),
        );
    }

    // radsecproxy 1.9 forwards a Message-Authenticator only when the NAS sent one, so
    // behind it a NAS must send one: without, pinradius drops the request (BlastRADIUS).
    let (ok, out) = radclient_send_within(&rc, local(listen), "auth", &pap(CODE, MAC, ""), 2);
    assert!(!ok && !out.contains("Received"), "{out}");
    server.wait_for_log("missing_message_authenticator");
}
