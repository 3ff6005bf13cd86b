//! Plain data shared by every layer: tokens, their usage, device addresses. No I/O and
//! no rules beyond what keeps a value well-formed (a [`Mac`] is always normalised).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A device's MAC address (from Calling-Station-Id or an admin), always normalised to
/// upper-case colon form `AA:BB:CC:DD:EE:FF` so one device is one value however the
/// NAS or the admin spelled it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error(
    "{value:?} is not a MAC address (expected e.g. AA:BB:CC:DD:EE:FF, aa-bb-cc-dd-ee-ff, aabb.ccdd.eeff or AABBCCDDEEFF)"
)]
pub struct MacParseError {
    pub value: String,
}

impl Mac {
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for Mac {
    type Err = MacParseError;

    /// Accepts `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff` (Cisco),
    /// `aabbccddeeff`, in either case. Separators must be used consistently and in
    /// their usual places, so a string that merely contains twelve hex digits (an IP
    /// address, a phone number) is not taken for a MAC.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError {
            value: s.to_string(),
        };
        let t = s.trim().as_bytes();
        // The separator and the positions it must hold (a bit each).
        let (sep, at) = match t.len() {
            17 if matches!(t[2], b':' | b'-') => (t[2], 0b100_1001_0010_0100u32),
            14 => (b'.', 0b10_0001_0000),
            12 => (0, 0),
            _ => return Err(err()),
        };
        let mut out = [0u8; 6];
        let mut nibbles = 0;
        for (i, &b) in t.iter().enumerate() {
            if at >> i & 1 == 1 {
                if b != sep {
                    return Err(err());
                }
                continue;
            }
            let v = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(err()),
            };
            out[nibbles / 2] = (out[nibbles / 2] << 4) | v;
            nibbles += 1;
        }
        // Every non-separator position held a digit, so there are exactly twelve.
        debug_assert_eq!(nibbles, 12);
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Longest token life in minutes (100 years): beyond is a typo, not a plan.
pub const MAX_MINUTES: i64 = 52_560_000;

/// Codes and PINs are credentials: logs show only the last two characters, behind a
/// fixed `***` that gives the length away no more than the code itself.
pub fn mask_code(code: &str) -> String {
    MaskedCode(Some(code)).to_string()
}

/// A code as logs show it: `***` and its last two characters (escaped as
/// [`LogSafe`] does) when it has three or more, `***` alone otherwise, so neither its
/// length nor a short code shows; `-` for none. Formats only when a log line is
/// actually written, so a disabled level costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct MaskedCode<'a>(pub Option<&'a str>);

impl fmt::Display for MaskedCode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(code) = self.0 else {
            return f.write_str("-");
        };
        f.write_str("***")?;
        let n = code.chars().count();
        if n < 3 {
            return Ok(());
        }
        code.chars().skip(n - 2).try_for_each(|c| escape_char(f, c))
    }
}

/// Text a sender chose (User-Name, Calling-Station-Id, NAS-Identifier), made safe
/// for a log line: every character outside printable ASCII is written as an escape
/// (`\x0a`, `\u{e9}`), so a newline, carriage return or terminal escape sequence in
/// a packet can neither forge a log line nor reach an operator's terminal.
#[derive(Debug, Clone, Copy)]
pub struct LogSafe<'a>(pub &'a str);

impl fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.chars().try_for_each(|c| escape_char(f, c))
    }
}

fn escape_char(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    use fmt::Write;
    match c {
        '\\' => f.write_str("\\\\"),
        ' '..='~' => f.write_char(c),
        c if c.is_ascii() => write!(f, "\\x{:02x}", c as u32),
        c => write!(f, "\\u{{{:x}}}", c as u32),
    }
}

/// What a lock applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockScope {
    /// One device (Calling-Station-Id): refused whatever code it presents.
    Device,
    /// One email within a business (email + PIN logins): refused for new devices.
    Account,
    /// One NAS of a client: new devices refused there.
    Client,
    /// The whole server: new devices refused everywhere.
    Server,
}

