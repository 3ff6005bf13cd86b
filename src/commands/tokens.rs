//! `token create|list|show|revoke|import|explain`.

use super::{CommandError, Field, FieldError, Naming, describe, time_text};
use crate::model::{
    AccessToken, MAX_MINUTES, Mac, NewAccessToken, TokenOwner, TokenUsage, mask_code,
};
use crate::policy::{self, LoginRules};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;

/// Token fields as text, exactly as a person or a file gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenInput {
    pub business_id: Option<String>,
    pub access_code: Option<String>,
    pub minutes_included: Option<String>,
    pub description: Option<String>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
    pub user_limit: Option<String>,
    pub device_limit: Option<String>,
    pub mac_address: Option<String>,
    pub booking_guid: Option<String>,
    pub visitor_guid: Option<String>,
}

/// Longest code: a PAP password carries at most 128 octets (RFC 2865 5.2).
pub const MAX_CODE_LEN: usize = 128;
const MAX_DESCRIPTION: usize = 1024;
const MAX_LIMIT: i64 = 10_000;

fn bad(field: Field, value: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        value: Some(value.to_string()),
        message: message.into(),
    }
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.trim().is_empty())
}

fn whole(field: Field, v: &str, min: i64, max: i64) -> Result<i64, FieldError> {
    match v.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            field,
            v,
            format!("is not a whole number from {min} to {max}"),
        )),
    }
}

/// RFC 3339 with an offset (`2026-11-23T09:00:00Z`), stored as UTC.
pub fn parse_time(field: Field, v: &str) -> Result<DateTime<Utc>, FieldError> {
    DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            bad(
                field,
                v,
                format!("is not an RFC 3339 time such as 2026-11-23T09:00:00Z ({e})"),
            )
        })
}

pub fn parse_mac(field: Field, v: &str) -> Result<Mac, FieldError> {
    v.parse().map_err(|_| {
        bad(
            field,
            v,
            "is not a MAC address (AA:BB:CC:DD:EE:FF, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff)",
        )
    })
}

fn guid(field: Field, v: &str) -> Result<String, FieldError> {
    let t = v.trim().trim_start_matches('{').trim_end_matches('}');
    let shape_ok = t.len() == 36
        && t.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if shape_ok {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(bad(
            field,
            v,
            "is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
        ))
    }
}

/// Validates every field and returns all problems at once.
pub fn parse(input: &TokenInput) -> Result<NewAccessToken, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut t = NewAccessToken::default();
    let mut take = |r: Result<(), FieldError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    let required = |field: Field| FieldError {
        field,
        value: None,
        message: "is a required field".into(),
    };

    take(match present(&input.business_id) {
        None => Err(required(Field::BusinessId)),
        Some(v) => whole(Field::BusinessId, v, 1, i64::MAX).map(|n| t.business_id = n),
    });
    take(match input.access_code.as_deref() {
        None | Some("") => Err(required(Field::AccessCode)),
        Some(v) => {
            // The code itself is a credential: errors describe it, never echo it.
            let masked = FieldError {
                field: Field::AccessCode,
                value: Some(mask_code(v)),
                message: String::new(),
            };
            if v.len() > MAX_CODE_LEN {
                Err(FieldError {
                    message: format!("is {} bytes; at most {MAX_CODE_LEN}", v.len()),
                    ..masked
                })
            } else if v.trim() != v {
                Err(FieldError {
                    message: "has leading or trailing spaces".into(),
                    ..masked
                })
            } else if v.chars().any(char::is_control) {
                Err(FieldError {
                    message: "contains control characters".into(),
                    ..masked
                })
            } else {
                t.access_code = v.to_string();
                Ok(())
            }
        }
    });
    take(match present(&input.minutes_included) {
        None => Err(required(Field::MinutesIncluded)),
        Some(v) => {
            whole(Field::MinutesIncluded, v, 1, MAX_MINUTES).map(|n| t.minutes_included = n as u32)
        }
    });
    if let Some(v) = present(&input.description) {
        take(if v.chars().count() > MAX_DESCRIPTION {
            Err(bad(
                Field::Description,
                &v.chars().take(20).collect::<String>(),
                format!("... is longer than {MAX_DESCRIPTION} characters"),
            ))
        } else {
            t.description = Some(v.to_string());
            Ok(())
        });
    }
    if let Some(v) = present(&input.valid_from) {
        take(parse_time(Field::ValidFrom, v).map(|x| t.valid_from = Some(x)));
    }
    if let Some(v) = present(&input.valid_to) {
        take(parse_time(Field::ValidTo, v).map(|x| t.valid_to = Some(x)));
    }
    if let (Some(from), Some(to)) = (t.valid_from, t.valid_to)
        && to <= from
    {
        take(Err(bad(
            Field::ValidTo,
            input.valid_to.as_deref().unwrap_or_default(),
            "is not after valid_from",
        )));
    }
    if let Some(v) = present(&input.user_limit) {
        take(whole(Field::UserLimit, v, 1, MAX_LIMIT).map(|n| t.user_limit = Some(n as u32)));
    }
    if let Some(v) = present(&input.device_limit) {
        take(whole(Field::DeviceLimit, v, 1, MAX_LIMIT).map(|n| t.device_limit = Some(n as u32)));
    }
    if let Some(v) = present(&input.mac_address) {
        take(parse_mac(Field::MacAddress, v).map(|m| t.mac_address = Some(m)));
    }
    if let Some(v) = present(&input.booking_guid) {
        take(guid(Field::BookingGuid, v).map(|g| t.booking_guid = Some(g)));
    }
    if let Some(v) = present(&input.visitor_guid) {
        take(guid(Field::VisitorGuid, v).map(|g| t.visitor_guid = Some(g)));
    }
    if errors.is_empty() {
        Ok(t)
    } else {
        Err(errors)
    }
}

