//! The TOML config file. Every struct is `deny_unknown_fields` (a typo is an error,
//! not a silently ignored key) and [`Config::load`] validates everything before the
//! server binds a socket; every error names the key and the value.

use crate::protocol::{Dictionary, DictionaryError, EncodedAttribute};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The dictionaries shipped in `dictionaries/`, compiled in so vendor attributes work
/// wherever the binary runs; `[server] dictionaries` adds more files.
pub const BUILTIN_DICTIONARIES: [(&str, &str); 3] = [
    (
        "dictionaries/dictionary.rfc",
        include_str!("../dictionaries/dictionary.rfc"),
    ),
    (
        "dictionaries/dictionary.mikrotik",
        include_str!("../dictionaries/dictionary.mikrotik"),
    ),
    (
        "dictionaries/dictionary.wispr",
        include_str!("../dictionaries/dictionary.wispr"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key} = {value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("cannot read dictionary {path} (from [server] dictionaries): {source}")]
    DictionaryRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("dictionary: {0}")]
    Dictionary(#[from] DictionaryError),
}

fn invalid(
    key: impl Into<String>,
    value: impl fmt::Debug,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: format!("{value:?}"),
        reason: reason.into(),
    }
}

/// A shared secret. Its `Debug` never shows the value, so a config printed for
/// troubleshooting cannot leak it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// How the password of an Access-Request is checked.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordMode {
    /// The password (PAP or CHAP) must equal the code typed as User-Name.
    #[default]
    Code,
    /// Any password is accepted: for portals that send the code only as User-Name.
    Any,
}

/// A reply attribute value as written in TOML: a string or an integer.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum AttributeValue {
    Text(String),
    Integer(i64),
}

impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => f.write_str(s),
            Self::Integer(n) => write!(f, "{n}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: ServerSection,
    #[serde(default)]
    pub reply: ReplySection,
    #[serde(default, rename = "client")]
    pub clients: Vec<ClientSection>,
    #[serde(default)]
    pub visitors: VisitorSettings,
    #[serde(default)]
    pub customers: CustomerSettings,
    #[serde(default)]
    pub accounting: AccountingSection,
    #[serde(default)]
    pub lockout: LockoutSection,
    pub http: Option<HttpSection>,
    #[serde(default)]
    pub disconnect: DisconnectSection,
}

/// `[http]`: the token API, `/metrics` and `/api/openapi.json`. Off when absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub listen: String,
    #[serde(default, rename = "api_key")]
    pub api_keys: Vec<ApiKeySection>,
}

/// `[[http.api_key]]`: a bearer token a platform presents, and what it may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    pub name: String,
    pub token: Secret,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What an API key may do (the platform's role names, seed 003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Create,
    Read,
    Delete,
    /// "A full unrestricted administrator": every route.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Create, Role::Read, Role::Delete, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "AccessToken-Create",
            Self::Read => "AccessToken-Read",
            Self::Delete => "AccessToken-Delete",
            Self::Admin => "Admin",
        }
    }
}

/// A validated API key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    pub token: Secret,
    pub roles: Vec<Role>,
}

impl ApiKey {
    pub fn allows(&self, role: Role) -> bool {
        self.roles.iter().any(|r| *r == role || *r == Role::Admin)
    }
}

/// The validated `[http]` section.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub api_keys: Vec<ApiKey>,
}

/// `[disconnect]`: RFC 5176 Disconnect-Requests sent to a NAS when a session must end
/// (token revoked or deleted, customer deactivated, PIN changed, time run out).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DisconnectSection {
    pub enabled: bool,
    /// Seconds to wait for the NAS's ACK/NAK before sending again.
    pub timeout_seconds: i64,
    /// Sends of one request, the first included, before giving up.
    pub attempts: i64,
}

impl Default for DisconnectSection {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout_seconds: 2,
            attempts: 3,
        }
    }
}

/// Disconnect settings as the server uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisconnectSettings {
    pub enabled: bool,
    pub timeout: std::time::Duration,
    pub attempts: u32,
}

