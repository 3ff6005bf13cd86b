//! The platform sync (issue 14) against a fake platform: an HTTP server on 127.0.0.1
//! that speaks the shapes of PLATFORM.md (form-encoded `POST /api/token`, bearer
//! tokens that expire, paged lists ordered by `UpdatedOn` with the
//! `{Entity}_{Field}` and `from_{Entity}_{Field}` filters, records by id), driven
//! through the real binary (`sync run`, `sync status`, `serve`).

mod common;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{cli, create_token, serve, stderr, stdout, write_config};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

const USERNAME: &str = "wifi-sync@example.com";
const PASSWORD: &str = "p@ss word&=1";

/// The fake platform's state.
#[derive(Default)]
struct Platform {
    /// Access token records by Id.
    tokens: BTreeMap<i64, Value>,
    /// Coworker (member) and visitor records by Id.
    coworkers: BTreeMap<i64, Value>,
    visitors: BTreeMap<i64, Value>,
    /// Bearer tokens issued, with the calls each has left (then 401).
    bearer: HashMap<String, u32>,
    /// Calls a bearer token is good for.
    bearer_calls: u32,
    token_requests: u32,
    /// Answer 503 to everything.
    down: bool,
    /// Seconds since the epoch of the next UpdatedOn.
    clock: i64,
    /// An access token updated right after the first list call (it moves to the end
    /// of the UpdatedOn order while a pass pages through it).
    touch_after_list: Option<i64>,
}

type Shared = Arc<Mutex<Platform>>;

