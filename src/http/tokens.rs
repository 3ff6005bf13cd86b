//! `/api/spaces/accesstokens`: create, read, list (paged) and delete.

use super::{ApiError, authorize, blocking, failure, internal, one_error, respond, success};
use crate::commands::Field;
use crate::commands::tokens::{self as token_commands, TokenInput};
use crate::config::Role;
use crate::model::{AccessToken, TokenUsage};
use crate::server::Context;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The token fields a request body may carry (seed 003, plus DeviceLimit), matched
/// case-insensitively as the platform's model binding does. Other properties (an
/// `Id` echoed back, say) are ignored.
const FIELDS: [Field; 11] = [
    Field::BusinessId,
    Field::AccessCode,
    Field::MinutesIncluded,
    Field::Description,
    Field::ValidFrom,
    Field::ValidTo,
    Field::UserLimit,
    Field::DeviceLimit,
    Field::MacAddress,
    Field::BookingGuid,
    Field::VisitorGuid,
];

const DEFAULT_PAGE_SIZE: u64 = 25;
const MAX_PAGE_SIZE: u64 = 1000;

/// Reads the body into the CLI's text input, keeping each property's JSON value for
/// `AttemptedValue`. Strings and numbers are taken as text (the validation parses
/// them); other JSON types are errors of their own.
fn input_of(
    body: &Map<String, Value>,
) -> (TokenInput, HashMap<&'static str, Value>, Vec<ApiError>) {
    let mut input = TokenInput::default();
    let mut attempted = HashMap::new();
    let mut type_errors = Vec::new();
    for field in FIELDS {
        let name = field.api_name();
        let Some((_, value)) = body.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) else {
            continue;
        };
        attempted.insert(name, value.clone());
        let text = match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                type_errors.push(ApiError {
                    property: name,
                    attempted: value.clone(),
                    message: "must be a string or a number".into(),
                });
                continue;
            }
        };
        let slot = match field {
            Field::BusinessId => &mut input.business_id,
            Field::AccessCode => &mut input.access_code,
            Field::MinutesIncluded => &mut input.minutes_included,
            Field::Description => &mut input.description,
            Field::ValidFrom => &mut input.valid_from,
            Field::ValidTo => &mut input.valid_to,
            Field::UserLimit => &mut input.user_limit,
            Field::DeviceLimit => &mut input.device_limit,
            Field::MacAddress => &mut input.mac_address,
            Field::BookingGuid => &mut input.booking_guid,
            _ => &mut input.visitor_guid,
        };
        *slot = text;
    }
    (input, attempted, type_errors)
}