/// `[lockout]`: guessing protection (all durations in seconds).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutSection {
    /// Failed logins from one device within `window_seconds` that lock it out.
    pub max_failures: i64,
    pub window_seconds: i64,
    /// First lockout; doubled on each repeat up to `max_lockout_seconds`.
    pub lockout_seconds: i64,
    pub max_lockout_seconds: i64,
    /// Failed logins per minute through one client above which an attack is logged
    /// (once a minute).
    pub client_alarm_per_minute: i64,
}

impl Default for LockoutSection {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window_seconds: 600,
            lockout_seconds: 600,
            max_lockout_seconds: 86_400,
            client_alarm_per_minute: 100,
        }
    }
}

/// `[accounting]`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountingSection {
    /// An open session with no accounting update for this long is closed (its NAS
    /// vanished). Default: 2 x Acct-Interim-Interval + 60.
    pub stale_after_seconds: Option<i64>,
    /// How often the reaper looks for stale and run-out sessions. Default 30.
    pub reap_interval_seconds: Option<i64>,
}

/// `[visitors]`: the platform's "Network check-in" settings (seed 000).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct VisitorSettings {
    /// "Generate an access token for every pre-registered visitor".
    pub generate_access_tokens: bool,
    /// "Default duration for visitor access tokens", in minutes, for all visitors.
    /// Read when a visitor is registered: changing it does not rewrite existing tokens.
    pub default_minutes: i64,
    /// "Maximum number of devices per visitor" (distinct devices).
    pub max_devices: i64,
    /// A visitor not yet checked in is checked in by the first accepted Wi-Fi login;
    /// when false such a login is rejected until an admin checks the visitor in.
    pub check_in_on_first_login: bool,
}

impl Default for VisitorSettings {
    fn default() -> Self {
        Self {
            generate_access_tokens: true,
            default_minutes: 60,
            max_devices: 2,
            check_in_on_first_login: true,
        }
    }
}

/// `[customers]`: Wi-Fi rules for members logging in with their PIN.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CustomerSettings {
    /// Session-Timeout of each login, in minutes.
    pub session_minutes: i64,
    /// Distinct devices a customer may use.
    pub max_devices: i64,
}

