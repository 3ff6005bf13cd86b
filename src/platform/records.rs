//! The platform's records, read defensively (PLATFORM.md): times with or without a
//! trailing `Z` (UTC either way), unknown fields ignored, and a record that lacks what
//! pinradius needs is refused with the field named, never half-applied.

use crate::model::{Mac, NewAccessToken};
use crate::store::{PlatformMember, PlatformVisitor};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

/// A platform time: RFC 3339, or the same without a zone (UTC).
pub fn time(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// How the platform's filters write a time (no zone: UTC).
pub fn filter_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name).filter(|f| !f.is_null())
}

fn text(v: &Value, name: &str) -> Result<Option<String>, String> {
    match field(v, name) {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        // The value is not echoed: it may be a code.
        Some(_) => Err(format!("{name} is not text")),
    }
}

fn integer(v: &Value, name: &str) -> Result<Option<i64>, String> {
    match field(v, name) {
        None => Ok(None),
        Some(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{name} = {n}: not an integer")),
    }
}

fn when(v: &Value, name: &str) -> Result<Option<DateTime<Utc>>, String> {
    match text(v, name)? {
        None => Ok(None),
        Some(s) => time(&s)
            .map(Some)
            .ok_or_else(|| format!("{name} = {s:?}: not a time")),
    }
}

/// What every record has: `Id` and `UpdatedOn`.
pub fn identity(v: &Value) -> Result<(i64, DateTime<Utc>), String> {
    let id = integer(v, "Id")?.ok_or("no Id")?;
    let updated = when(v, "UpdatedOn")?
        .or(when(v, "CreatedOn")?)
        .ok_or("no UpdatedOn")?;
    Ok((id, updated))
}

/// An access token record as a token to keep. A token with neither dates nor
/// `UserLimit` gets `undated_devices` as its device limit (the platform's help: such a
/// token "can only be used by one device").
pub fn access_token(v: &Value, undated_devices: Option<u32>) -> Result<NewAccessToken, String> {
    let business_id = integer(v, "BusinessId")?.ok_or("no BusinessId")?;
    let access_code = text(v, "AccessCode")?.ok_or("no AccessCode")?;
    if access_code.chars().count() > 128 {
        return Err("AccessCode is longer than 128 characters".into());
    }
    let minutes = integer(v, "MinutesIncluded")?.ok_or("no MinutesIncluded")?;
    let minutes_included = u32::try_from(minutes)
        .ok()
        .filter(|m| *m > 0)
        .ok_or_else(|| format!("MinutesIncluded = {minutes}: must be above 0"))?;
    let user_limit = match integer(v, "UserLimit")? {
        None | Some(0) => None,
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("UserLimit = {n}: must be 1 or more"))?,
        ),
    };
    let mac_address = match text(v, "MacAddress")? {
        None => None,
        Some(m) => Some(
            m.parse::<Mac>()
                .map_err(|_| format!("MacAddress = {m:?}: not a MAC address"))?,
        ),
    };
    let (valid_from, valid_to) = (when(v, "ValidFrom")?, when(v, "ValidTo")?);
    let undated = valid_from.is_none() && valid_to.is_none() && user_limit.is_none();
    Ok(NewAccessToken {
        business_id,
        access_code,
        minutes_included,
        description: text(v, "Description")?,
        valid_from,
        valid_to,
        user_limit,
        device_limit: if undated { undated_devices } else { None },
        mac_address,
        booking_guid: text(v, "BookingGuid")?,
        visitor_guid: text(v, "VisitorGuid")?,
    })
}

fn flag(v: &Value, name: &str, default: bool) -> Result<bool, String> {
    match field(v, name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{name} = {other}: not true or false")),
    }
}

/// A PIN as the platform stores it (text or a number), or `None` when there is none.
fn pin(v: &Value, name: &str) -> Result<Option<String>, String> {
    match field(v, name) {
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        _ => text(v, name).map(|p| p.map(|p| p.trim().to_string())),
    }
}

