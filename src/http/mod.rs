//! The HTTP side (`[http] listen`): the access-token API shaped like the coworking
//! platform's own (seed 003), `/metrics` for Prometheus and `/api/openapi.json`.
//!
//! Every API answer uses the platform's envelope (`Status`, `Message`, `Value`,
//! `WasSuccessful`, `Errors`). Requests carry `Authorization: Bearer <token>`; the
//! token is compared in constant time with the `[[http.api_key]]` tokens, and the
//! key's roles decide the routes it may use (401 without a valid token, 403 without
//! the role). Store calls run on blocking threads; validation is the CLI's
//! (`commands::tokens`), so the two front ends cannot disagree.

mod openapi;
mod tokens;
pub mod webhooks;

use crate::config::{ApiKey, Role};
use crate::server::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;

/// Largest webhook body: an array of the platform's records.
const MAX_WEBHOOK_BODY: usize = 4 * 1024 * 1024;

/// The routes, over the server's shared state.
pub fn router(ctx: Arc<Context>) -> Router {
    Router::new()
        .route(
            "/api/spaces/accesstokens",
            get(tokens::list).post(tokens::create),
        )
        .route(
            "/api/spaces/accesstokens/{id}",
            get(tokens::read).put(tokens::update).delete(tokens::delete),
        )
        .route(
            "/api/webhooks/nexudus",
            axum::routing::post(webhooks::receive).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY)),
        )
        .route("/api/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(ctx)
}

/// Serves `listener` until `shutdown` completes, within `limits`: at most
/// `max_connections` connections (more are closed as they arrive, so a flood of slow
/// or idle connections holds a bounded number of file descriptors and buffers, and
/// RADIUS and SQLite keep theirs), each request's headers within `header_timeout`,
/// each connection for at most `max_connection`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<Context>,
    limits: crate::config::HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let app = router(ctx.clone()).layer(DefaultBodyLimit::max(limits.max_body));
    let places = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(v) => v,
                Err(e) => {
                    // EMFILE and friends: wait a moment rather than spin.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            drop(stream);
            refused += 1;
            ctx.metrics.dropped("http_connection_limit");
            if refused.is_power_of_two() {
                tracing::warn!(%peer, refused, max = limits.max_connections, "HTTP connection refused: the listener is at http.max_connections");
            }
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.max_connection, connection).await;
            drop(place);
        });
    }
}

/// One bad input, as the platform reports it.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub property: &'static str,
    pub attempted: Value,
    pub message: String,
}

/// The success envelope (seed 003's example response).
pub(crate) fn success(
    ctx: &Context,
    message: &str,
    value: Value,
    updated_by: &str,
) -> (StatusCode, Value) {
    let now = ctx
        .clock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (
        StatusCode::OK,
        json!({
            "Status": 200,
            "Message": message,
            "Value": value,
            "OpenInDialog": false,
            "OpenInWindow": false,
            "RedirectURL": null,
            "JavaScript": null,
            "UpdatedOn": now,
            "UpdatedBy": updated_by,
            "Errors": null,
            "WasSuccessful": true,
        }),
    )
}

/// The failure envelope: `Message` is "PropertyName: message" (each error, joined by
/// "; "), `Value` null, and every error listed.
pub(crate) fn failure(status: StatusCode, errors: &[ApiError]) -> (StatusCode, Value) {
    let message = errors
        .iter()
        .map(|e| format!("{}: {}", e.property, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    let list: Vec<Value> = errors
        .iter()
        .map(|e| {
            json!({
                "AttemptedValue": e.attempted,
                "Message": e.message,
                "PropertyName": e.property,
            })
        })
        .collect();
    (
        status,
        json!({
            "Status": status.as_u16(),
            "Message": message,
            "Value": null,
            "Errors": list,
            "WasSuccessful": false,
        }),
    )
}

pub(crate) fn one_error(
    status: StatusCode,
    property: &'static str,
    attempted: Value,
    message: impl Into<String>,
) -> (StatusCode, Value) {
    failure(
        status,
        &[ApiError {
            property,
            attempted,
            message: message.into(),
        }],
    )
}

/// Turns an envelope into a response, counting it under `route`.
pub(crate) fn respond(
    ctx: &Context,
    route: &'static str,
    (status, body): (StatusCode, Value),
) -> Response {
    ctx.metrics
        .api_requests
        .get_or_create(&crate::metrics::ApiLabels {
            route,
            status: status.as_u16(),
        })
        .inc();
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"pinradius\""),
        );
    }
    response
}

