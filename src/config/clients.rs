//! `[[client]]`: the NASes allowed to send requests, their shared secrets and their
//! reply attributes, and how each is validated.

use super::{ConfigError, invalid};
use crate::protocol::{Dictionary, EncodedAttribute};
use ipnet::IpNet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// A shared secret. Its `Debug` never shows the value, so a config printed for
/// troubleshooting cannot leak it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub(super) String);

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
pub struct ClientSection {
    pub name: String,
    pub address: String,
    /// The shared secret (UDP); a RadSec client's is RFC 6614's fixed "radsec".
    #[serde(default)]
    pub secret: Option<Secret>,
    /// A RadSec client (`[radsec]`): the name its TLS certificate must carry
    /// (subjectAltName dNSName, or commonName). `address` is then where it may
    /// connect from.
    #[serde(default)]
    pub certificate_name: Option<String>,
    pub business_id: i64,
    /// Default: true over UDP (BlastRADIUS); false for a RadSec client, whose
    /// packets TLS already protects (RFC 6614 NASes often send none).
    #[serde(default)]
    pub require_message_authenticator: Option<bool>,
    #[serde(default)]
    pub password_mode: PasswordMode,
    /// Reply attributes for this client only; they override `[reply.attributes]`.
    #[serde(default)]
    pub reply_attributes: BTreeMap<String, AttributeValue>,
    /// UDP port where the NAS takes Disconnect-Requests (RFC 5176; MikroTik:
    /// `/radius incoming set accept=yes port=3799`).
    #[serde(default = "default_coa_port")]
    pub coa_port: i64,
    /// Whether a User-Name that is the email of a visitor or member of the business,
    /// with their PIN as the password, logs them in (the platform's own way).
    #[serde(default = "yes")]
    pub email_login: bool,
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
    /// Email + PIN logins taken from this client.
    pub email_login: bool,
    /// A RadSec client: the (lower-cased) name its certificate carries. Such a client
    /// is never matched by a UDP datagram's source address.
    pub certificate_name: Option<std::sync::Arc<str>>,
}

/// RFC 6614 section 2.3: RADIUS over TLS uses the fixed shared secret "radsec".
pub const RADSEC_SECRET: &str = "radsec";

/// Whether every address of `network` is this machine's.
fn is_loopback(network: &IpNet) -> bool {
    network.network().is_loopback() && network.broadcast().is_loopback()
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

pub(super) fn encode_attributes(
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

/// Validates every `[[client]]`; `common` (the encoded `[reply.attributes]`) is merged
/// under each client's own `reply_attributes`.
pub(super) fn validate_clients(
    sections: &[ClientSection],
    dictionary: &Dictionary,
    common: &[(String, EncodedAttribute)],
) -> Result<Vec<Client>, ConfigError> {
    if sections.is_empty() {
        return Err(invalid(
            "client",
            "[]",
            "at least one [[client]] is needed: requests from anyone else are dropped",
        ));
    }
    let mut clients = Vec::with_capacity(sections.len());
    for (i, c) in sections.iter().enumerate() {
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
        let certificate_name = match &c.certificate_name {
            Some(n) if n.trim().is_empty() => {
                return Err(invalid(key("certificate_name"), n, "must not be empty"));
            }
            Some(n) => Some(std::sync::Arc::<str>::from(n.trim().to_ascii_lowercase())),
            None => None,
        };
        // Only UDP clients are told apart by address; RadSec ones by certificate.
        if certificate_name.is_none()
            && let Some(other) = clients
                .iter()
                .find(|o: &&Client| o.certificate_name.is_none() && o.network == network)
        {
            return Err(invalid(
                key("address"),
                &c.address,
                format!("client {:?} has the same address", other.name),
            ));
        }
        if let Some(name) = &certificate_name
            && let Some(other) = clients
                .iter()
                .find(|o: &&Client| o.certificate_name.as_ref() == Some(name))
        {
            return Err(invalid(
                key("certificate_name"),
                name,
                format!("client {:?} has the same certificate_name", other.name),
            ));
        }
        let secret = match (&c.secret, &certificate_name) {
            (Some(s), Some(_)) if s.0 != RADSEC_SECRET => {
                return Err(invalid(
                    key("secret"),
                    "<set>",
                    "a RadSec client (certificate_name) uses the fixed secret \"radsec\" (RFC 6614): leave secret out",
                ));
            }
            (_, Some(_)) => Secret(RADSEC_SECRET.into()),
            (Some(s), None) if s.is_empty() => {
                return Err(invalid(key("secret"), "", "must not be empty"));
            }
            (Some(s), None) => s.clone(),
            (None, None) => {
                return Err(invalid(
                    key("secret"),
                    "<missing>",
                    "a UDP client needs the NAS's shared secret (or certificate_name for a RadSec client)",
                ));
            }
        };
        // The shipped example secrets are public: only a client on this machine may
        // keep one (the shipped config's own loopback client).
        if secret
            .as_bytes()
            .to_ascii_lowercase()
            .starts_with(b"change-me")
            && !is_loopback(&network)
        {
            return Err(invalid(
                key("secret"),
                "<the shipped placeholder>",
                format!(
                    "is the example secret from the shipped config, for a client at {}: set the NAS's own shared secret (16+ random characters)",
                    c.address
                ),
            ));
        }
        if c.business_id < 1 {
            return Err(invalid(
                key("business_id"),
                c.business_id,
                "must be a business id, 1 or more",
            ));
        }
        let own = encode_attributes(&key("reply_attributes"), dictionary, &c.reply_attributes)?;
        let mut merged: BTreeMap<String, EncodedAttribute> = common.iter().cloned().collect();
        merged.extend(own);
        clients.push(Client {
            name: c.name.as_str().into(),
            network,
            secret,
            business_id: c.business_id,
            require_message_authenticator: c
                .require_message_authenticator
                .unwrap_or(certificate_name.is_none()),
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
            email_login: c.email_login,
            certificate_name,
        });
    }
    Ok(clients)
}