impl LockScope {
    pub const ALL: [LockScope; 4] = [Self::Device, Self::Account, Self::Client, Self::Server];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::Account => "account",
            Self::Client => "client",
            Self::Server => "server",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for LockScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An account's lock subject as stored and listed: the business and the email,
/// lower-cased and escaped (the email comes from a packet's User-Name).
pub fn account_lock_subject(business_id: i64, email: &str) -> String {
    format!("{business_id}:{}", LogSafe(&email.to_lowercase()))
}

/// A NAS as the ledger and the guard know it: the address its packets come from, and
/// NAS-IP-Address and NAS-Identifier when it sends them (several NASes behind one
/// CIDR client or one proxy are told apart; the client's configured name is no part
/// of it, so renaming a client changes nothing). Escaped: NAS-Identifier is text
/// from a packet.
#[derive(Debug, Clone, Copy)]
pub struct NasKey<'a> {
    pub source: std::net::IpAddr,
    pub nas_ip: Option<std::net::IpAddr>,
    pub nas_id: Option<&'a str>,
}

impl fmt::Display for NasKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(ip) = self.nas_ip {
            write!(f, " nas-ip={ip}")?;
        }
        if let Some(id) = self.nas_id {
            write!(f, " nas-id={}", LogSafe(id))?;
        }
        Ok(())
    }
}

/// An access token as stored (the seed API object, SPEC section 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessToken {
    pub id: i64,
    pub business_id: i64,
    /// The code typed at the portal; stored as typed so CHAP can be verified.
    pub access_code: String,
    pub minutes_included: u32,
    pub description: Option<String>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    /// Simultaneous use: devices online with the token at the same time.
    pub user_limit: Option<u32>,
    /// Distinct devices that may ever be bound to the token.
    pub device_limit: Option<u32>,
    /// When set, only this device may use the token.
    pub mac_address: Option<Mac>,
    pub booking_guid: Option<String>,
    pub visitor_guid: Option<String>,
    /// Set when the token is a customer's PIN.
    pub customer_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// Set by `token revoke`; a revoked token is kept for the record but never accepted.
    pub revoked_at: Option<DateTime<Utc>>,
    /// A random name no other token will ever have (32 hex digits): what the Class in
    /// an Access-Accept carries, so accounting can never charge another token.
    pub uid: String,
}

/// A token to be created: everything but the fields the store assigns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewAccessToken {
    pub business_id: i64,
    pub access_code: String,
    pub minutes_included: u32,
    pub description: Option<String>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub user_limit: Option<u32>,
    pub device_limit: Option<u32>,
    pub mac_address: Option<Mac>,
    pub booking_guid: Option<String>,
    pub visitor_guid: Option<String>,
}

/// A pre-registered visitor (seeds 000 and 001). Every visitor has a PIN; the PIN is
/// also the code of the visitor's access token when tokens are generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Visitor {
    pub id: i64,
    pub guid: String,
    pub business_id: i64,
    pub name: String,
    pub email: Option<String>,
    pub expected_arrival: Option<DateTime<Utc>>,
    /// Check-in time: the visitor's Wi-Fi window starts here.
    pub arrived_at: Option<DateTime<Utc>>,
    pub pin: String,
    /// The visitor's access token, when one was generated at registration.
    pub token_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A visitor to register.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewVisitor {
    pub business_id: i64,
    pub name: String,
    pub email: Option<String>,
    pub expected_arrival: Option<DateTime<Utc>>,
}

/// A customer (member) with a 5-digit PIN (seed 002).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    pub id: i64,
    pub business_id: i64,
    pub name: String,
    pub email: Option<String>,
    pub pin: String,
    pub active: bool,
    /// The access token through which the PIN logs in to Wi-Fi.
    pub token_id: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewCustomer {
    pub business_id: i64,
    pub name: String,
    pub email: Option<String>,
}

/// Who a token belongs to, as far as login rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOwner {
    /// A token on its own (CLI, CSV, API).
    Standalone,
    /// A visitor's token: usable for `minutes_included` from the visitor's arrival.
    Visitor {
        visitor_id: i64,
        arrived_at: Option<DateTime<Utc>>,
    },
    /// A customer's PIN: session length and device limit come from `[customers]`.
    Customer { customer_id: i64, active: bool },
}

/// What the store knows about a token's use, gathered in one read for a login.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenUsage {
    /// Distinct devices bound so far (shared with the store's cache, not copied per
    /// login).
    pub bound_devices: std::sync::Arc<[Mac]>,
    /// Seconds consumed by the token's sessions (accounting ledger).
    pub used_seconds: u64,
    /// Open sessions of the token on devices other than the one logging in.
    pub open_sessions_elsewhere: u32,
    /// Time those sessions have run since their last accounting update (estimated up
    /// to now): not in `used_seconds` yet, but spent all the same.
    pub live_seconds_elsewhere: u64,
}