impl Default for CustomerSettings {
    fn default() -> Self {
        Self {
            session_minutes: 1440,
            max_devices: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_auth_listen")]
    pub auth_listen: String,
    #[serde(default = "default_acct_listen")]
    pub acct_listen: String,
    #[serde(default = "default_database")]
    pub database: PathBuf,
    /// Extra FreeRADIUS-format dictionary files (relative to the config file).
    #[serde(default)]
    pub dictionaries: Vec<PathBuf>,
    /// How long a response is kept to answer retransmits identically (RFC 5080 2.2.2).
    #[serde(default = "default_retransmit_seconds")]
    pub retransmit_cache_seconds: u64,
}

fn default_auth_listen() -> String {
    "0.0.0.0:1812".into()
}
fn default_acct_listen() -> String {
    "0.0.0.0:1813".into()
}
fn default_database() -> PathBuf {
    "pinradius.db".into()
}
fn default_retransmit_seconds() -> u64 {
    30
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplySection {
    pub idle_timeout: Option<i64>,
    pub acct_interim_interval: Option<i64>,
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    pub name: String,
    pub address: String,
    pub secret: Secret,
    pub business_id: i64,
    #[serde(default = "yes")]
    pub require_message_authenticator: bool,
    #[serde(default)]
    pub password_mode: PasswordMode,
    /// Reply attributes for this client only; they override `[reply.attributes]`.
    #[serde(default)]
    pub reply_attributes: BTreeMap<String, AttributeValue>,
    /// UDP port where the NAS takes Disconnect-Requests (RFC 5176; MikroTik:
    /// `/radius incoming set accept=yes port=3799`).
    #[serde(default = "default_coa_port")]
    pub coa_port: i64,
}

fn default_coa_port() -> i64 {
    3799
}

fn yes() -> bool {
    true
}

/// A validated client: what the server needs per NAS.
#[derive(Debug, Clone)]
pub struct Client {
    /// Shared (not copied) by every metric label and log line that names the client.
    pub name: std::sync::Arc<str>,
    /// Exact address (a /32 or /128) or a CIDR range.
    pub network: IpNet,
    pub secret: Secret,
    pub business_id: i64,
    pub require_message_authenticator: bool,
    pub password_mode: PasswordMode,
    /// Attributes added to every Access-Accept for this client, already encoded.
    pub reply_attributes: Vec<EncodedAttribute>,
    /// Where Disconnect-Requests go on the NAS.
    pub coa_port: u16,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from; relative paths inside are relative to its folder.
    pub path: PathBuf,
    pub auth_listen: SocketAddr,
    pub acct_listen: SocketAddr,
    pub database: PathBuf,
    pub retransmit_cache_seconds: u64,
    pub idle_timeout: Option<u32>,
    pub acct_interim_interval: Option<u32>,
    pub clients: Vec<Client>,
    pub visitors: VisitorSettings,
    pub customers: CustomerSettings,
    /// Seconds without an accounting update after which an open session is stale.
    pub stale_after_seconds: u64,
    /// Seconds between reaper runs.
    pub reap_interval_seconds: u64,
    pub lockout: crate::policy::lockout::LockoutRules,
    pub client_alarm_per_minute: u32,
    /// The HTTP API and metrics listener, when `[http]` is present.
    pub http: Option<HttpConfig>,
    pub disconnect: DisconnectSettings,
}

fn parse_listen(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(key, value, "expected IP:port, e.g. \"0.0.0.0:1812\""))
}

/// `address` of a client: an IP address or a CIDR network (host bits must be zero, so
/// a typo such as 10.1.2.3/16 is not silently widened).
pub fn parse_client_address(key: &str, value: &str) -> Result<IpNet, ConfigError> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net: IpNet = value.parse().map_err(|_| {
        invalid(
            key,
            value,
            "expected an IP address (192.168.88.1) or a CIDR (10.10.0.0/16)",
        )
    })?;
    if net.trunc() != net {
        return Err(invalid(
            key,
            value,
            format!("host bits are set; did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

/// Shortest API token accepted: a bearer token is all an attacker on the network
/// path needs to guess.
const MIN_API_TOKEN: usize = 16;

fn validate_http(h: &HttpSection) -> Result<HttpConfig, ConfigError> {
    let listen = parse_listen("http.listen", &h.listen)?;
    let mut api_keys: Vec<ApiKey> = Vec::with_capacity(h.api_keys.len());
    for (i, k) in h.api_keys.iter().enumerate() {
        let key = |f: &str| format!("http.api_key[{i}].{f}");
        if k.name.trim().is_empty() {
            return Err(invalid(key("name"), &k.name, "must not be empty"));
        }
        if api_keys.iter().any(|o| o.name == k.name) {
            return Err(invalid(
                key("name"),
                &k.name,
                "another [[http.api_key]] has this name",
            ));
        }
        if k.token.len() < MIN_API_TOKEN {
            return Err(invalid(
                key("token"),
                format!("<{} characters>", k.token.len()),
                format!(
                    "must be at least {MIN_API_TOKEN} characters (e.g. `openssl rand -hex 24`)"
                ),
            ));
        }
        if k.token
            .0
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                key("token"),
                "<hidden>",
                "must not contain spaces or control characters",
            ));
        }
        if api_keys.iter().any(|o| o.token == k.token) {
            return Err(invalid(
                key("token"),
                "<hidden>",
                "another [[http.api_key]] has the same token",
            ));
        }
        let mut roles = Vec::new();
        for r in &k.roles {
            let role = Role::ALL
                .into_iter()
                .find(|x| x.name() == r)
                .ok_or_else(|| {
                    invalid(
                        key("roles"),
                        r,
                        format!(
                            "unknown role; known: {}",
                            Role::ALL.map(Role::name).join(", ")
                        ),
                    )
                })?;
            roles.push(role);
        }
        if roles.is_empty() {
            return Err(invalid(key("roles"), "[]", "give at least one role"));
        }
        api_keys.push(ApiKey {
            name: k.name.clone(),
            token: k.token.clone(),
            roles,
        });
    }
    Ok(HttpConfig { listen, api_keys })
}

fn positive_u32(key: &str, value: Option<i64>) -> Result<Option<u32>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) if v >= 1 && v <= i64::from(u32::MAX) => Ok(Some(v as u32)),
        Some(v) => Err(invalid(
            key,
            v,
            "must be a whole number of seconds, at least 1",
        )),
    }
}