/// The read model: the token's fields as the platform names them, and its usage.
fn read_model(t: &AccessToken, usage: &TokenUsage) -> Value {
    let time = |v: Option<chrono::DateTime<chrono::Utc>>| {
        v.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let included = u64::from(t.minutes_included) * 60;
    // Open sessions count with their time since the last accounting update, as the
    // next login's Session-Timeout does.
    let used = usage.used_seconds + usage.live_seconds_elsewhere;
    let left = included.saturating_sub(used);
    json!({
        "Id": t.id,
        "BusinessId": t.business_id,
        "AccessCode": t.access_code,
        "MinutesIncluded": t.minutes_included,
        "Description": t.description,
        "ValidFrom": time(t.valid_from),
        "ValidTo": time(t.valid_to),
        "UserLimit": t.user_limit,
        "DeviceLimit": t.device_limit,
        "MacAddress": t.mac_address.map(|m| m.to_string()),
        "BookingGuid": t.booking_guid,
        "VisitorGuid": t.visitor_guid,
        "CustomerId": t.customer_id,
        "CreatedOn": time(Some(t.created_at)),
        "Revoked": t.revoked_at.is_some(),
        "RevokedOn": time(t.revoked_at),
        "BoundDevices": usage.bound_devices.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        "OpenSessions": usage.open_sessions_elsewhere,
        "SecondsUsed": used,
        "SecondsLeft": left,
        "MinutesUsed": used / 60,
        "MinutesLeft": left / 60,
    })
}

fn usage_of(ctx: &Context, t: &AccessToken) -> Result<TokenUsage, StoreError> {
    let now = ctx.clock.now();
    let rules = &ctx.settings().rules;
    ctx.store
        .token_usage(t.id, None, now, rules.stale_before(now))
}

fn store_error(e: &StoreError) -> (StatusCode, Value) {
    internal(&e.to_string())
}

/// `POST /api/spaces/accesstokens` (role AccessToken-Create).
pub(super) async fn create(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "create";
    let key = match authorize(&ctx, &headers, Role::Create) {
        Ok(k) => k,
        Err(e) => return respond(&ctx, ROUTE, e),
    };
    let (token, attempted_code) = match token_of_body(&body, ctx.clock.now()) {
        Ok(t) => t,
        Err(e) => return respond(&ctx, ROUTE, e),
    };
    let created = blocking(&ctx, move |c| c.store.create_token(&token, c.clock.now())).await;
    let envelope = match created {
        Err(e) => e,
        Ok(Ok(id)) => {
            tracing::info!(key = %key.name, token = id, "API: access token created");
            success(
                &ctx,
                "AccessToken was successfully created.",
                json!({ "Id": id }),
                &key.name,
            )
        }
        Ok(Err(e)) => write_failure(e, attempted_code),
    };
    respond(&ctx, ROUTE, envelope)
}

/// A failed create or update: a taken code names the AccessCode attempted.
fn write_failure(e: StoreError, attempted_code: Value) -> (StatusCode, Value) {
    match e {
        StoreError::CodeTaken {
            business_id, owner, ..
        } => one_error(
            StatusCode::BAD_REQUEST,
            "AccessCode",
            attempted_code,
            format!("is already used by {owner} in business {business_id}"),
        ),
        e => store_error(&e),
    }
}

/// A token from a request body in the seed's shape (POST and PUT alike), with the
/// AccessCode as attempted (for a clash's error); or the error envelope.
fn token_of_body(
    body: &[u8],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(crate::model::NewAccessToken, Value), (StatusCode, Value)> {
    let object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => o,
        Ok(other) => {
            return Err(one_error(
                StatusCode::BAD_REQUEST,
                "Body",
                other,
                "must be a JSON object with the token's properties",
            ));
        }
        Err(e) => {
            return Err(one_error(
                StatusCode::BAD_REQUEST,
                "Body",
                Value::String(String::from_utf8_lossy(body).chars().take(200).collect()),
                format!("is not valid JSON: {e}"),
            ));
        }
    };
    let (input, attempted, mut errors) = input_of(&object);
    let parsed =
        token_commands::parse(&input).and_then(|t| token_commands::usable(&t, now).map(|()| t));
    let token = match parsed {
        Ok(t) if errors.is_empty() => t,
        Ok(_) => return Err(failure(StatusCode::BAD_REQUEST, &errors)),
        Err(field_errors) => {
            for e in field_errors {
                let property = e.field.api_name();
                // A property with a type error is reported once.
                if errors.iter().any(|x| x.property == property) {
                    continue;
                }
                errors.push(ApiError {
                    property,
                    attempted: attempted.get(property).cloned().unwrap_or(Value::Null),
                    message: e.message,
                });
            }
            return Err(failure(StatusCode::BAD_REQUEST, &errors));
        }
    };
    let attempted_code = attempted
        .get(Field::AccessCode.api_name())
        .cloned()
        .unwrap_or(Value::Null);
    Ok((token, attempted_code))
}

/// `PUT /api/spaces/accesstokens/{id}` (role AccessToken-Edit): replaces the token's
/// fields, with the same validation and envelope as POST. A token from Nexudus is
/// changed there (409). A changed code disconnects the sessions of the old one.
pub(super) async fn update(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "update";
    let (key, id) =
        match authorize(&ctx, &headers, Role::Edit).and_then(|k| Ok((k, parse_id(&raw)?))) {
            Ok(v) => v,
            Err(e) => return respond(&ctx, ROUTE, e),
        };
    let (token, attempted_code) = match token_of_body(&body, ctx.clock.now()) {
        Ok(t) => t,
        Err(e) => return respond(&ctx, ROUTE, e),
    };
    let updated = blocking(&ctx, move |c| {
        let Some(current) = c.store.token_by_id(id)? else {
            return Ok(Err(not_found(id)));
        };
        let moves =
            current.access_code != token.access_code || current.business_id != token.business_id;
        if let Some(refused) = not_editable(c, &current, Some(moves), "change")? {
            return Ok(Err(refused));
        }
        let changed = c.store.update_token(id, &token, c.clock.now())?;
        c.disconnect_wake.notify_one();
        Ok::<_, StoreError>(Ok(changed))
    })
    .await;
    let envelope = match updated {
        Err(e) => e,
        Ok(Ok(Err(e))) => e,
        Ok(Ok(Ok(_))) => {
            tracing::info!(key = %key.name, token = id, "API: access token updated");
            success(
                &ctx,
                "AccessToken was successfully updated.",
                json!({ "Id": id }),
                &key.name,
            )
        }
        Ok(Err(e)) => write_failure(e, attempted_code),
    };
    respond(&ctx, ROUTE, envelope)
}

/// Why the API may not `verb` this token, if it may not: a person's PIN token (the
/// CLI's rule, `token_edits::pin_token_owner`), or a token from Nexudus (409).
fn not_editable(
    c: &Context,
    token: &crate::model::AccessToken,
    moves_code: Option<bool>,
    verb: &str,
) -> Result<Option<(StatusCode, Value)>, StoreError> {
    if let Some(owner) = crate::commands::token_edits::pin_token_owner(token, moves_code) {
        return Ok(Some(one_error(
            StatusCode::BAD_REQUEST,
            "Id",
            json!(token.id),
            format!("is the PIN token of {owner}; {verb} the person instead"),
        )));
    }
    Ok(c.store
        .platform_source(token.id)?
        .map(|(entity, platform_id)| {
            one_error(
                StatusCode::CONFLICT,
                "Id",
                json!(token.id),
                format!("came from Nexudus ({entity} {platform_id}): {verb} it there"),
            )
        }))
}

fn parse_id(raw: &str) -> Result<i64, (StatusCode, Value)> {
    raw.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
        one_error(
            StatusCode::BAD_REQUEST,
            "Id",
            Value::String(raw.to_string()),
            "is not a whole number of 1 or more",
        )
    })
}