/// A token whose `valid_to` has already passed could never be used: refused (a typo
/// in the year, or a copied example), naming the field.
pub fn usable(t: &NewAccessToken, now: DateTime<Utc>) -> Result<(), Vec<FieldError>> {
    match t.valid_to {
        Some(end) if end <= now => Err(vec![bad(
            Field::ValidTo,
            &end.to_rfc3339(),
            format!(
                "is in the past (now is {}): the token could never be used",
                now.to_rfc3339()
            ),
        )]),
        _ => Ok(()),
    }
}

pub fn create(store: &Store, input: &TokenInput, now: DateTime<Utc>) -> Result<i64, CommandError> {
    let token = parse(input).map_err(CommandError::Invalid)?;
    usable(&token, now).map_err(CommandError::Invalid)?;
    Ok(store.create_token(&token, now)?)
}

/// Imports a CSV file whose header names token fields (the `csv_column` names, in any
/// order; `business_id`, `access_code`, `minutes_included` required). All rows or
/// none: the first bad row is reported with its line number and nothing is written.
pub fn import_csv(
    store: &Store,
    file_name: &str,
    reader: impl Read,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, CommandError> {
    let csv_err = |line: u64, message: String| CommandError::Csv {
        file: file_name.to_string(),
        line,
        message,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| csv_err(1, e.to_string()))?
        .clone();
    let known = [
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
    let mut columns: HashMap<usize, Field> = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let field = known.iter().find(|f| f.csv_column() == h).ok_or_else(|| {
            csv_err(
                1,
                format!(
                    "unknown column {h:?}; known: {}",
                    known.map(|f| f.csv_column()).join(", ")
                ),
            )
        })?;
        if columns.values().any(|f| f == field) {
            return Err(csv_err(1, format!("column {h:?} appears twice")));
        }
        columns.insert(i, *field);
    }
    for required in [Field::BusinessId, Field::AccessCode, Field::MinutesIncluded] {
        if !columns.values().any(|f| *f == required) {
            return Err(csv_err(
                1,
                format!("missing column {:?}", required.csv_column()),
            ));
        }
    }
    let mut tokens = Vec::new();
    let mut lines = Vec::new();
    for record in rdr.records() {
        let record =
            record.map_err(|e| csv_err(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let mut input = TokenInput::default();
        for (i, value) in record.iter().enumerate() {
            let v = Some(value.to_string());
            match columns.get(&i) {
                Some(Field::BusinessId) => input.business_id = v,
                Some(Field::AccessCode) => input.access_code = v,
                Some(Field::MinutesIncluded) => input.minutes_included = v,
                Some(Field::Description) => input.description = v,
                Some(Field::ValidFrom) => input.valid_from = v,
                Some(Field::ValidTo) => input.valid_to = v,
                Some(Field::UserLimit) => input.user_limit = v,
                Some(Field::DeviceLimit) => input.device_limit = v,
                Some(Field::MacAddress) => input.mac_address = v,
                Some(Field::BookingGuid) => input.booking_guid = v,
                Some(Field::VisitorGuid) => input.visitor_guid = v,
                _ => {}
            }
        }
        tokens.push(parse(&input).map_err(|e| csv_err(line, describe(&e, Naming::Csv)))?);
        lines.push(line);
    }
    if tokens.is_empty() {
        return Err(csv_err(1, "no rows after the header".into()));
    }
    store.create_tokens(&tokens, now).map_err(|e| match e {
        StoreError::Row { row, source } => csv_err(lines[row], source.to_string()),
        other => CommandError::Store(other),
    })
}

/// The one token a code names: `business_id` narrows it when the code exists in
/// several businesses.
pub fn find(
    store: &Store,
    code: &str,
    business_id: Option<i64>,
) -> Result<AccessToken, CommandError> {
    let mut found = store.tokens_by_code(code, business_id)?;
    match found.len() {
        // The operator's own input is named as typed (escaped): a masked "***99"
        // would not say which of their codes was meant.
        0 => Err(CommandError::NotFound {
            code: crate::model::LogSafe(code).to_string(),
            business_id,
        }),
        1 => Ok(found.remove(0)),
        _ => Err(CommandError::Ambiguous {
            code: crate::model::LogSafe(code).to_string(),
            businesses: found.iter().map(|t| t.business_id).collect(),
        }),
    }
}

pub fn revoke(
    store: &Store,
    code: &str,
    business_id: Option<i64>,
    now: DateTime<Utc>,
) -> Result<String, CommandError> {
    let token = find(store, code, business_id)?;
    Ok(if store.revoke_token(token.id, now)? {
        format!(
            "revoked token {} ({})",
            token.id,
            mask_code(&token.access_code)
        )
    } else {
        format!("token {} was already revoked", token.id)
    })
}

fn owner_text(owner: TokenOwner) -> String {
    match owner {
        TokenOwner::Standalone => "standalone token".into(),
        TokenOwner::Visitor {
            visitor_id,
            arrived_at: Some(a),
        } => {
            format!("visitor {visitor_id}, arrived {}", time_text(Some(a)))
        }
        TokenOwner::Visitor {
            visitor_id,
            arrived_at: None,
        } => format!("visitor {visitor_id}, not checked in"),
        TokenOwner::Customer {
            customer_id,
            active,
        } => {
            format!(
                "customer {customer_id} ({})",
                if active { "active" } else { "deactivated" }
            )
        }
    }
}

/// A token with its usage, as JSON for `--json`.
pub fn token_json(token: &AccessToken, usage: &TokenUsage) -> serde_json::Value {
    let mut v = serde_json::to_value(token).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "bound_devices".into(),
            serde_json::to_value(&*usage.bound_devices).unwrap_or_default(),
        );
        o.insert("used_seconds".into(), usage.used_seconds.into());
        o.insert(
            "seconds_left".into(),
            (u64::from(token.minutes_included) * 60)
                .saturating_sub(usage.used_seconds)
                .into(),
        );
    }
    v
}

pub fn list(
    store: &Store,
    business_id: Option<i64>,
    json: bool,
    now: DateTime<Utc>,
    rules: &LoginRules,
) -> Result<String, CommandError> {
    let tokens = store.list_tokens(business_id)?;
    if json {
        let items = tokens
            .iter()
            .map(|t| {
                Ok(token_json(
                    t,
                    &store.token_usage(t.id, None, now, rules.stale_before(now))?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        return Ok(serde_json::to_string_pretty(&items).unwrap_or_default() + "\n");
    }
    let mut out = format!(
        "{:>6} {:>8} {:<16} {:>8} {:<20} {:<20} {:>5} {:>5} {:<8}\n",
        "ID", "BUSINESS", "CODE", "MINUTES", "VALID FROM", "VALID TO", "USERS", "DEVS", "STATUS"
    );
    for t in &tokens {
        let _ = writeln!(
            out,
            "{:>6} {:>8} {:<16} {:>8} {:<20} {:<20} {:>5} {:>5} {:<8}",
            t.id,
            t.business_id,
            t.access_code,
            t.minutes_included,
            time_text(t.valid_from),
            time_text(t.valid_to),
            t.user_limit.map_or("-".into(), |n| n.to_string()),
            t.device_limit.map_or("-".into(), |n| n.to_string()),
            if t.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
        );
    }
    Ok(out)
}

pub fn show(
    store: &Store,
    code: &str,
    business_id: Option<i64>,
    json: bool,
    now: DateTime<Utc>,
    rules: &LoginRules,
) -> Result<String, CommandError> {
    let t = find(store, code, business_id)?;
    let usage = store.token_usage(t.id, None, now, rules.stale_before(now))?;
    if json {
        return Ok(
            serde_json::to_string_pretty(&token_json(&t, &usage)).unwrap_or_default() + "\n",
        );
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let included = u64::from(t.minutes_included) * 60;
    let mut out = String::new();
    let _ = writeln!(out, "id:               {}", t.id);
    let _ = writeln!(out, "business_id:      {}", t.business_id);
    let _ = writeln!(out, "access_code:      {}", t.access_code);
    let _ = writeln!(out, "minutes_included: {}", t.minutes_included);
    let _ = writeln!(
        out,
        "used:             {} s ({} s left)",
        usage.used_seconds,
        included.saturating_sub(usage.used_seconds)
    );
    let _ = writeln!(out, "valid_from:       {}", time_text(t.valid_from));
    let _ = writeln!(out, "valid_to:         {}", time_text(t.valid_to));
    let _ = writeln!(
        out,
        "user_limit:       {}",
        t.user_limit.map_or("-".into(), |n| n.to_string())
    );
    let _ = writeln!(
        out,
        "device_limit:     {}",
        t.device_limit.map_or("-".into(), |n| n.to_string())
    );
    let _ = writeln!(
        out,
        "mac_address:      {}",
        t.mac_address.map_or("-".into(), |m| m.to_string())
    );
    let devices: Vec<String> = usage.bound_devices.iter().map(Mac::to_string).collect();
    let _ = writeln!(
        out,
        "bound_devices:    {}",
        if devices.is_empty() {
            "-".into()
        } else {
            devices.join(", ")
        }
    );
    let _ = writeln!(out, "description:      {}", opt(&t.description));
    let _ = writeln!(out, "booking_guid:     {}", opt(&t.booking_guid));
    let _ = writeln!(out, "visitor_guid:     {}", opt(&t.visitor_guid));
    let _ = writeln!(out, "created_at:       {}", time_text(Some(t.created_at)));
    let _ = writeln!(
        out,
        "status:           {}",
        t.revoked_at.map_or("active".into(), |r| format!(
            "revoked at {}",
            time_text(Some(r))
        ))
    );
    Ok(out)
}

/// What a login with this code (right password assumed) from `device` would get at
/// `now`, and why. Reads only: nothing is bound.
pub fn explain(
    store: &Store,
    code: &str,
    business_id: Option<i64>,
    device: Option<Mac>,
    now: DateTime<Utc>,
    rules: &LoginRules,
) -> Result<String, CommandError> {
    let token = find(store, code, business_id)?;
    let owner = store.token_owner(&token)?;
    let usage = store.token_usage(token.id, device, now, rules.stale_before(now))?;
    let mut out = format!(
        "token {} ({}) in business {} at {}, device {}:\n",
        token.id,
        mask_code(&token.access_code),
        token.business_id,
        time_text(Some(now)),
        device.map_or("(none given)".into(), |d| d.to_string()),
    );
    let _ = writeln!(out, "  owner:   {}", owner_text(owner));
    let included = u64::from(token.minutes_included) * 60;
    let _ = writeln!(
        out,
        "  minutes: {} included, {} s used, {} s left",
        token.minutes_included,
        usage.used_seconds,
        included.saturating_sub(usage.used_seconds)
    );
    let _ = writeln!(
        out,
        "  window:  {} .. {}",
        time_text(token.valid_from),
        time_text(token.valid_to)
    );
    if let Some(limit) = token.device_limit {
        let _ = writeln!(
            out,
            "  devices: {} of {limit} bound",
            usage.bound_devices.len()
        );
    }
    if let Some(limit) = token.user_limit {
        let _ = writeln!(
            out,
            "  online elsewhere: {} of {limit} allowed",
            usage.open_sessions_elsewhere
        );
    }
    // A device locked out for guessing is refused before anything else.
    let locked = match device {
        Some(mac) => store
            .lockout(crate::store::LockScope::Device, &mac.to_string())?
            .filter(|l| l.locked_until > now),
        None => None,
    };
    let decided = match locked {
        Some(l) => Err(crate::policy::RejectReason::LockedOut {
            until: l.locked_until,
        }),
        None => policy::decide(now, &token, owner, &usage, device, rules),
    };
    match decided {
        Ok(g) => {
            let _ = writeln!(
                out,
                "ACCEPT: Session-Timeout = {} s (limited by {})",
                g.session_timeout, g.limited_by
            );
            if g.check_in {
                let _ = writeln!(
                    out,
                    "  this login would check the visitor in (window starts now)"
                );
            }
            if let Some(d) = g.bind_device {
                let _ = writeln!(
                    out,
                    "  device {d} would be bound to the token on this login"
                );
            }
        }
        Err(reason) => {
            let _ = writeln!(out, "REJECT ({}): {reason}", reason.label());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> TokenInput {
        TokenInput {
            business_id: Some("1".into()),
            access_code: Some("12345".into()),
            minutes_included: Some("60".into()),
            ..Default::default()
        }
    }

    #[test]
    fn every_field_is_validated_and_named() {
        let bad = TokenInput {
            business_id: Some("x".into()),
            access_code: Some(" 12345".into()),
            minutes_included: Some("-5".into()),
            valid_from: Some("tomorrow".into()),
            valid_to: Some("2026-13-01T00:00:00Z".into()),
            user_limit: Some("0".into()),
            device_limit: Some("1.5".into()),
            mac_address: Some("aa:bb".into()),
            booking_guid: Some("nope".into()),
            visitor_guid: Some("1234".into()),
            ..Default::default()
        };
        let errors = parse(&bad).unwrap_err();
        let fields: Vec<Field> = errors.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                Field::BusinessId,
                Field::AccessCode,
                Field::MinutesIncluded,
                Field::ValidFrom,
                Field::ValidTo,
                Field::UserLimit,
                Field::DeviceLimit,
                Field::MacAddress,
                Field::BookingGuid,
                Field::VisitorGuid
            ]
        );
        let text = describe(&errors, Naming::Cli);
        assert!(text.contains("--minutes: \"-5\""), "{text}");
        assert!(text.contains("--mac: \"aa:bb\""), "{text}");
        assert!(!text.contains(" 12345"), "codes are never echoed: {text}");
    }

    #[test]
    fn required_fields_and_window_order() {
        let e = parse(&TokenInput::default()).unwrap_err();
        assert_eq!(e.len(), 3);
        let mut i = input();
        i.valid_from = Some("2026-11-23T10:00:00Z".into());
        i.valid_to = Some("2026-11-23T09:00:00+00:00".into());
        assert_eq!(parse(&i).unwrap_err()[0].field, Field::ValidTo);
        i.valid_to = Some("2026-11-23T12:00:00+01:00".into());
        let t = parse(&i).unwrap();
        assert_eq!(
            t.valid_to.unwrap().to_rfc3339(),
            "2026-11-23T11:00:00+00:00"
        );
    }

    #[test]
    fn normalises_mac_and_guid() {
        let mut i = input();
        i.mac_address = Some("aabb.ccdd.eeff".into());
        i.visitor_guid = Some("{0F8FAD5B-D9CB-469F-A165-70867728950E}".into());
        let t = parse(&i).unwrap();
        assert_eq!(t.mac_address.unwrap().to_string(), "AA:BB:CC:DD:EE:FF");
        assert_eq!(
            t.visitor_guid.unwrap(),
            "0f8fad5b-d9cb-469f-a165-70867728950e"
        );
    }

    #[test]
    fn csv_import_is_all_or_nothing_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let now = Utc::now();
        let good =
            "business_id,access_code,minutes_included,device_limit\n1,11111,60,2\n1,22222,30,\n";
        assert_eq!(
            import_csv(&store, "a.csv", good.as_bytes(), now)
                .unwrap()
                .len(),
            2
        );
        let bad_row = "business_id,access_code,minutes_included\n1,33333,60\n1,44444,0\n";
        let e = import_csv(&store, "b.csv", bad_row.as_bytes(), now)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("b.csv line 3: minutes_included: \"0\""),
            "{e}"
        );
        assert!(store.tokens_by_code("33333", None).unwrap().is_empty());
        let dup = "business_id,access_code,minutes_included\n1,55555,60\n1,11111,60\n";
        let e = import_csv(&store, "c.csv", dup.as_bytes(), now)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.csv line 3: code ***11 is already used by token"),
            "{e}"
        );
        assert!(store.tokens_by_code("55555", None).unwrap().is_empty());
        let e = import_csv(&store, "d.csv", "business_id,code\n".as_bytes(), now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("\"code\""), "{e}");
    }
}
