//! `[nexudus]`: the coworking platform pinradius keeps its codes in sync with, and how
//! it is validated. No section: no sync (the CLI and the API add codes).

use super::{ConfigError, Secret, invalid};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[nexudus]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NexudusSection {
    /// The platform's address ("https://spaces.nexudus.com"); tests point it at a
    /// local server.
    pub base_url: String,
    /// An admin user of the platform with read roles.
    pub username: String,
    pub password: Option<Secret>,
    /// A file holding the password (first line), instead of `password`.
    pub password_file: Option<PathBuf>,
    /// The locations (businesses) to sync.
    pub business_ids: Vec<i64>,
    #[serde(default = "default_poll_seconds")]
    pub poll_seconds: i64,
    #[serde(default = "default_full_sync_hours")]
    pub full_sync_hours: i64,
    /// The secret set on the platform's webhooks.
    pub webhook_secret: Option<Secret>,
    /// Devices a token with neither dates nor `UserLimit` may be used by (the
    /// platform's help: "can only be used by one device"); 0 for no limit.
    #[serde(default = "one")]
    pub undated_token_devices: i64,
}

fn default_poll_seconds() -> i64 {
    120
}

fn default_full_sync_hours() -> i64 {
    24
}

fn one() -> i64 {
    1
}

/// The validated `[nexudus]`.
#[derive(Debug, Clone)]
pub struct NexudusConfig {
    /// Without a trailing slash.
    pub base_url: String,
    pub username: String,
    pub password: Secret,
    pub business_ids: Vec<i64>,
    pub poll: Duration,
    pub full_sync: Duration,
    pub webhook_secret: Option<Secret>,
    /// `None`: no limit.
    pub undated_token_devices: Option<u32>,
}

impl NexudusSection {
    /// Checks every key; `resolve` makes `password_file` relative to the config file.
    pub(super) fn validate(
        &self,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<NexudusConfig, ConfigError> {
        let base_url = self.base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
            || base_url.len() <= "https://".len()
        {
            return Err(invalid(
                "nexudus.base_url",
                &self.base_url,
                "must be an http:// or https:// address",
            ));
        }
        if self.username.trim().is_empty() {
            return Err(invalid(
                "nexudus.username",
                &self.username,
                "must not be empty",
            ));
        }
        let password = match (&self.password, &self.password_file) {
            (Some(p), None) if !p.is_empty() => p.clone(),
            (None, Some(file)) => {
                let path = resolve(file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    invalid(
                        "nexudus.password_file",
                        path.display().to_string(),
                        format!("cannot be read: {e}"),
                    )
                })?;
                let first = text.lines().next().unwrap_or("").trim_end();
                if first.is_empty() {
                    return Err(invalid(
                        "nexudus.password_file",
                        path.display().to_string(),
                        "is empty",
                    ));
                }
                Secret(first.to_string())
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "nexudus.password",
                    "<secret>",
                    "give password or password_file, not both",
                ));
            }
            _ => {
                return Err(invalid(
                    "nexudus.password",
                    "<missing>",
                    "one of password or password_file is required",
                ));
            }
        };
        if self.business_ids.is_empty() {
            return Err(invalid(
                "nexudus.business_ids",
                &self.business_ids,
                "must name at least one business",
            ));
        }
        if let Some(bad) = self.business_ids.iter().find(|b| **b <= 0) {
            return Err(invalid(
                "nexudus.business_ids",
                bad,
                "business ids are positive integers",
            ));
        }
        let seconds = |key: &str, v: i64, min: i64, max: i64| {
            if (min..=max).contains(&v) {
                Ok(v as u64)
            } else {
                Err(invalid(key, v, format!("must be {min} to {max}")))
            }
        };
        let poll = seconds("nexudus.poll_seconds", self.poll_seconds, 10, 86_400)?;
        let full = seconds("nexudus.full_sync_hours", self.full_sync_hours, 1, 720)?;
        let devices = seconds(
            "nexudus.undated_token_devices",
            self.undated_token_devices,
            0,
            1000,
        )?;
        if self.webhook_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err(invalid(
                "nexudus.webhook_secret",
                "<secret>",
                "must be at least 16 characters",
            ));
        }
        Ok(NexudusConfig {
            base_url,
            username: self.username.clone(),
            password,
            business_ids: self.business_ids.clone(),
            poll: Duration::from_secs(poll),
            full_sync: Duration::from_secs(full * 3600),
            webhook_secret: self.webhook_secret.clone(),
            undated_token_devices: (devices > 0).then_some(devices as u32),
        })
    }
}
