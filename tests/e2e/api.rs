//! The HTTP token API and /metrics over real HTTP (ureq as the client), issue 7.

use crate::harness::{Harness, acct, ask, pap, t0};
use radius::core::code::Code;
use serde_json::{Value, json};

pub const CREATE: &str = "create-token-0123456789abcdef";
pub const READER: &str = "reader-token-0123456789abcdef";
pub const ADMIN: &str = "admin-token-0123456789abcdefgh";

/// `[http]` on port 0 with three keys: create-only, read-only and admin.
pub fn http_config() -> String {
    format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\
         [[http.api_key]]\nname = \"platform\"\ntoken = \"{CREATE}\"\nroles = [\"AccessToken-Create\"]\n\
         [[http.api_key]]\nname = \"dashboard\"\ntoken = \"{READER}\"\nroles = [\"AccessToken-Read\"]\n\
         [[http.api_key]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nroles = [\"Admin\"]\n"
    )
}

/// One HTTP request; returns the status and the body (JSON when it parses).
pub async fn call(
    h: &Harness,
    method: &'static str,
    path: &str,
    bearer: Option<&str>,
    body: Option<String>,
) -> (u16, Value, String) {
    let url = format!("http://{}{path}", h.http.expect("[http] configured"));
    let bearer = bearer.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut response = match (method, body) {
            ("POST", Some(b)) => {
                let mut r = agent.post(&url).content_type("application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(b)
            }
            ("PUT", Some(b)) => {
                let mut r = agent.put(&url).content_type("application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(b)
            }
            ("DELETE", _) => {
                let mut r = agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
        }
        .expect("HTTP exchange");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, json, text)
    })
    .await
    .unwrap()
}

pub async fn create(h: &Harness, body: Value) -> (u16, Value) {
    let (s, v, _) = call(
        h,
        "POST",
        "/api/spaces/accesstokens",
        Some(CREATE),
        Some(body.to_string()),
    )
    .await;
    (s, v)
}