fn encode_attributes(
    key: &str,
    dictionary: &Dictionary,
    attributes: &BTreeMap<String, AttributeValue>,
) -> Result<Vec<(String, EncodedAttribute)>, ConfigError> {
    attributes
        .iter()
        .map(|(name, value)| {
            dictionary
                .encode(name, &value.to_string())
                .map(|e| (name.to_ascii_lowercase(), e))
                .map_err(|e| {
                    invalid(
                        format!("{key}.\"{name}\""),
                        value.to_string(),
                        e.to_string(),
                    )
                })
        })
        .collect()
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses and validates config text; `path` anchors relative paths.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let auth_listen = parse_listen("server.auth_listen", &raw.server.auth_listen)?;
        let acct_listen = parse_listen("server.acct_listen", &raw.server.acct_listen)?;
        if raw.server.database.as_os_str().is_empty() {
            return Err(invalid("server.database", "", "must name a file"));
        }
        if !(1..=3600).contains(&raw.server.retransmit_cache_seconds) {
            return Err(invalid(
                "server.retransmit_cache_seconds",
                raw.server.retransmit_cache_seconds,
                "must be 1..=3600",
            ));
        }

        let mut dictionary = Dictionary::default();
        for (name, text) in BUILTIN_DICTIONARIES {
            dictionary.load(name, text)?;
        }
        for p in &raw.server.dictionaries {
            let full = resolve(p);
            let text =
                std::fs::read_to_string(&full).map_err(|source| ConfigError::DictionaryRead {
                    path: full.clone(),
                    source,
                })?;
            dictionary.load(&full.display().to_string(), &text)?;
        }

        let idle_timeout = positive_u32("reply.idle_timeout", raw.reply.idle_timeout)?;
        let acct_interim_interval = positive_u32(
            "reply.acct_interim_interval",
            raw.reply.acct_interim_interval,
        )?;
        if let Some(i) = acct_interim_interval
            && i < 60
        {
            return Err(invalid(
                "reply.acct_interim_interval",
                i,
                "RFC 2869 5.16 asks for at least 60 seconds",
            ));
        }
        let common = encode_attributes("reply.attributes", &dictionary, &raw.reply.attributes)?;

        if raw.clients.is_empty() {
            return Err(invalid(
                "client",
                "[]",
                "at least one [[client]] is needed: requests from anyone else are dropped",
            ));
        }
        let mut clients = Vec::with_capacity(raw.clients.len());
        for (i, c) in raw.clients.iter().enumerate() {
            let key = |k: &str| format!("client[{i}].{k}");
            if c.name.trim().is_empty() {
                return Err(invalid(key("name"), &c.name, "must not be empty"));
            }
            if clients.iter().any(|o: &Client| *o.name == *c.name) {
                return Err(invalid(
                    key("name"),
                    &c.name,
                    "another [[client]] has this name",
                ));
            }
            let network = parse_client_address(&key("address"), &c.address)?;
            if let Some(other) = clients.iter().find(|o: &&Client| o.network == network) {
                return Err(invalid(
                    key("address"),
                    &c.address,
                    format!("client {:?} has the same address", other.name),
                ));
            }
            if c.secret.is_empty() {
                return Err(invalid(key("secret"), "", "must not be empty"));
            }
            if c.business_id < 1 {
                return Err(invalid(
                    key("business_id"),
                    c.business_id,
                    "must be a business id, 1 or more",
                ));
            }
            let own =
                encode_attributes(&key("reply_attributes"), &dictionary, &c.reply_attributes)?;
            let mut merged: BTreeMap<String, EncodedAttribute> = common.iter().cloned().collect();
            merged.extend(own);
            clients.push(Client {
                name: c.name.as_str().into(),
                network,
                secret: c.secret.clone(),
                business_id: c.business_id,
                require_message_authenticator: c.require_message_authenticator,
                password_mode: c.password_mode,
                reply_attributes: merged.into_values().collect(),
                coa_port: u16::try_from(c.coa_port)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| {
                        invalid(
                            key("coa_port"),
                            c.coa_port,
                            "must be a UDP port, 1 to 65535",
                        )
                    })?,
            });
        }

        let minutes = |key: &str, v: i64| {
            if (1..=crate::model::MAX_MINUTES).contains(&v) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    v,
                    format!(
                        "must be a whole number of minutes from 1 to {}",
                        crate::model::MAX_MINUTES
                    ),
                ))
            }
        };
        let devices = |key: &str, v: i64| {
            if (1..=10_000).contains(&v) {
                Ok(())
            } else {
                Err(invalid(key, v, "must be a whole number from 1 to 10000"))
            }
        };
        minutes("visitors.default_minutes", raw.visitors.default_minutes)?;
        devices("visitors.max_devices", raw.visitors.max_devices)?;
        minutes("customers.session_minutes", raw.customers.session_minutes)?;
        devices("customers.max_devices", raw.customers.max_devices)?;

        let stale_after_seconds = match raw.accounting.stale_after_seconds {
            None => 2 * u64::from(acct_interim_interval.unwrap_or(300)) + 60,
            Some(v) if (1..=31_536_000).contains(&v) => v as u64,
            Some(v) => {
                return Err(invalid(
                    "accounting.stale_after_seconds",
                    v,
                    "must be 1 to 31536000 seconds",
                ));
            }
        };
        let reap_interval_seconds = match raw.accounting.reap_interval_seconds {
            None => 30,
            Some(v) if (1..=3600).contains(&v) => v as u64,
            Some(v) => {
                return Err(invalid(
                    "accounting.reap_interval_seconds",
                    v,
                    "must be 1 to 3600 seconds",
                ));
            }
        };

        let l = raw.lockout;
        let bounded = |key: &str, v: i64, min: i64, max: i64| {
            if (min..=max).contains(&v) {
                Ok(v)
            } else {
                Err(invalid(key, v, format!("must be {min} to {max}")))
            }
        };
        let lockout = crate::policy::lockout::LockoutRules {
            max_failures: bounded("lockout.max_failures", l.max_failures, 1, 1_000_000)? as u32,
            window: chrono::Duration::seconds(bounded(
                "lockout.window_seconds",
                l.window_seconds,
                1,
                31_536_000,
            )?),
            base: chrono::Duration::seconds(bounded(
                "lockout.lockout_seconds",
                l.lockout_seconds,
                1,
                31_536_000,
            )?),
            max: chrono::Duration::seconds(bounded(
                "lockout.max_lockout_seconds",
                l.max_lockout_seconds,
                1,
                31_536_000,
            )?),
        };
        if lockout.max < lockout.base {
            return Err(invalid(
                "lockout.max_lockout_seconds",
                l.max_lockout_seconds,
                "is shorter than lockout.lockout_seconds",
            ));
        }
        let client_alarm_per_minute = bounded(
            "lockout.client_alarm_per_minute",
            l.client_alarm_per_minute,
            1,
            100_000_000,
        )? as u32;

        let http = raw.http.as_ref().map(validate_http).transpose()?;
        let d = raw.disconnect;
        let disconnect = DisconnectSettings {
            enabled: d.enabled,
            timeout: std::time::Duration::from_secs(bounded(
                "disconnect.timeout_seconds",
                d.timeout_seconds,
                1,
                60,
            )? as u64),
            attempts: bounded("disconnect.attempts", d.attempts, 1, 10)? as u32,
        };

        Ok(Config {
            path: path.to_path_buf(),
            auth_listen,
            acct_listen,
            database: resolve(&raw.server.database),
            retransmit_cache_seconds: raw.server.retransmit_cache_seconds,
            idle_timeout,
            acct_interim_interval,
            clients,
            visitors: raw.visitors,
            customers: raw.customers,
            stale_after_seconds,
            reap_interval_seconds,
            lockout,
            client_alarm_per_minute,
            http,
            disconnect,
        })
    }

    /// The login rules the policy applies to visitors and customers.
    pub fn login_rules(&self) -> crate::policy::LoginRules {
        crate::policy::LoginRules {
            check_in_on_first_login: self.visitors.check_in_on_first_login,
            customer_session_minutes: self.customers.session_minutes as u32,
            customer_max_devices: self.customers.max_devices as u32,
            stale_after: chrono::Duration::seconds(self.stale_after_seconds as i64),
        }
    }

    /// Things that are allowed but unwise, for `check-config` to print.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for c in &self.clients {
            if c.secret.len() < 16 {
                w.push(format!(
                    "client {:?}: secret is {} characters; use 16 or more",
                    c.name,
                    c.secret.len()
                ));
            }
            if !c.require_message_authenticator {
                w.push(format!(
                    "client {:?}: require_message_authenticator = false leaves it open to BlastRADIUS (CVE-2024-3596)",
                    c.name
                ));
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
auth_listen = "127.0.0.1:1812"
database = "data/p.db"
[reply]
idle_timeout = 300
[reply.attributes]
"Mikrotik-Rate-Limit" = "10M/10M"
[[client]]
name = "lobby"
address = "192.168.88.1"
secret = "0123456789abcdef"
business_id = 1
[[client]]
name = "floor2"
address = "10.10.0.0/16"
secret = "0123456789abcdef"
business_id = 2
password_mode = "any"
require_message_authenticator = false
reply_attributes = { "Mikrotik-Rate-Limit" = "2M/2M", "WISPr-Bandwidth-Max-Down" = 2000000 }
"#;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(Path::new("/etc/pinradius/pinradius.toml"), text)
    }

    #[test]
    fn good_config_resolves_paths_and_attributes() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.database, PathBuf::from("/etc/pinradius/data/p.db"));
        assert_eq!(c.acct_listen, "0.0.0.0:1813".parse().unwrap());
        assert_eq!(c.clients[0].reply_attributes.len(), 1);
        assert_eq!(c.clients[0].reply_attributes[0].value, b"10M/10M");
        assert_eq!(c.clients[1].reply_attributes.len(), 2);
        assert!(
            c.clients[1]
                .reply_attributes
                .iter()
                .any(|a| a.value == b"2M/2M")
        );
        assert_eq!(c.clients[1].password_mode, PasswordMode::Any);
        assert!(c.clients[0].require_message_authenticator);
        assert_eq!(c.warnings().len(), 1);
        assert_eq!(
            c.stale_after_seconds, 660,
            "2 x the default interim interval + 60"
        );
        assert!(
            !format!("{:?}", c).contains("0123456789abcdef"),
            "secrets never in Debug output"
        );
    }

    fn err(text: &str) -> String {
        load(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_key_and_value() {
        let e = err(&GOOD.replace("192.168.88.1", "192.168.888.1"));
        assert!(
            e.contains("client[0].address") && e.contains("192.168.888.1"),
            "{e}"
        );
        let e = err(&GOOD.replace("10.10.0.0/16", "10.10.1.0/16"));
        assert!(
            e.contains("client[1].address") && e.contains("10.10.0.0/16"),
            "{e}"
        );
        let e = err(&GOOD.replace("127.0.0.1:1812", "127.0.0.1"));
        assert!(
            e.contains("server.auth_listen") && e.contains("127.0.0.1"),
            "{e}"
        );
        let e = err(&GOOD.replace("business_id = 2", "business_id = 0"));
        assert!(e.contains("client[1].business_id = 0"), "{e}");
        let e = err(&GOOD.replace("\"10M/10M\"", "\"10M/10M\"\n\"Mikrotik-Nope\" = \"x\""));
        assert!(e.contains("Mikrotik-Nope"), "{e}");
        let e = err(&GOOD.replace("idle_timeout = 300", "idle_timeout = -5"));
        assert!(e.contains("reply.idle_timeout") && e.contains("-5"), "{e}");
        let e = err(&GOOD.replace("password_mode = \"any\"", "password_mode = \"sometimes\""));
        assert!(e.contains("sometimes"), "{e}");
        let e = err(&GOOD.replace("name = \"floor2\"", "name = \"lobby\""));
        assert!(e.contains("client[1].name"), "{e}");
        let e = err(&GOOD.replace("[reply]", "[reply]\nidle_timout = 3"));
        assert!(e.contains("idle_timout"), "{e}");
        let e = err(&format!("{GOOD}\n[visitors]\ndefault_minutes = 0\n"));
        assert!(e.contains("visitors.default_minutes = 0"), "{e}");
        let e = err(&format!("{GOOD}\n[customers]\nmax_devices = -1\n"));
        assert!(e.contains("customers.max_devices = -1"), "{e}");
        let e = err(&format!("{GOOD}\n[visitors]\ndefault_minute = 5\n"));
        assert!(e.contains("default_minute"), "{e}");
        let e = err("[server]\n");
        assert!(e.contains("[[client]]"), "{e}");
        let e = err(&GOOD.replace("business_id = 2", "business_id = 2\ncoa_port = 70000"));
        assert!(e.contains("client[1].coa_port = 70000"), "{e}");
        let e = err(&format!("{GOOD}\n[disconnect]\nattempts = 0\n"));
        assert!(e.contains("disconnect.attempts = 0"), "{e}");
    }

    #[test]
    fn http_section_and_api_keys() {
        let http = |keys: &str| format!("{GOOD}\n[http]\nlisten = \"127.0.0.1:8080\"\n{keys}");
        let key = |name: &str, token: &str, roles: &str| {
            format!("[[http.api_key]]\nname = \"{name}\"\ntoken = \"{token}\"\nroles = {roles}\n")
        };
        let c = load(&http(&key(
            "platform",
            "0123456789abcdef0123",
            "[\"AccessToken-Create\", \"AccessToken-Read\"]",
        )))
        .unwrap();
        let h = c.http.unwrap();
        assert_eq!(h.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(h.api_keys[0].roles, vec![Role::Create, Role::Read]);
        assert!(
            !format!("{:?}", h.api_keys[0]).contains("0123456789abcdef0123"),
            "tokens never print"
        );
        assert!(load(GOOD).unwrap().http.is_none(), "off when absent");

        let e = err(&http(&key("p", "short", "[\"Admin\"]")));
        assert!(
            e.contains("http.api_key[0].token") && e.contains("16"),
            "{e}"
        );
        assert!(!e.contains("short"), "the token is not echoed: {e}");
        let e = err(&http(&key(
            "p",
            "0123456789abcdef0123",
            "[\"AccessToken-Write\"]",
        )));
        assert!(
            e.contains("http.api_key[0].roles") && e.contains("AccessToken-Write"),
            "{e}"
        );
        let e = err(&http(&key("p", "0123456789abcdef0123", "[]")));
        assert!(e.contains("http.api_key[0].roles"), "{e}");
        let two = key("p", "0123456789abcdef0123", "[\"Admin\"]")
            + &key("p", "0123456789abcdef0124", "[\"Admin\"]");
        assert!(err(&http(&two)).contains("http.api_key[1].name"));
        let same = key("p", "0123456789abcdef0123", "[\"Admin\"]")
            + &key("q", "0123456789abcdef0123", "[\"Admin\"]");
        assert!(err(&http(&same)).contains("http.api_key[1].token"));
        let e = err(&format!("{GOOD}\n[http]\nlisten = \"localhost\"\n"));
        assert!(e.contains("http.listen") && e.contains("localhost"), "{e}");
    }
}
