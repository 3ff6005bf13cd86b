//! The TOML config file. Every struct is `deny_unknown_fields` (a typo is an error,
//! not a silently ignored key) and [`Config::load`] validates everything before the
//! server binds a socket; every error names the key and the value.

mod accounting;
mod clients;
mod disconnect;
mod http;
mod lockout;
mod nexudus;
mod radsec;
mod reply;
mod server;
mod visitors;

pub use accounting::AccountingSection;
pub use clients::{
    AttributeValue, Client, ClientSection, PasswordMode, RADSEC_SECRET, Secret,
    parse_client_address,
};
pub use disconnect::{DisconnectSection, DisconnectSettings};
pub use http::{ApiKey, ApiKeySection, HttpConfig, HttpLimits, HttpSection, Role};
pub use lockout::LockoutSection;
pub use nexudus::{NexudusConfig, NexudusSection};
pub use radsec::{RadsecConfig, RadsecLimits, RadsecSection, certificate_names};
pub use reply::ReplySection;
pub use server::ServerSection;
pub use visitors::{CustomerSettings, VisitorSettings, WindowStart};

use crate::protocol::{Dictionary, DictionaryError};
use clients::{encode_attributes, validate_clients};
use http::validate_http;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The dictionaries shipped in `dictionaries/`, compiled in so vendor attributes work
/// wherever the binary runs; `[server] dictionaries` adds more files.
pub const BUILTIN_DICTIONARIES: [(&str, &str); 3] = [
    (
        "dictionaries/dictionary.rfc",
        include_str!("../../dictionaries/dictionary.rfc"),
    ),
    (
        "dictionaries/dictionary.mikrotik",
        include_str!("../../dictionaries/dictionary.mikrotik"),
    ),
    (
        "dictionaries/dictionary.wispr",
        include_str!("../../dictionaries/dictionary.wispr"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// (The I/O error is part of the message, not a `source`: printed once.)
    #[error("cannot read config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
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
    /// The platform to sync from; none: no sync.
    pub nexudus: Option<NexudusSection>,
    /// RADIUS over TLS; none: UDP only.
    pub radsec: Option<RadsecSection>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from; relative paths inside are relative to its folder.
    pub path: PathBuf,
    pub auth_listen: SocketAddr,
    pub acct_listen: SocketAddr,
    pub database: crate::model::Database,
    pub retransmit_cache_seconds: u64,
    /// `[server] login_write_wait_ms`.
    pub login_write_wait: std::time::Duration,
    pub idle_timeout: Option<u32>,
    pub acct_interim_interval: Option<u32>,
    pub clients: Vec<Client>,
    pub visitors: VisitorSettings,
    pub customers: CustomerSettings,
    /// Seconds without an accounting update after which an open session is stale.
    pub stale_after_seconds: u64,
    /// Seconds between reaper runs.
    pub reap_interval_seconds: u64,
    /// How long an Access-Accept holds a simultaneous-use place before accounting.
    pub login_hold_seconds: u64,
    /// The failure budgets against guessing.
    pub lockout: crate::policy::lockout::GuardRules,
    /// The HTTP API and metrics listener, when `[http]` is present.
    pub http: Option<HttpConfig>,
    pub disconnect: DisconnectSettings,
    /// The platform to sync from, when `[nexudus]` is configured.
    pub nexudus: Option<NexudusConfig>,
    /// `[radsec]`, its certificates loaded and checked.
    pub radsec: Option<RadsecConfig>,
}

fn parse_listen(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(key, value, "expected IP:port, e.g. \"0.0.0.0:1812\""))
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

fn bounded(key: &str, v: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(invalid(key, v, format!("must be {min} to {max}")))
    }
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
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

        let (auth_listen, acct_listen) = raw.server.validate()?;

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

        let reply = raw.reply.validate(&dictionary)?;
        let clients = validate_clients(&raw.clients, &dictionary, &reply.attributes)?;
        raw.visitors.validate()?;
        raw.customers.validate()?;
        let stale_after_seconds = raw
            .accounting
            .stale_after_seconds(reply.acct_interim_interval)?;
        let reap_interval_seconds = raw.accounting.reap_interval_seconds()?;
        let login_hold_seconds = raw.accounting.login_hold_seconds()?;
        let lockout = raw.lockout.rules()?;
        let http = raw.http.as_ref().map(validate_http).transpose()?;
        let disconnect = raw.disconnect.validate()?;
        let nexudus = raw
            .nexudus
            .as_ref()
            .map(|n| n.validate(&resolve))
            .transpose()?;
        // Certificates are checked against the time the config is loaded.
        let radsec = raw
            .radsec
            .as_ref()
            .map(|r| r.validate(&base, chrono::Utc::now().timestamp()))
            .transpose()?;
        if radsec.is_none()
            && let Some((i, c)) = clients
                .iter()
                .enumerate()
                .find(|(_, c)| c.certificate_name.is_some())
        {
            return Err(invalid(
                format!("client[{i}].certificate_name"),
                c.certificate_name.as_deref().unwrap_or_default(),
                "a RadSec client needs a [radsec] section (listen, certificate, private_key, client_ca)",
            ));
        }

        Ok(Config {
            path: path.to_path_buf(),
            auth_listen,
            acct_listen,
            database: raw.server.database(&resolve)?,
            retransmit_cache_seconds: raw.server.retransmit_cache_seconds,
            login_write_wait: std::time::Duration::from_millis(raw.server.login_write_wait_ms),
            idle_timeout: reply.idle_timeout,
            acct_interim_interval: reply.acct_interim_interval,
            clients,
            visitors: raw.visitors,
            customers: raw.customers,
            stale_after_seconds,
            reap_interval_seconds,
            login_hold_seconds,
            lockout,
            http,
            disconnect,
            nexudus,
            radsec,
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
            // RadSec's fixed secret is not a secret: TLS protects those clients.
            if c.certificate_name.is_none() && c.secret.len() < 16 {
                w.push(format!(
                    "client {:?}: secret is {} characters; use 16 or more",
                    c.name,
                    c.secret.len()
                ));
            }
            if !c.require_message_authenticator && c.certificate_name.is_none() {
                w.push(format!(
                    "client {:?}: require_message_authenticator = false leaves it open to BlastRADIUS (CVE-2024-3596)",
                    c.name
                ));
            }
        }
        for (key, file, days) in self.radsec.iter().flat_map(|r| &r.expiring) {
            w.push(format!(
                "{key} = {}: the certificate expires in {days} day(s); renew it (SIGHUP reloads it)",
                file.display()
            ));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const GOOD: &str = r#"
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

    pub(super) fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(Path::new("/etc/pinradius/pinradius.toml"), text)
    }

    #[test]
    fn the_shipped_placeholder_secret_is_only_for_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let with = |address: &str, secret: &str| {
            Config::from_toml(
                &dir.path().join("p.toml"),
                &format!(
                    "[server]\ndatabase = \"p.db\"\n[[client]]\nname = \"n\"\naddress = \"{address}\"\nsecret = \"{secret}\"\nbusiness_id = 1\n"
                ),
            )
        };
        assert!(with("127.0.0.1", "change-me-localhost-secret").is_ok());
        let e = with("192.168.88.1", "CHANGE-ME-SECRET")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("client[0].secret") && e.contains("192.168.88.1"),
            "{e}"
        );
        assert!(with("10.0.0.0/8", "change-me-a-long-shared-secret").is_err());
        assert!(with("192.168.88.1", "Tq8v3Lx9Rk2mWp7ZcN4s").is_ok());
    }

    #[test]
    fn a_postgres_url_selects_postgres_and_bad_ones_are_named() {
        let with = |server: &str| load(&GOOD.replacen("database = \"data/p.db\"", server, 1));
        let c = with("database = \"postgres://radius@db.example:5432/pinradius\"\ndatabase_password_file = \"pg.pass\"").unwrap();
        assert_eq!(
            c.database,
            crate::model::Database::Postgres {
                url: "postgres://radius@db.example:5432/pinradius".into(),
                password_file: Some(PathBuf::from("/etc/pinradius/pg.pass")),
            }
        );
        let e = with(
            "database = \"postgres://radius:hunter2@db/p\"\ndatabase_password_file = \"pg.pass\"",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("server.database_password_file") && !e.contains("hunter2"),
            "{e}"
        );
        let e = with("database = \"postgres://radius:hunter2@db:notaport/p\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("server.database") && !e.contains("hunter2"),
            "{e}"
        );
        let e = with("database = \"postgres://db/p?sslmode=require\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode=require"), "{e}");
        let e = with("database = \"p.db\"\ndatabase_password_file = \"pg.pass\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("only for a postgres:// database"), "{e}");
    }

    #[test]
    fn good_config_resolves_paths_and_attributes() {
        let c = load(GOOD).unwrap();
        assert_eq!(
            c.database,
            crate::model::Database::File(PathBuf::from("/etc/pinradius/data/p.db"))
        );
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

    pub(super) fn err(text: &str) -> String {
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
        let e = err(&GOOD.replace("[server]", "[server]\nlogin_write_wait_ms = 10"));
        assert!(e.contains("server.login_write_wait_ms = 10"), "{e}");
        let e = err(&GOOD.replace(
            "[server]",
            "[server]\nlogin_write_wait_ms = 5000\nretransmit_cache_seconds = 5",
        ));
        assert!(
            e.contains("server.login_write_wait_ms = 5000")
                && e.contains("retransmit_cache_seconds"),
            "{e}"
        );
    }
}
