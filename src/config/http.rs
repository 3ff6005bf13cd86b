//! `[http]` and `[[http.api_key]]`: the token API listener, its API keys and their
//! roles, and how they are validated.

use super::{ConfigError, Secret, invalid, parse_listen};
use serde::Deserialize;
use std::net::SocketAddr;

/// `[http]`: the token API, `/metrics` and `/api/openapi.json`. Off when absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub listen: String,
    #[serde(default, rename = "api_key")]
    pub api_keys: Vec<ApiKeySection>,
    /// Connections served at once; more are closed as they arrive.
    #[serde(default = "default_max_connections")]
    pub max_connections: i64,
    /// A request's headers must arrive within this long (slow clients are cut off).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: i64,
    /// A connection is closed after this long, whatever it does (an idle keep-alive
    /// connection holds a place no longer).
    #[serde(default = "default_connection_seconds")]
    pub max_connection_seconds: i64,
    /// Largest request body (the webhook route takes up to 4 MiB regardless).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: i64,
}

fn default_max_connections() -> i64 {
    256
}

fn default_header_timeout() -> i64 {
    10
}

fn default_connection_seconds() -> i64 {
    120
}

fn default_max_body() -> i64 {
    65_536
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
    /// Change a token (`PUT`).
    Edit,
    Delete,
    /// "A full unrestricted administrator": every route.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Create,
        Role::Read,
        Role::Edit,
        Role::Delete,
        Role::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "AccessToken-Create",
            Self::Read => "AccessToken-Read",
            Self::Edit => "AccessToken-Edit",
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
    pub limits: HttpLimits,
}

/// The HTTP listener's limits (`[http]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: std::time::Duration,
    pub max_connection: std::time::Duration,
    pub max_body: usize,
}

/// Shortest API token accepted: a bearer token is all an attacker on the network
/// path needs to guess.
const MIN_API_TOKEN: usize = 16;

pub(super) fn validate_http(h: &HttpSection) -> Result<HttpConfig, ConfigError> {
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
    let within = |key: &str, v: i64, min: i64, max: i64| {
        if (min..=max).contains(&v) {
            Ok(v as u64)
        } else {
            Err(invalid(key, v, format!("must be {min} to {max}")))
        }
    };
    let limits = HttpLimits {
        max_connections: within("http.max_connections", h.max_connections, 1, 100_000)? as usize,
        header_timeout: std::time::Duration::from_secs(within(
            "http.header_timeout_seconds",
            h.header_timeout_seconds,
            1,
            300,
        )?),
        max_connection: std::time::Duration::from_secs(within(
            "http.max_connection_seconds",
            h.max_connection_seconds,
            1,
            86_400,
        )?),
        max_body: within(
            "http.max_body_bytes",
            h.max_body_bytes,
            1024,
            64 * 1024 * 1024,
        )? as usize,
    };
    Ok(HttpConfig {
        listen,
        api_keys,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use super::Role;
    use crate::config::tests::{GOOD, err, load};

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