/// A coworker record as a member; `None` when the member has no PIN (no Wi-Fi).
pub fn member(v: &Value) -> Result<Option<PlatformMember>, String> {
    let business_id = integer(v, "InvoicingBusinessId")?
        .or(integer(v, "BusinessId")?)
        .ok_or("no InvoicingBusinessId")?;
    let Some(pin) = pin(v, "AccessPincode")? else {
        return Ok(None);
    };
    if pin.chars().count() > 128 {
        return Err("AccessPincode is longer than 128 characters".into());
    }
    let active = flag(v, "Active", true)?
        && !flag(v, "Archived", false)?
        && flag(v, "AllowNetworkCheckin", true)?;
    Ok(Some(PlatformMember {
        business_id,
        name: text(v, "FullName")?.unwrap_or_else(|| "Member".into()),
        email: text(v, "Email")?,
        pin,
        active,
    }))
}

/// A visitor record; `None` when the visitor has no code (nothing to log in with).
pub fn visitor(v: &Value) -> Result<Option<PlatformVisitor>, String> {
    let business_id = integer(v, "BusinessId")?.ok_or("no BusinessId")?;
    let guid = text(v, "UniqueId")?.ok_or("no UniqueId")?;
    let Some(pin) = pin(v, "VisitorCode")? else {
        return Ok(None);
    };
    if pin.chars().count() > 128 {
        return Err("VisitorCode is longer than 128 characters".into());
    }
    let arrived = flag(v, "Arrived", false)?;
    let arrival = when(v, "ArrivalDate")?;
    Ok(Some(PlatformVisitor {
        business_id,
        guid,
        name: text(v, "FullName")?.unwrap_or_else(|| "Visitor".into()),
        email: text(v, "Email")?,
        expected_arrival: when(v, "ExpectedArrival")?,
        arrived_at: if arrived || arrival.is_some() {
            arrival
        } else {
            None
        },
        pin,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_with_and_without_a_zone_are_utc() {
        let want = Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap();
        assert_eq!(time("2025-01-15T10:30:00Z"), Some(want));
        assert_eq!(time("2025-01-15T10:30:00"), Some(want));
        assert_eq!(time("2025-01-15T11:30:00+01:00"), Some(want));
        assert_eq!(
            time("2025-01-15T10:30:00.250")
                .unwrap()
                .timestamp_subsec_millis(),
            250
        );
        assert_eq!(time("yesterday"), None);
        assert_eq!(filter_time(want), "2025-01-15T10:30:00.000");
    }

    #[test]
    fn an_access_token_record_becomes_a_token_or_names_what_is_wrong() {
        let v: Value = serde_json::json!({
            "Id": 7, "UpdatedOn": "2025-01-15T10:30:00", "BusinessId": 1, "AccessCode": "48213",
            "MinutesIncluded": 60, "Description": "Day pass", "ValidFrom": null, "ValidTo": null,
            "UserLimit": null, "MacAddress": null, "Unknown": [1, 2]
        });
        let t = access_token(&v, Some(1)).unwrap();
        assert_eq!(
            (t.access_code.as_str(), t.minutes_included, t.device_limit),
            ("48213", 60, Some(1))
        );
        assert_eq!(identity(&v).unwrap().0, 7);
        let mut dated = v.clone();
        dated["ValidTo"] = "2025-02-01T00:00:00Z".into();
        assert_eq!(access_token(&dated, Some(1)).unwrap().device_limit, None);
        for (field, value, says) in [
            ("MinutesIncluded", Value::from(0), "MinutesIncluded = 0"),
            ("AccessCode", Value::Null, "no AccessCode"),
            ("MacAddress", Value::from("zz"), "MacAddress = \"zz\""),
            ("ValidFrom", Value::from("soon"), "ValidFrom = \"soon\""),
        ] {
            let mut bad = v.clone();
            bad[field] = value;
            let e = access_token(&bad, None).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