/// Asserts a 400 envelope whose only error is about `property`.
fn assert_invalid(status: u16, v: &Value, property: &str, attempted: Value) {
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["WasSuccessful"], false, "{v}");
    assert_eq!(v["Value"], Value::Null, "{v}");
    let errors = v["Errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert_eq!(errors[0]["PropertyName"], property, "{v}");
    assert_eq!(errors[0]["AttemptedValue"], attempted, "{v}");
    assert_eq!(
        v["Message"],
        format!("{property}: {}", errors[0]["Message"].as_str().unwrap()),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_token_works_over_radius_at_once() {
    let h = Harness::start(&http_config()).await;
    let (status, v) = create(
        &h,
        json!({"BusinessId": 1, "AccessCode": "70123", "MinutesIncluded": 45,
               "Description": "Day pass", "UserLimit": 1,
               "ValidTo": "2026-11-23T17:00:00Z", "VisitorGuid": "0F8FAD5B-D9CB-469F-A165-70867728950E"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Status"], 200);
    assert_eq!(v["WasSuccessful"], true);
    assert_eq!(v["Errors"], Value::Null);
    assert_eq!(v["Message"], "AccessToken was successfully created.");
    assert_eq!(v["UpdatedBy"], "platform");
    assert_eq!(v["UpdatedOn"], "2026-11-23T09:00:00Z");
    let id = v["Value"]["Id"].as_i64().unwrap();

    let r = ask(h.auth, pap("70123", "70123", Some("02:00:00:00:00:01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessAccept, "{}", r.reply_message());
    assert_eq!(r.session_timeout(), Some(45 * 60));

    // The read model carries the fields and the usage.
    let (status, v, _) = call(
        &h,
        "GET",
        &format!("/api/spaces/accesstokens/{id}"),
        Some(READER),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let t = &v["Value"];
    assert_eq!(t["Id"], id);
    assert_eq!(t["AccessCode"], "70123");
    assert_eq!(t["MinutesIncluded"], 45);
    assert_eq!(t["ValidTo"], "2026-11-23T17:00:00Z");
    assert_eq!(t["VisitorGuid"], "0f8fad5b-d9cb-469f-a165-70867728950e");
    assert_eq!(t["BoundDevices"], json!(["02:00:00:00:00:01"]));
    assert_eq!(t["MinutesUsed"], 0);
    assert_eq!(t["MinutesLeft"], 45);

    // Ten accounted minutes show as used.
    let r = ask(
        h.acct,
        acct(2, "s1", "70123", "02:00:00:00:00:01", Some(600), None),
    )
    .await
    .unwrap();
    assert_eq!(r.code, Code::AccountingResponse);
    let (_, v, _) = call(
        &h,
        "GET",
        &format!("/api/spaces/accesstokens/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(v["Value"]["SecondsUsed"], 600);
    assert_eq!(v["Value"]["MinutesUsed"], 10);
    assert_eq!(v["Value"]["MinutesLeft"], 35);
    assert_eq!(v["Value"]["SecondsLeft"], 35 * 60);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_error_is_a_400_envelope() {
    let h = Harness::start(&http_config()).await;
    let ok = json!({"BusinessId": 1, "AccessCode": "55555", "MinutesIncluded": 60});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };

    // Required fields, each missing alone (the seed's own example first).
    let (s, v) = create(&h, without("AccessCode")).await;
    assert_invalid(s, &v, "AccessCode", Value::Null);
    assert_eq!(v["Message"], "AccessCode: is a required field");
    let (s, v) = create(&h, without("BusinessId")).await;
    assert_invalid(s, &v, "BusinessId", Value::Null);
    let (s, v) = create(&h, without("MinutesIncluded")).await;
    assert_invalid(s, &v, "MinutesIncluded", Value::Null);

    // Each field's bad values.
    let cases: Vec<(&str, Value)> = vec![
        ("BusinessId", json!(0)),
        ("BusinessId", json!("abc")),
        ("AccessCode", json!("")),
        ("AccessCode", json!(" 55555")),
        ("AccessCode", json!("x".repeat(129))),
        ("MinutesIncluded", json!(0)),
        ("MinutesIncluded", json!(-5)),
        ("MinutesIncluded", json!(1.5)),
        ("MinutesIncluded", json!(true)),
        ("ValidFrom", json!("tomorrow")),
        ("ValidTo", json!("2026-13-01T00:00:00Z")),
        ("UserLimit", json!(0)),
        ("DeviceLimit", json!(100_000)),
        ("MacAddress", json!("aa:bb")),
        ("BookingGuid", json!("nope")),
        ("VisitorGuid", json!(1234)),
        ("Description", json!(["a list"])),
        ("Description", json!("d".repeat(1025))),
    ];
    for (field, value) in cases {
        let (s, v) = create(&h, with(field, value.clone())).await;
        assert_invalid(s, &v, field, value);
    }
    // The window must be in order.
    let mut b = with("ValidFrom", json!("2026-11-23T10:00:00Z"));
    b["ValidTo"] = json!("2026-11-23T09:00:00Z");
    let (s, v) = create(&h, b).await;
    assert_invalid(s, &v, "ValidTo", json!("2026-11-23T09:00:00Z"));

    // Several bad fields are all listed.
    let (s, v) = create(&h, json!({"BusinessId": -1, "MinutesIncluded": "many"})).await;
    assert_eq!(s, 400);
    let names: Vec<&str> = v["Errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["PropertyName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["BusinessId", "AccessCode", "MinutesIncluded"]);

    // Malformed JSON and a body that is not an object.
    let (s, v, _) = call(
        &h,
        "POST",
        "/api/spaces/accesstokens",
        Some(CREATE),
        Some("{\"BusinessId\": 1,".into()),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["WasSuccessful"], false);
    assert_eq!(v["Errors"][0]["PropertyName"], "Body");
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .starts_with("Body: is not valid JSON"),
        "{v}"
    );
    let (s, v, _) = call(
        &h,
        "POST",
        "/api/spaces/accesstokens",
        Some(CREATE),
        Some("[1, 2]".into()),
    )
    .await;
    assert_eq!(
        (s, v["Errors"][0]["PropertyName"].clone()),
        (400, json!("Body"))
    );

    // Duplicates and collisions with a member's PIN are validation errors.
    let (s, _) = create(&h, ok.clone()).await;
    assert_eq!(s, 200);
    let (s, v) = create(&h, ok.clone()).await;
    assert_invalid(s, &v, "AccessCode", json!("55555"));
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("already used by token"),
        "{v}"
    );
    let member = h
        .store
        .create_customer(
            &pinradius::model::NewCustomer {
                business_id: 1,
                name: "Grace".into(),
                email: None,
            },
            Some("24680"),
            60,
            t0(),
            &mut || unreachable!(),
        )
        .unwrap();
    let (s, v) = create(&h, with("AccessCode", json!("24680"))).await;
    assert_invalid(s, &v, "AccessCode", json!("24680"));
    assert!(
        v["Message"].as_str().unwrap().contains("customer"),
        "{v} (customer {})",
        member.id
    );
    // The same code in another business is fine.
    let (s, v) = create(&h, with("BusinessId", json!(2))).await;
    assert_eq!(s, 200, "{v}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_and_roles() {
    let h = Harness::start(&http_config()).await;
    let body = json!({"BusinessId": 1, "AccessCode": "31415", "MinutesIncluded": 60}).to_string();
    let path = "/api/spaces/accesstokens";

    let (s, v, _) = call(&h, "POST", path, None, Some(body.clone())).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["WasSuccessful"], false);
    assert_eq!(v["Errors"][0]["PropertyName"], "Authorization");
    let (s, _, _) = call(
        &h,
        "POST",
        path,
        Some("wrong-token-0123456789abcdef"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 401);
    // A prefix of a valid token is not valid.
    let (s, _, _) = call(&h, "POST", path, Some(&CREATE[..20]), Some(body.clone())).await;
    assert_eq!(s, 401);
    // The read-only key may not create; the create-only key may not read or delete.
    let (s, v, _) = call(&h, "POST", path, Some(READER), Some(body.clone())).await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .contains("AccessToken-Create"),
        "{v}"
    );
    let (s, v, _) = call(&h, "POST", path, Some(CREATE), Some(body.clone())).await;
    assert_eq!(s, 200, "{v}");
    let id = v["Value"]["Id"].as_i64().unwrap();
    let one = format!("{path}/{id}");
    assert_eq!(call(&h, "GET", &one, Some(CREATE), None).await.0, 403);
    assert_eq!(call(&h, "GET", path, Some(CREATE), None).await.0, 403);
    assert_eq!(call(&h, "DELETE", &one, Some(CREATE), None).await.0, 403);
    assert_eq!(call(&h, "DELETE", &one, Some(READER), None).await.0, 403);
    assert_eq!(call(&h, "GET", &one, None, None).await.0, 401);
    // Nothing was deleted by the refused calls.
    assert_eq!(call(&h, "GET", &one, Some(READER), None).await.0, 200);
    // Admin may do everything.
    assert_eq!(call(&h, "DELETE", &one, Some(ADMIN), None).await.0, 200);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_and_filters_and_delete_ends_the_token() {
    let h = Harness::start(&http_config()).await;
    for (business, code) in [(1, "10001"), (1, "10002"), (1, "10003"), (2, "10001")] {
        let (s, v) = create(
            &h,
            json!({"BusinessId": business, "AccessCode": code, "MinutesIncluded": 30}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let list = |q: &'static str| call(&h, "GET", q, Some(READER), None);
    let (s, v, _) = list("/api/spaces/accesstokens?page=1&size=2").await;
    assert_eq!(s, 200, "{v}");
    let page = &v["Value"];
    assert_eq!(page["TotalItems"], 4);
    assert_eq!(page["TotalPages"], 2);
    assert_eq!(page["HasNextPage"], true);
    assert_eq!(page["Records"].as_array().unwrap().len(), 2);
    let (_, v, _) = list("/api/spaces/accesstokens?page=2&size=2").await;
    assert_eq!(v["Value"]["HasNextPage"], false);
    assert_eq!(v["Value"]["HasPreviousPage"], true);
    assert_eq!(v["Value"]["Records"][1]["BusinessId"], 2);
    let (_, v, _) = list("/api/spaces/accesstokens?BusinessId=1").await;
    assert_eq!(v["Value"]["TotalItems"], 3);
    let (_, v, _) = list("/api/spaces/accesstokens?AccessCode=10001").await;
    assert_eq!(v["Value"]["TotalItems"], 2);
    let (_, v, _) = list("/api/spaces/accesstokens?AccessCode=10001&BusinessId=2").await;
    assert_eq!(v["Value"]["TotalItems"], 1);
    let id = v["Value"]["Records"][0]["Id"].as_i64().unwrap();
    // Bad paging is a 400 naming the parameter.
    let (s, v, _) = list("/api/spaces/accesstokens?size=0").await;
    assert_invalid(s, &v, "size", json!("0"));
    let (s, v, _) = list("/api/spaces/accesstokens?page=x").await;
    assert_invalid(s, &v, "page", json!("x"));
    let (s, v, _) = list("/api/spaces/accesstokens/abc").await;
    assert_invalid(s, &v, "Id", json!("abc"));
    let (s, v, _) = list("/api/spaces/accesstokens/999").await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["WasSuccessful"], false);

    // Business 1's 10001 logs in; deleting it ends that at once.
    let r = ask(h.auth, pap("10001", "10001", None)).await.unwrap();
    assert_eq!(r.code, Code::AccessAccept);
    let (_, v, _) = list("/api/spaces/accesstokens?AccessCode=10001&BusinessId=1").await;
    let id1 = v["Value"]["Records"][0]["Id"].as_i64().unwrap();
    let (s, v, _) = call(
        &h,
        "DELETE",
        &format!("/api/spaces/accesstokens/{id1}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["Message"], "AccessToken was successfully deleted.");
    assert_eq!(v["Value"]["Id"], id1);
    let r = ask(h.auth, pap("10001", "10001", None)).await.unwrap();
    assert_eq!(r.code, Code::AccessReject);
    let (s, _, _) = call(
        &h,
        "DELETE",
        &format!("/api/spaces/accesstokens/{id1}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 404);
    // The other business's token is untouched.
    let (s, _, _) = call(
        &h,
        "GET",
        &format!("/api/spaces/accesstokens/{id}"),
        Some(READER),
        None,
    )
    .await;
    assert_eq!(s, 200);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_unknown_routes() {
    let h = Harness::start(&http_config()).await;
    let (s, v, _) = call(&h, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["openapi"], "3.0.3");
    assert!(v["paths"]["/api/spaces/accesstokens"]["post"].is_object());
    let (s, v, _) = call(&h, "GET", "/api/nothing", Some(ADMIN), None).await;
    assert_eq!(s, 404);
    assert_eq!(v["WasSuccessful"], false);
    h.stop().await;
}

/// The value of a sample line `name{labels} value` in the metrics text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_traffic() {
    let h = Harness::start(&http_config()).await;
    create(
        &h,
        json!({"BusinessId": 1, "AccessCode": "27182", "MinutesIncluded": 60}),
    )
    .await;
    for _ in 0..3 {
        let r = ask(h.auth, pap("27182", "27182", Some("02:00:00:00:00:09")))
            .await
            .unwrap();
        assert_eq!(r.code, Code::AccessAccept);
    }
    let r = ask(h.auth, pap("99999", "99999", None)).await.unwrap();
    assert_eq!(r.code, Code::AccessReject);
    // A retransmit (same socket, identifier and authenticator) is answered from the
    // cache and counted as such, not as a request.
    let request = pap("27182", "27182", Some("02:00:00:00:00:09"));
    let client = crate::harness::Client::new().await;
    let first = client.exchange(h.auth, &request).await.unwrap();
    assert_eq!(client.exchange(h.auth, &request).await.unwrap(), first);
    // A malformed datagram is dropped; a wrong secret too.
    assert!(!crate::harness::answered(h.auth, &[1, 2, 0, 5]).await);
    let r = ask(
        h.acct,
        acct(1, "m1", "27182", "02:00:00:00:00:09", Some(0), None),
    )
    .await
    .unwrap();
    assert_eq!(r.code, Code::AccountingResponse);

    let (s, _, text) = call(&h, "GET", "/metrics", None, None).await;
    assert_eq!(s, 200);
    let want = [
        (
            "pinradius_requests_total{code=\"Access-Request\",client=\"nas\",transport=\"udp\"}",
            5.0,
        ),
        (
            "pinradius_requests_total{code=\"Accounting-Request\",client=\"nas\",transport=\"udp\"}",
            1.0,
        ),
        ("pinradius_accepts_total{client=\"nas\"}", 4.0),
        ("pinradius_retransmits_total{port=\"auth\"}", 1.0),
        ("pinradius_rejects_total{reason=\"unknown_code\"}", 1.0),
        ("pinradius_drops_total{cause=\"malformed\"}", 1.0),
        (
            "pinradius_request_duration_seconds_count{port=\"auth\"}",
            5.0,
        ),
        ("pinradius_accounting_commit_seconds_count", 1.0),
        ("pinradius_open_sessions", 1.0),
        (
            "pinradius_api_requests_total{route=\"create\",status=\"200\"}",
            1.0,
        ),
    ];
    for (series, value) in want {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert!(text.contains("# TYPE pinradius_lockouts counter"), "{text}");
    assert!(
        text.contains("# TYPE pinradius_retransmits counter"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_replaces_a_token_with_the_same_validation_as_post() {
    let h = Harness::start(&http_config()).await;
    let (status, v) = create(
        &h,
        json!({"BusinessId": 1, "AccessCode": "48213", "MinutesIncluded": 60}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let id = v["Value"]["Id"].as_i64().unwrap();
    let path = format!("/api/spaces/accesstokens/{id}");
    let body =
        json!({"BusinessId": 1, "AccessCode": "48214", "MinutesIncluded": 90, "UserLimit": 2});
    // The create-only key may not edit.
    let (status, _, _) = call(&h, "PUT", &path, Some(CREATE), Some(body.to_string())).await;
    assert_eq!(status, 403);
    let (status, v, _) = call(&h, "PUT", &path, Some(ADMIN), Some(body.to_string())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["WasSuccessful"], true);
    let t = h.store.token_by_id(id).unwrap().unwrap();
    assert_eq!(
        (t.access_code.as_str(), t.minutes_included, t.user_limit),
        ("48214", 90, Some(2))
    );
    // Bad input: 400 naming the property, nothing changed.
    let bad = json!({"BusinessId": 1, "AccessCode": "48214", "MinutesIncluded": 0});
    let (status, v, _) = call(&h, "PUT", &path, Some(ADMIN), Some(bad.to_string())).await;
    assert_eq!(status, 400);
    assert!(
        v["Message"]
            .as_str()
            .unwrap()
            .starts_with("MinutesIncluded"),
        "{v}"
    );
    assert_eq!(
        h.store.token_by_id(id).unwrap().unwrap().minutes_included,
        90
    );
    let (status, _, _) = call(
        &h,
        "PUT",
        "/api/spaces/accesstokens/99999",
        Some(ADMIN),
        Some(body.to_string()),
    )
    .await;
    assert_eq!(status, 404);
    h.stop().await;
}

/// The README's own API example, as written, creates a token that logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_api_example_works_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let example = readme
        .lines()
        .skip_while(|l| {
            !l.starts_with("curl -s -X POST http://127.0.0.1:8080/api/spaces/accesstokens")
        })
        .find_map(|l| {
            l.trim()
                .strip_prefix("-d '")
                .and_then(|rest| rest.strip_suffix('\''))
        })
        .expect("the README has the curl example with a -d body");
    // The harness's clock is fixed at 2026-11-23; the example must not be expired by
    // then, nor by the real today.
    let h = Harness::start(&http_config()).await;
    let (status, v, _) = call(
        &h,
        "POST",
        "/api/spaces/accesstokens",
        Some(CREATE),
        Some(example.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["Message"], "AccessToken was successfully created.");
    let code = serde_json::from_str::<Value>(example).unwrap()["AccessCode"]
        .as_str()
        .unwrap()
        .to_string();
    let r = crate::harness::ask(
        h.auth,
        crate::harness::pap(&code, &code, Some("aa-bb-cc-00-00-01")),
    )
    .await
    .unwrap();
    assert_eq!(
        r.code,
        radius::core::code::Code::AccessAccept,
        "{}",
        r.reply_message()
    );
    h.stop().await;
}