fn not_found(id: i64) -> (StatusCode, Value) {
    one_error(
        StatusCode::NOT_FOUND,
        "Id",
        json!(id),
        format!("no AccessToken with Id {id}"),
    )
}

/// `GET /api/spaces/accesstokens/{id}` (role AccessToken-Read).
pub(super) async fn read(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    const ROUTE: &str = "read";
    let (key, id) =
        match authorize(&ctx, &headers, Role::Read).and_then(|k| Ok((k, parse_id(&raw)?))) {
            Ok(v) => v,
            Err(e) => return respond(&ctx, ROUTE, e),
        };
    let found = blocking(&ctx, move |c| {
        let Some(t) = c.store.token_by_id(id)? else {
            return Ok(None);
        };
        let usage = usage_of(c, &t)?;
        Ok::<_, StoreError>(Some(read_model(&t, &usage)))
    })
    .await;
    let envelope = match found {
        Err(e) => e,
        Ok(Ok(Some(model))) => success(&ctx, "AccessToken", model, &key.name),
        Ok(Ok(None)) => not_found(id),
        Ok(Err(e)) => store_error(&e),
    };
    respond(&ctx, ROUTE, envelope)
}

/// `GET /api/spaces/accesstokens?page=1&size=25&BusinessId=..&AccessCode=..`
/// (role AccessToken-Read): one page in id order, in the platform's paged shape.
pub(super) async fn list(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    const ROUTE: &str = "list";
    let key = match authorize(&ctx, &headers, Role::Read) {
        Ok(k) => k,
        Err(e) => return respond(&ctx, ROUTE, e),
    };
    let Ok(Query(query)) = query else {
        return respond(
            &ctx,
            ROUTE,
            one_error(
                StatusCode::BAD_REQUEST,
                "Query",
                Value::Null,
                "is not a valid query string",
            ),
        );
    };
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut errors = Vec::new();
    let mut number =
        |property: &'static str, min: u64, max: u64, default: Option<u64>| match get(property) {
            None => default,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Some(n),
                _ => {
                    errors.push(ApiError {
                        property,
                        attempted: Value::String(v.to_string()),
                        message: format!("is not a whole number from {min} to {max}"),
                    });
                    None
                }
            },
        };
    let page = number("page", 1, u64::from(u32::MAX), Some(1)).unwrap_or(1);
    let size = number("size", 1, MAX_PAGE_SIZE, Some(DEFAULT_PAGE_SIZE)).unwrap_or(1);
    let business_id = number("BusinessId", 1, i64::MAX as u64, None).map(|n| n as i64);
    if !errors.is_empty() {
        return respond(&ctx, ROUTE, failure(StatusCode::BAD_REQUEST, &errors));
    }
    let code = get("AccessCode").map(str::to_string);
    let found = blocking(&ctx, move |c| {
        let (tokens, total) =
            c.store
                .page_tokens(business_id, code.as_deref(), (page - 1) * size, size)?;
        let records = tokens
            .iter()
            .map(|t| Ok(read_model(t, &usage_of(c, t)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok::<_, StoreError>((records, total))
    })
    .await;
    let envelope = match found {
        Err(e) => e,
        Ok(Err(e)) => store_error(&e),
        Ok(Ok((records, total))) => {
            let pages = total.div_ceil(size);
            success(
                &ctx,
                "AccessTokens",
                json!({
                    "Records": records,
                    "CurrentPage": page,
                    "CurrentPageSize": records.len(),
                    "PageNumber": page,
                    "PageSize": size,
                    "TotalItems": total,
                    "TotalPages": pages,
                    "HasNextPage": page < pages,
                    "HasPreviousPage": page > 1,
                }),
                &key.name,
            )
        }
    };
    respond(&ctx, ROUTE, envelope)
}

/// `DELETE /api/spaces/accesstokens/{id}` (role AccessToken-Delete): the token stops
/// working at once, and the NAS is told to end its open sessions (RFC 5176).
pub(super) async fn delete(
    State(ctx): State<Arc<Context>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    const ROUTE: &str = "delete";
    let (key, id) =
        match authorize(&ctx, &headers, Role::Delete).and_then(|k| Ok((k, parse_id(&raw)?))) {
            Ok(v) => v,
            Err(e) => return respond(&ctx, ROUTE, e),
        };
    let deleted = blocking(&ctx, move |c| {
        let Some(t) = c.store.token_by_id(id)? else {
            return Ok(Err(not_found(id)));
        };
        if let Some(refused) = not_editable(c, &t, None, "delete")? {
            return Ok(Err(refused));
        }
        if !c.store.delete_token(id, c.clock.now())? {
            return Ok(Err(not_found(id)));
        }
        c.disconnect_wake.notify_one();
        Ok::<_, StoreError>(Ok(()))
    })
    .await;
    let envelope = match deleted {
        Err(e) => e,
        Ok(Err(e)) => store_error(&e),
        Ok(Ok(Err(e))) => e,
        Ok(Ok(Ok(()))) => {
            tracing::info!(key = %key.name, token = id, "API: access token deleted");
            success(
                &ctx,
                "AccessToken was successfully deleted.",
                json!({ "Id": id }),
                &key.name,
            )
        }
    };
    respond(&ctx, ROUTE, envelope)
}