impl Platform {
    /// The next UpdatedOn (no zone, as the platform often writes it).
    fn tick(&mut self) -> String {
        self.clock += 1;
        chrono::DateTime::from_timestamp(1_764_500_000 + self.clock, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }

    fn put_member(&mut self, id: i64, pin: &str, email: &str, active: bool) {
        let updated = self.tick();
        self.coworkers.insert(
            id,
            json!({
                "Id": id, "UniqueId": format!("11111111-0000-0000-0000-{id:012}"), "CreatedOn": updated,
                "UpdatedOn": updated, "FullName": "Grace Hopper", "Email": email, "AccessPincode": pin,
                "InvoicingBusinessId": 1, "Active": active, "Archived": false, "AllowNetworkCheckin": true
            }),
        );
    }

    fn put_visitor(&mut self, id: i64, code: &str, arrived: Option<&str>) {
        let updated = self.tick();
        self.visitors.insert(
            id,
            json!({
                "Id": id, "UniqueId": format!("22222222-0000-0000-0000-{id:012}"), "CreatedOn": updated,
                "UpdatedOn": updated, "BusinessId": 1, "FullName": "Ada Lovelace", "Email": "ada@example.com",
                "ExpectedArrival": "2026-11-30T09:00:00Z", "Arrived": arrived.is_some(), "ArrivalDate": arrived,
                "VisitorCode": code, "CoworkerId": 5
            }),
        );
    }

    fn records(&mut self, entity: &str) -> Option<&mut BTreeMap<i64, Value>> {
        match entity {
            "accesstokens" => Some(&mut self.tokens),
            "coworkers" => Some(&mut self.coworkers),
            "visitors" => Some(&mut self.visitors),
            _ => None,
        }
    }

    fn put_token(&mut self, id: i64, code: &str, minutes: u32) {
        let updated = self.tick();
        self.tokens.insert(
            id,
            json!({
                "Id": id, "UniqueId": format!("00000000-0000-0000-0000-{id:012}"),
                "CreatedOn": updated, "UpdatedOn": updated, "BusinessId": 1,
                "AccessCode": code, "MinutesIncluded": minutes, "Description": "from the platform",
                "ValidFrom": null, "ValidTo": null, "UserLimit": null, "MacAddress": null,
                "BookingGuid": null, "VisitorGuid": null, "MinutesLeft": minutes, "LastAccess": null
            }),
        );
    }
}

/// A JSON answer.
fn json_response(v: Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// `a=b&c=d`, percent-decoded (`+` is a space).
fn form(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

async fn token(State(p): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut p = p.lock().unwrap();
    if p.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    p.token_requests += 1;
    let form_encoded = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return (StatusCode::BAD_REQUEST, "form-encoded only").into_response();
    }
    let f = form(&body);
    if f.get("grant_type").map(String::as_str) != Some("password")
        || f.get("username").map(String::as_str) != Some(USERNAME)
        || f.get("password").map(String::as_str) != Some(PASSWORD)
    {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant"}).to_string(),
        )
            .into_response();
    }
    let bearer = format!("bearer-{}", p.token_requests);
    let calls = if p.bearer_calls == 0 {
        u32::MAX
    } else {
        p.bearer_calls
    };
    p.bearer.insert(bearer.clone(), calls);
    json_response(
        json!({"access_token": bearer, "token_type": "bearer", "expires_in": 604799, "refresh_token": "r"}),
    )
}

/// Checks the bearer token (and uses one of its calls).
fn authorized(p: &mut Platform, headers: &HeaderMap) -> Result<(), StatusCode> {
    if p.down {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    match p.bearer.get_mut(&bearer) {
        Some(left) if *left > 0 => {
            *left -= 1;
            Ok(())
        }
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

/// `GET /api/spaces/{entity}`: paged, ordered by UpdatedOn ascending, with the
/// `{Entity}_{Field}=value` and `from_{Entity}_UpdatedOn=time` filters.
async fn list(
    State(p): State<Shared>,
    headers: HeaderMap,
    UrlPath(entity): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut p = p.lock().unwrap();
    if let Err(status) = authorized(&mut p, &headers) {
        return status.into_response();
    }
    if let Some(id) = p.touch_after_list.take() {
        // Answer this page as it is now, then update the record (below).
        let answer = list_page(&mut p, &entity, &q);
        let code = p.tokens[&id]["AccessCode"].as_str().unwrap().to_string();
        p.put_token(id, &code, 61);
        return answer;
    }
    list_page(&mut p, &entity, &q)
}

fn list_page(p: &mut Platform, entity: &str, q: &HashMap<String, String>) -> Response {
    let Some(all) = p.records(entity) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let size: usize = q.get("size").and_then(|v| v.parse().ok()).unwrap_or(25);
    assert_eq!(q.get("orderBy").map(String::as_str), Some("UpdatedOn"));
    let keep = |t: &Value| {
        q.iter().all(|(k, v)| match k.as_str() {
            "page" | "size" | "orderBy" | "dir" => true,
            k if k.starts_with("from_") => t["UpdatedOn"].as_str().unwrap() >= &v[..19],
            k => {
                let field = k.split_once('_').map_or(k, |(_, f)| f);
                t[field].to_string().trim_matches('"') == v
            }
        })
    };
    let mut records: Vec<&Value> = all.values().filter(|t| keep(t)).collect();
    records.sort_by_key(|t| {
        (
            t["UpdatedOn"].as_str().unwrap().to_string(),
            t["Id"].as_i64(),
        )
    });
    let total = records.len();
    let pages = total.div_ceil(size).max(1);
    let slice: Vec<&Value> = records
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    json_response(json!({
        "Records": slice, "CurrentPage": page, "CurrentPageSize": slice.len(), "PageNumber": page,
        "PageSize": size, "TotalItems": total, "TotalPages": pages, "HasNextPage": page < pages,
        "HasPreviousPage": page > 1, "FirstItem": (page - 1) * size + 1, "LastItem": (page - 1) * size + slice.len()
    }))
}

async fn get_one(
    State(p): State<Shared>,
    headers: HeaderMap,
    UrlPath((entity, id)): UrlPath<(String, i64)>,
) -> Response {
    let mut p = p.lock().unwrap();
    if let Err(status) = authorized(&mut p, &headers) {
        return status.into_response();
    }
    match p.records(&entity).and_then(|r| r.get(&id)) {
        Some(t) => json_response(t.clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The fake platform on 127.0.0.1, served from a thread of its own until the test
/// ends.
fn start_platform() -> (SocketAddr, Shared) {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/api/token", post(token))
        .route("/api/spaces/{entity}", get(list))
        .route("/api/spaces/{entity}/{id}", get(get_one))
        .with_state(state.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (addr, state)
}

fn config(dir: &Path, platform: SocketAddr, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "[nexudus]\nbase_url = \"http://{platform}\"\nusername = \"{USERNAME}\"\npassword = \"{PASSWORD}\"\n\
             business_ids = [1]\npoll_seconds = 10\n{extra}"
        ),
    )
}

fn sync(config: &Path, args: &[&str]) -> String {
    let out = cli(config, &[&["sync"], args].concat());
    assert!(out.status.success(), "sync {args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn tokens_created_changed_and_deleted_at_the_platform_follow_here() {
    let (addr, platform) = start_platform();
    platform.lock().unwrap().put_token(101, "48213", 60);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    assert!(sync(&config, &["run"]).contains("accesstokens: 1 created, 0 updated"));
    let shown = stdout(&cli(&config, &["token", "show", "48213"]));
    assert!(shown.contains("minutes_included: 60"), "{shown}");
    // Neither dates nor UserLimit: one device, as the platform's help says.
    assert!(shown.contains("device_limit:     1"), "{shown}");
    // Unchanged records change nothing; a change is applied.
    assert!(sync(&config, &["run"]).contains("0 created, 0 updated, 1 unchanged"));
    platform.lock().unwrap().put_token(101, "48213", 90);
    assert!(sync(&config, &["run"]).contains("0 created, 1 updated"));
    assert!(stdout(&cli(&config, &["token", "show", "48213"])).contains("minutes_included: 90"));
    // Deleted at the platform: an incremental pass cannot know; a full one removes it.
    platform.lock().unwrap().tokens.remove(&101);
    assert!(sync(&config, &["run"]).contains("0 removed"));
    assert!(
        sync(&config, &["run", "--full"])
            .contains("(full): 0 created, 0 updated, 0 unchanged, 1 removed")
    );
    assert!(!cli(&config, &["token", "show", "48213"]).status.success());
    let status = sync(&config, &["status", "--json"]);
    let rows: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(rows[0]["entity"], "accesstokens");
    assert_eq!(rows[0]["removed"], 1);
    assert!(rows[0]["last_full"].is_string(), "{status}");
}

#[test]
fn a_code_that_is_taken_here_is_a_clash_and_nothing_is_overwritten() {
    let (addr, platform) = start_platform();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    create_token(&config, "55555", 30);
    platform.lock().unwrap().put_token(7, "55555", 600);
    assert!(sync(&config, &["run"]).contains("1 clash(es)"));
    assert!(stdout(&cli(&config, &["token", "show", "55555"])).contains("minutes_included: 30"));
    assert!(sync(&config, &["status"]).contains("clashes 1"));
}

#[test]
fn paging_over_2500_records_and_the_bearer_token_expiring_mid_sync() {
    let (addr, platform) = start_platform();
    {
        let mut p = platform.lock().unwrap();
        for n in 0..2_500 {
            p.put_token(1_000 + n, &format!("{:05}", 10_000 + n), 60);
        }
        // Each bearer token is good for two calls: the pass must renew it mid-way.
        p.bearer_calls = 2;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    assert!(sync(&config, &["run"]).contains("accesstokens: 2500 created"));
    assert!(platform.lock().unwrap().token_requests >= 2);
    assert!(cli(&config, &["token", "show", "12499"]).status.success());
}

#[test]
fn the_platform_down_or_refusing_the_login_is_an_error_and_logins_go_on() {
    let (addr, platform) = start_platform();
    platform.lock().unwrap().put_token(101, "48213", 60);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    sync(&config, &["run"]);
    platform.lock().unwrap().down = true;
    let out = cli(&config, &["sync", "run"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("http://{addr}")) || stderr(&out).contains("503"),
        "{}",
        stderr(&out)
    );
    let status = sync(&config, &["status"]);
    assert!(status.contains("last error at"), "{status}");
    // The server starts and answers from the local store while the platform is down.
    let server = serve(&config);
    server.wait_for_log("platform sync failed");
    assert!(cli(&config, &["token", "show", "48213"]).status.success());
    if let Some(rc) = common::radclient() {
        let (ok, out) = common::radclient_send(
            &rc,
            server.auth,
            "auth",
            "User-Name = \"48213\", User-Password = \"48213\", Calling-Station-Id = \"aa-bb-cc-00-00-01\", Message-Authenticator = 0x00",
        );
        assert!(ok, "a login while the platform is down: {out}");
    }
    drop(server);
    // A wrong password is refused with the user named, the password never shown.
    platform.lock().unwrap().down = false;
    let bad = write_config(
        dir.path(),
        &format!(
            "[nexudus]\nbase_url = \"http://{addr}\"\nusername = \"{USERNAME}\"\npassword = \"wrong-password\"\nbusiness_ids = [1]\n"
        ),
    );
    let out = cli(&bad, &["sync", "run"]);
    let e = stderr(&out);
    assert!(
        !out.status.success() && e.contains(USERNAME) && !e.contains("wrong-password"),
        "{e}"
    );
}

#[test]
fn serve_pulls_at_start() {
    let (addr, platform) = start_platform();
    platform.lock().unwrap().put_token(101, "48213", 60);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    let server = serve(&config);
    server.wait_for_log("platform sync: accesstokens (full): 1 created");
    drop(server);
    assert!(cli(&config, &["token", "show", "48213"]).status.success());
}

#[test]
fn members_and_visitors_arrive_change_and_leave() {
    let (addr, platform) = start_platform();
    {
        let mut p = platform.lock().unwrap();
        p.put_member(5, "24680", "grace@example.org", true);
        p.put_member(6, "", "nopin@example.org", true); // no PIN: no Wi-Fi
        p.put_visitor(9, "13579", Some("2026-11-30T09:15:00"));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    let out = sync(&config, &["run"]);
    assert!(out.contains("coworkers: 1 created"), "{out}");
    assert!(out.contains("visitors: 1 created"), "{out}");
    let explain = |code: &str| {
        stdout(&cli(
            &config,
            &[
                "token",
                "explain",
                code,
                "--mac",
                "aa:bb:cc:00:00:01",
                "--at",
                "2026-11-30T09:30:00Z",
            ],
        ))
    };
    assert!(explain("24680").contains("ACCEPT"), "{}", explain("24680"));
    // The visitor's window runs from the platform's check-in: 60 minutes from 09:15.
    let v = explain("13579");
    assert!(v.contains("ACCEPT") && v.contains("2700"), "{v}");
    // The member's PIN changes at the platform: the old one stops working.
    platform
        .lock()
        .unwrap()
        .put_member(5, "97531", "grace@example.org", true);
    assert!(sync(&config, &["run"]).contains("coworkers: 0 created, 1 updated"));
    assert!(!explain("24680").contains("ACCEPT"));
    assert!(explain("97531").contains("ACCEPT"));
    // Deactivated at the platform: refused as deactivated.
    platform
        .lock()
        .unwrap()
        .put_member(5, "97531", "grace@example.org", false);
    sync(&config, &["run"]);
    assert!(
        explain("97531").contains("deactivated"),
        "{}",
        explain("97531")
    );
    // The visitor deleted at the platform: gone after a full listing.
    platform.lock().unwrap().visitors.remove(&9);
    assert!(
        sync(&config, &["run", "--full"])
            .contains("visitors (full): 0 created, 0 updated, 0 unchanged, 1 removed")
    );
    assert!(!explain("13579").contains("ACCEPT"));
}

/// A config taking webhooks signed with `secret` on an `[http]` listener.
fn webhook_config(dir: &Path, platform: SocketAddr, secret: &str) -> std::path::PathBuf {
    config(
        dir,
        platform,
        &format!("webhook_secret = \"{secret}\"\n[http]\nlisten = \"127.0.0.1:0\"\n"),
    )
}

/// `serve`, and the address of its `[http]` listener (from the listening line).
fn serve_with_http(config: &Path) -> (common::Running, SocketAddr) {
    let server = serve(config);
    let line = server.wait_for_log("pinradius listening");
    let http = line
        .split("http=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .expect("the listening line names the http address");
    (server, http)
}

/// Posts `body` to the server's webhook route with `signature`; the HTTP status.
fn post_webhook(http: SocketAddr, body: &str, signature: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(format!("http://{http}/api/webhooks/nexudus"))
        .header("X-Nexudus-Hook-Signature", signature)
        .content_type("application/json")
        .send(body.as_bytes())
        .unwrap()
        .status()
        .as_u16()
}

/// Waits up to 5 s for `check`.
fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("not within 5 s: {what}");
}

#[test]
fn signed_webhooks_are_applied_by_reading_the_record_again() {
    const SECRET: &str = "webhook-secret-0123456789";
    let (addr, platform) = start_platform();
    platform.lock().unwrap().put_visitor(9, "13579", None);
    let dir = tempfile::tempdir().unwrap();
    let config = webhook_config(dir.path(), addr, SECRET);
    let (server, http) = serve_with_http(&config);
    server.wait_for_log("platform sync: visitors (full): 1 created");
    let exists = |code: &str| cli(&config, &["token", "show", code]).status.success();
    // A member created at the platform; the webhook's payload claims another PIN: the
    // record is read again from the API, so the platform's PIN is the one kept.
    platform
        .lock()
        .unwrap()
        .put_member(5, "24680", "grace@example.org", true);
    let body = r#"[{"Id": 5, "FullName": "Grace Hopper", "AccessPincode": "00000", "InvoicingBusinessId": 1}]"#;
    let sign = |b: &str| pinradius::http::webhooks::signature(SECRET.as_bytes(), b.as_bytes());
    // A missing or wrong signature: 401, nothing changes.
    assert_eq!(post_webhook(http, body, ""), 401);
    assert_eq!(post_webhook(http, body, &sign("something else")), 401);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!exists("24680"));
    assert_eq!(post_webhook(http, body, &sign(body)), 200);
    eventually("the member's PIN works", || exists("24680"));
    assert!(!exists("00000"));
    // The same webhook again changes nothing.
    assert_eq!(post_webhook(http, body, &sign(body).to_lowercase()), 200);
    server.wait_for_log("platform webhook: webhook: 0 created, 0 updated, 1 unchanged");
    // The visitor deleted at the platform (VisitorDeleted): gone here too.
    platform.lock().unwrap().visitors.remove(&9);
    let deleted = r#"[{"Id": 9, "FullName": "Ada Lovelace", "VisitorCode": "13579", "ExpectedArrival": null}]"#;
    assert!(exists("13579"));
    assert_eq!(post_webhook(http, deleted, &sign(deleted)), 200);
    eventually("the deleted visitor's code is gone", || !exists("13579"));
}

#[test]
fn platform_tokens_are_changed_at_the_platform_and_local_edits_work() {
    let (addr, platform) = start_platform();
    platform.lock().unwrap().put_token(101, "48213", 60);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    sync(&config, &["run"]);
    // Edits of a token that came from the platform are refused, naming it; --force
    // overrides.
    for args in [
        vec!["token", "update", "48213", "--minutes", "5"],
        vec!["token", "delete", "48213"],
        vec!["token", "revoke", "48213"],
    ] {
        let out = cli(&config, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("came from Nexudus (accesstokens 101)"),
            "{}",
            stderr(&out)
        );
    }
    let out = cli(
        &config,
        &["token", "update", "48213", "--minutes", "5", "--force"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&cli(&config, &["token", "show", "48213"])).contains("minutes_included: 5"));
    // A local token: updated, a device unbound, deleted, revoked and created again.
    create_token(&config, "55555", 30);
    let out = cli(
        &config,
        &[
            "token",
            "update",
            "55555",
            "--new-code",
            "55556",
            "--valid-to",
            "2030-01-01T00:00:00Z",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&cli(&config, &["token", "show", "55556"])).contains("2030-01-01"));
    let bad = cli(&config, &["token", "update", "55556", "--minutes", "zero"]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("minutes"),
        "{}",
        stderr(&bad)
    );
    let unbind = cli(&config, &["token", "unbind", "55556", "aa:bb:cc:dd:ee:ff"]);
    assert!(
        !unbind.status.success() && stderr(&unbind).contains("AA:BB:CC:DD:EE:FF"),
        "{}",
        stderr(&unbind)
    );
    assert!(cli(&config, &["token", "revoke", "55556"]).status.success());
    create_token(&config, "55556", 45);
    assert!(stdout(&cli(&config, &["token", "show", "55556"])).contains("minutes_included: 45"));
    assert!(cli(&config, &["token", "delete", "55556"]).status.success());
    create_token(&config, "55556", 15);
}

#[test]
fn window_starts_picks_when_a_platform_visitors_window_starts() {
    let (addr, platform) = start_platform();
    // Expected 09:00, checked in at the platform at 09:15; asked at 09:30.
    platform
        .lock()
        .unwrap()
        .put_visitor(9, "13579", Some("2026-11-30T09:15:00"));
    for (mode, seconds_left) in [
        ("arrival", "2700"),
        ("expected_arrival", "1800"),
        ("first_login", "3600"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = config(
            dir.path(),
            addr,
            &format!("[visitors]\nwindow_starts = \"{mode}\"\n"),
        );
        sync(&config, &["run"]);
        let out = stdout(&cli(
            &config,
            &[
                "token",
                "explain",
                "13579",
                "--mac",
                "aa:bb:cc:00:00:01",
                "--at",
                "2026-11-30T09:30:00Z",
            ],
        ));
        assert!(
            out.contains("ACCEPT") && out.contains(seconds_left),
            "{mode}: {out}"
        );
    }
}

#[test]
fn a_platform_member_logs_in_by_pin_and_by_email_and_a_pin_change_by_webhook_ends_the_session() {
    const SECRET: &str = "webhook-secret-0123456789";
    let Some(rc) = common::radclient() else {
        return;
    };
    let (addr, platform) = start_platform();
    platform
        .lock()
        .unwrap()
        .put_member(5, "24680", "Grace@Example.org", true);
    let dir = tempfile::tempdir().unwrap();
    let config = webhook_config(dir.path(), addr, SECRET);
    let (server, http) = serve_with_http(&config);
    server.wait_for_log("platform sync: coworkers (full): 1 created");
    let login = |user: &str, pin: &str| {
        common::radclient_send(
            &rc,
            server.auth,
            "auth",
            &format!(
                "User-Name = \"{user}\", User-Password = \"{pin}\", Calling-Station-Id = \"aa-bb-cc-00-00-05\", Message-Authenticator = 0x00"
            ),
        )
    };
    let (ok, out) = login("24680", "24680");
    assert!(ok, "by PIN: {out}");
    let (ok, out) = login("grace@example.org", "24680");
    assert!(ok, "by email + PIN, another case: {out}");
    // An open session, then the PIN changes at the platform and the webhook comes.
    let (ok, out) = common::radclient_send(
        &rc,
        server.acct,
        "acct",
        "Acct-Status-Type = Start, Acct-Session-Id = \"81a00005\", User-Name = \"24680\", Calling-Station-Id = \"aa-bb-cc-00-00-05\"",
    );
    assert!(ok, "{out}");
    platform
        .lock()
        .unwrap()
        .put_member(5, "97531", "Grace@Example.org", true);
    let body = r#"[{"Id": 5, "AccessPincode": "97531", "InvoicingBusinessId": 1}]"#;
    let sign = pinradius::http::webhooks::signature(SECRET.as_bytes(), body.as_bytes());
    assert_eq!(post_webhook(http, body, &sign), 200);
    eventually("the old PIN is refused", || !login("24680", "24680").0);
    assert!(login("97531", "97531").0, "the new PIN works");
    // The session of the old PIN is to be disconnected.
    let db = rusqlite::Connection::open(dir.path().join("p.db")).unwrap();
    let reason: String = db
        .query_row(
            "SELECT reason FROM disconnects WHERE acct_session_id = '81a00005'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reason, "pin_changed");
}

#[test]
fn a_record_updated_while_a_full_listing_pages_is_not_removed() {
    let (addr, platform) = start_platform();
    {
        let mut p = platform.lock().unwrap();
        for n in 0..1_001 {
            p.put_token(1_000 + n, &format!("{:05}", 20_000 + n), 60);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    sync(&config, &["run"]);
    // The first token is updated while the full listing reads page 1: every later
    // record shifts down one place.
    platform.lock().unwrap().touch_after_list = Some(1_000);
    let out = sync(&config, &["run", "--full"]);
    // (Keyset paging re-reads the records of the second it resumes from: unchanged.)
    assert!(
        out.contains("accesstokens (full): 0 created, 1 updated"),
        "{out}"
    );
    assert!(out.contains("unchanged, 0 removed"), "{out}");
    for code in ["20000", "21000"] {
        assert!(
            cli(&config, &["token", "show", code]).status.success(),
            "{code}"
        );
    }
}

#[test]
fn a_member_who_leaves_and_comes_back_or_loses_the_pin_and_a_clash_that_clears() {
    let (addr, platform) = start_platform();
    platform
        .lock()
        .unwrap()
        .put_member(5, "24680", "grace@example.org", true);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    let explain = |code: &str| {
        stdout(&cli(
            &config,
            &["token", "explain", code, "--mac", "aa:bb:cc:00:00:01"],
        ))
    };
    sync(&config, &["run"]);
    assert!(explain("24680").contains("ACCEPT"));
    // No longer listed (and not found by Id): deactivated, not deleted...
    platform.lock().unwrap().coworkers.remove(&5);
    assert!(
        sync(&config, &["run", "--full"])
            .contains("coworkers (full): 0 created, 0 updated, 0 unchanged, 1 removed")
    );
    assert!(
        explain("24680").contains("deactivated"),
        "{}",
        explain("24680")
    );
    // ... so coming back is the same member, active again.
    platform
        .lock()
        .unwrap()
        .put_member(5, "24680", "grace@example.org", true);
    assert!(sync(&config, &["run"]).contains("coworkers: 0 created, 1 updated"));
    assert!(explain("24680").contains("ACCEPT"));
    // The PIN cleared at the platform: the old PIN stops working.
    platform
        .lock()
        .unwrap()
        .put_member(5, "", "grace@example.org", true);
    sync(&config, &["run"]);
    assert!(!explain("24680").contains("ACCEPT"), "{}", explain("24680"));
    // A clash is pulled again on the next pass: once the local owner is gone, the
    // platform's record arrives.
    create_token(&config, "55555", 30);
    platform
        .lock()
        .unwrap()
        .put_member(6, "55555", "ada@example.org", true);
    assert!(sync(&config, &["run"]).contains("1 clash(es)"));
    assert!(cli(&config, &["token", "delete", "55555"]).status.success());
    assert!(sync(&config, &["run"]).contains("coworkers: 1 created"));
    assert!(explain("55555").contains("ACCEPT"));
}

#[test]
fn members_and_visitors_from_the_platform_refuse_local_edits_without_force() {
    let (addr, platform) = start_platform();
    {
        let mut p = platform.lock().unwrap();
        p.put_member(5, "24680", "grace@example.org", true);
        p.put_visitor(9, "13579", None);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    sync(&config, &["run"]);
    let customers: Value =
        serde_json::from_str(&stdout(&cli(&config, &["customer", "list", "--json"]))).unwrap();
    let id = customers[0]["id"].to_string();
    let visitors: Value =
        serde_json::from_str(&stdout(&cli(&config, &["visitor", "list", "--json"]))).unwrap();
    let guid = visitors[0]["guid"].as_str().unwrap().to_string();
    for args in [
        vec!["customer", "set-pin", id.as_str(), "11223"],
        vec!["customer", "deactivate", id.as_str()],
        vec!["visitor", "check-in", guid.as_str()],
        vec!["visitor", "delete", guid.as_str()],
        vec!["token", "update", "24680", "--minutes", "5", "--force"],
    ] {
        let out = cli(&config, &args);
        assert!(!out.status.success(), "{args:?} was allowed");
        let e = stderr(&out);
        assert!(
            e.contains("came from Nexudus") || e.contains("is the PIN of customer"),
            "{args:?}: {e}"
        );
    }
    let out = cli(&config, &["customer", "deactivate", id.as_str(), "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_member_who_moves_to_another_location_logs_in_there() {
    let (addr, platform) = start_platform();
    platform
        .lock()
        .unwrap()
        .put_member(5, "24680", "grace@example.org", true);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, "");
    // Both locations synced.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("business_ids = [1]", "business_ids = [1, 2]");
    std::fs::write(&config, text).unwrap();
    sync(&config, &["run"]);
    {
        let mut p = platform.lock().unwrap();
        let updated = p.tick();
        let m = p.coworkers.get_mut(&5).unwrap();
        m["InvoicingBusinessId"] = 2.into();
        m["UpdatedOn"] = updated.into();
    }
    assert!(sync(&config, &["run"]).contains("coworkers: 0 created, 1 updated"));
    let shown = stdout(&cli(&config, &["token", "show", "24680"]));
    assert!(shown.contains("business_id:      2"), "{shown}");
}