/// The API key presenting a valid bearer token with `role`, or the 401/403 envelope.
pub(crate) fn authorize(
    ctx: &Context,
    headers: &HeaderMap,
    role: Role,
) -> Result<ApiKey, (StatusCode, Value)> {
    let unauthorized = |why: &str| {
        one_error(
            StatusCode::UNAUTHORIZED,
            "Authorization",
            Value::Null,
            why.to_string(),
        )
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            "is missing: send Authorization: Bearer <token>",
        ));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(given) = given else {
        return Err(unauthorized("is not a Bearer token"));
    };
    let settings = ctx.settings();
    let key = find_key(&settings.api_keys, given.as_bytes());
    let Some(key) = key else {
        return Err(unauthorized("the bearer token is not valid"));
    };
    if !key.allows(role) {
        return Err(one_error(
            StatusCode::FORBIDDEN,
            "Authorization",
            Value::Null,
            format!(
                "API key {:?} lacks the role {} (or Admin)",
                key.name,
                role.name()
            ),
        ));
    }
    Ok(key.clone())
}

/// The key whose token equals `given`. Every key is compared, each in constant time
/// (subtle), so the time taken says nothing about how much of a token was right.
fn find_key<'a>(keys: &'a [ApiKey], given: &[u8]) -> Option<&'a ApiKey> {
    use subtle::ConstantTimeEq;
    let mut found = None;
    for k in keys {
        if bool::from(k.token.as_bytes().ct_eq(given)) {
            found = Some(k);
        }
    }
    found
}

/// Runs a store call on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    ctx: &Arc<Context>,
    f: impl FnOnce(&Context) -> T + Send + 'static,
) -> Result<T, (StatusCode, Value)> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || f(&ctx))
        .await
        .map_err(|e| internal(&e.to_string()))
}

pub(crate) fn internal(detail: &str) -> (StatusCode, Value) {
    tracing::error!("HTTP API: internal error: {detail}");
    one_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Server",
        Value::Null,
        format!("internal error: {detail}"),
    )
}

async fn not_found(
    axum::extract::State(ctx): axum::extract::State<Arc<Context>>,
    uri: axum::http::Uri,
) -> Response {
    respond(
        &ctx,
        "other",
        one_error(
            StatusCode::NOT_FOUND,
            "Path",
            Value::String(uri.path().to_string()),
            "no such route; see /api/openapi.json",
        ),
    )
}

/// `GET /metrics`: Prometheus/OpenMetrics text. Open sessions are counted now.
async fn metrics(axum::extract::State(ctx): axum::extract::State<Arc<Context>>) -> Response {
    match blocking(&ctx, |c| c.store.count_open_sessions()).await {
        Ok(Ok(n)) => {
            ctx.metrics
                .open_sessions
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Ok(Err(e)) => tracing::error!(error = %e, "metrics: cannot count open sessions"),
        Err(_) => {}
    }
    ctx.metrics.platform_staleness(ctx.clock.now());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, token: &str, roles: &[Role]) -> ApiKey {
        let text = format!(
            "[server]\n[[client]]\nname = \"n\"\naddress = \"127.0.0.1\"\nsecret = \"s\"\nbusiness_id = 1\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[[http.api_key]]\nname = \"{name}\"\ntoken = \"{token}\"\nroles = [{}]\n",
            roles
                .iter()
                .map(|r| format!("\"{}\"", r.name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        crate::config::Config::from_toml(std::path::Path::new("p.toml"), &text)
            .unwrap()
            .http
            .unwrap()
            .api_keys
            .remove(0)
    }

    #[test]
    fn keys_match_exactly_and_roles_include_admin() {
        let keys = vec![
            key("reader", "reader-token-0123456789", &[Role::Read]),
            key("admin", "admin-token-0123456789ab", &[Role::Admin]),
        ];
        assert_eq!(
            find_key(&keys, b"reader-token-0123456789").unwrap().name,
            "reader"
        );
        assert!(find_key(&keys, b"reader-token-012345678").is_none());
        assert!(find_key(&keys, b"reader-token-01234567890").is_none());
        assert!(find_key(&keys, b"").is_none());
        assert!(keys[0].allows(Role::Read) && !keys[0].allows(Role::Create));
        assert!(Role::ALL.iter().all(|r| keys[1].allows(*r)));
    }

    #[test]
    fn failure_message_names_each_property() {
        let (status, body) = failure(
            StatusCode::BAD_REQUEST,
            &[
                ApiError {
                    property: "AccessCode",
                    attempted: Value::Null,
                    message: "is a required field".into(),
                },
                ApiError {
                    property: "MinutesIncluded",
                    attempted: json!(0),
                    message: "is not a whole number from 1 to 5256000".into(),
                },
            ],
        );
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["Message"],
            "AccessCode: is a required field; MinutesIncluded: is not a whole number from 1 to 5256000"
        );
        assert_eq!(body["Value"], Value::Null);
        assert_eq!(body["WasSuccessful"], false);
        assert_eq!(body["Errors"][1]["AttemptedValue"], 0);
        assert_eq!(body["Errors"][0]["PropertyName"], "AccessCode");
    }
}
