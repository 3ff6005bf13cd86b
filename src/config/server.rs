//! `[server]`: listen addresses, the database (a file or PostgreSQL), extra dictionaries and the
//! retransmit cache, and how they are validated.

use super::{ConfigError, invalid, parse_listen};
use crate::model::{Database, without_password};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default = "default_auth_listen")]
    pub auth_listen: String,
    #[serde(default = "default_acct_listen")]
    pub acct_listen: String,
    /// An SQLite file, or a `postgres://` URL (several servers on one database).
    #[serde(default = "default_database")]
    pub database: String,
    /// A file holding the PostgreSQL password (instead of one in the URL).
    #[serde(default)]
    pub database_password_file: Option<PathBuf>,
    /// Extra FreeRADIUS-format dictionary files (relative to the config file).
    #[serde(default)]
    pub dictionaries: Vec<PathBuf>,
    /// How long a response is kept to answer retransmits identically (RFC 5080 2.2.2).
    #[serde(default = "default_retransmit_seconds")]
    pub retransmit_cache_seconds: u64,
    /// How long a login that must write (a device's first login, a visitor's check-in)
    /// waits for the database while another process holds its write lock, before it
    /// is refused as briefly unavailable: under the NAS's RADIUS timeout.
    #[serde(default = "default_login_write_wait_ms")]
    pub login_write_wait_ms: u64,
}

fn default_auth_listen() -> String {
    "0.0.0.0:1812".into()
}
fn default_acct_listen() -> String {
    "0.0.0.0:1813".into()
}
fn default_database() -> String {
    "pinradius.db".into()
}
fn default_retransmit_seconds() -> u64 {
    30
}
fn default_login_write_wait_ms() -> u64 {
    1500
}

impl ServerSection {
    /// Checks the section (the dictionaries are loaded by [`super::Config::from_toml`]);
    /// returns the authentication and accounting listen addresses, in that order.
    pub(super) fn validate(&self) -> Result<(SocketAddr, SocketAddr), ConfigError> {
        let auth_listen = parse_listen("server.auth_listen", &self.auth_listen)?;
        let acct_listen = parse_listen("server.acct_listen", &self.acct_listen)?;
        if self.database.is_empty() {
            return Err(invalid(
                "server.database",
                "",
                "must name a file or a postgres:// URL",
            ));
        }
        if !(1..=3600).contains(&self.retransmit_cache_seconds) {
            return Err(invalid(
                "server.retransmit_cache_seconds",
                self.retransmit_cache_seconds,
                "must be 1..=3600",
            ));
        }
        if !(50..=30_000).contains(&self.login_write_wait_ms) {
            return Err(invalid(
                "server.login_write_wait_ms",
                self.login_write_wait_ms,
                "must be 50..=30000 (milliseconds; keep it under the NAS's RADIUS timeout)",
            ));
        }
        // A login waiting for its writes is in flight in the retransmit cache; past
        // the cache's time a retransmit would be taken as a new request.
        if self.login_write_wait_ms >= self.retransmit_cache_seconds * 1000 {
            return Err(invalid(
                "server.login_write_wait_ms",
                self.login_write_wait_ms,
                format!(
                    "must be under server.retransmit_cache_seconds ({} s)",
                    self.retransmit_cache_seconds
                ),
            ));
        }
        Ok((auth_listen, acct_listen))
    }

    /// Where the data is, relative paths resolved with `resolve`.
    pub(super) fn database(
        &self,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<Database, ConfigError> {
        let url = self.database.trim();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            if let Some(f) = &self.database_password_file {
                return Err(invalid(
                    "server.database_password_file",
                    f.display(),
                    "is only for a postgres:// database",
                ));
            }
            return Ok(Database::File(resolve(Path::new(&self.database))));
        }
        let shown = without_password(url);
        let parsed: postgres::Config = url.parse().map_err(|e| {
            invalid(
                "server.database",
                &shown,
                format!("not a PostgreSQL URL: {e}"),
            )
        })?;
        if parsed.get_password().is_some() && self.database_password_file.is_some() {
            return Err(invalid(
                "server.database_password_file",
                shown,
                "the URL has a password already: keep one of the two",
            ));
        }
        if parsed.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(invalid(
                "server.database",
                shown,
                "sslmode=require: pinradius connects to PostgreSQL without TLS (a local socket, a private network or a tunnel)",
            ));
        }
        Ok(Database::Postgres {
            url: url.to_string(),
            password_file: self.database_password_file.as_deref().map(resolve),
        })
    }
}