/// Where the store keeps its data (`[server] database`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (one server; the default).
    File(std::path::PathBuf),
    /// A PostgreSQL database shared by several servers: a `postgres://` URL, with
    /// the password from the URL, from `password_file`, or from `PGPASSWORD`.
    Postgres {
        url: String,
        password_file: Option<std::path::PathBuf>,
    },
}

impl Database {
    /// The SQLite file, if the data is in one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Database::File(p) => Some(p),
            Database::Postgres { .. } => None,
        }
    }
}

impl fmt::Display for Database {
    /// The file, or the URL without its password (logs and messages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::File(p) => write!(f, "{}", p.display()),
            Database::Postgres { url, .. } => f.write_str(&without_password(url)),
        }
    }
}

/// `url` with the password of its user part (`user:password@`) replaced by `***`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_spellings_normalise_to_one_value() {
        let want: Mac = "AA:BB:CC:DD:EE:0F".parse().unwrap();
        for s in [
            "aa-bb-cc-dd-ee-0f",
            "AA:bb:CC:dd:EE:0f",
            "aabb.ccdd.ee0f",
            "AABBCCDDEE0F",
            " aabbccddee0f ",
        ] {
            assert_eq!(s.parse::<Mac>().unwrap(), want, "{s}");
        }
        assert_eq!(want.to_string(), "AA:BB:CC:DD:EE:0F");
    }

    #[test]
    fn mac_rejects_lookalikes() {
        for s in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:gg",
            "aa:bb-cc:dd:ee:ff",
            "aabb.ccdd.eeff.00",
            "aabbccddeeff00",
            "10.20.30.40",
            "a:bb:cc:dd:ee:fff",
            "aab.bccd.deeff",
            "aa:bb:cc:dd:ee:+f",
            "aa.bb.cc.dd.ee.ff",
            "aabb:ccdd:eeff",
            "aa:bb:cc:dd:ee:\u{e9}",
        ] {
            let e = s.parse::<Mac>().unwrap_err();
            assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_spelling_of_any_mac_parses_to_it(bytes: [u8; 6], upper: bool) {
            let hex: Vec<String> = bytes
                .iter()
                .map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") })
                .collect();
            let joined = hex.concat();
            for spelling in [
                hex.join(":"),
                hex.join("-"),
                format!("{}.{}.{}", &joined[..4], &joined[4..8], &joined[8..]),
                joined.clone(),
            ] {
                proptest::prop_assert_eq!(spelling.parse::<Mac>().unwrap(), Mac(bytes));
            }
        }

        #[test]
        fn parsing_any_text_never_panics_and_round_trips(s in "\\PC{0,20}") {
            if let Ok(mac) = s.parse::<Mac>() {
                proptest::prop_assert_eq!(mac.to_string().parse::<Mac>().unwrap(), mac);
            }
        }
    }

    #[test]
    fn mask_keeps_last_two() {
        assert_eq!(mask_code("12345"), "***45");
        assert_eq!(mask_code("123"), "***23");
        assert_eq!(mask_code("longer-code-99"), "***99");
        for short in ["", "7", "ab"] {
            assert_eq!(mask_code(short), "***", "{short:?}");
        }
        assert_eq!(MaskedCode(None).to_string(), "-");
    }

    #[test]
    fn log_text_has_no_raw_control_characters() {
        assert_eq!(mask_code("12\r\n"), "***\\x0d\\x0a");
        assert_eq!(mask_code("x\u{1b}["), "***\\x1b[");
        assert_eq!(
            LogSafe("a\nb\rc\u{1b}[31m\\é").to_string(),
            "a\\x0ab\\x0dc\\x1b[31m\\\\\\u{e9}"
        );
        assert_eq!(LogSafe("AA:BB:cc-01 x").to_string(), "AA:BB:cc-01 x");
    }

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        assert_eq!(
            without_password("postgres://radius:s3cr@t@db.example:5432/pin?sslmode=disable"),
            "postgres://radius:***@db.example:5432/pin?sslmode=disable"
        );
        assert_eq!(
            without_password("postgres://radius@db/pin"),
            "postgres://radius@db/pin"
        );
        assert_eq!(without_password("postgres:///pin"), "postgres:///pin");
    }
}
