//! The platform's REST API over HTTPS (ureq, rustls): the OAuth token from
//! `POST /api/token` (form-encoded; JSON is refused), renewed before it expires and
//! again whenever a call is refused with 401; paged lists and records by id. The
//! token and the password never reach a log line or an error message.

use crate::config::NexudusConfig;
use serde_json::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long before its stated expiry a token is renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// Records asked per page (the platform's largest page size).
pub const PAGE_SIZE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("platform at {base}: {detail}")]
    Unreachable { base: String, detail: String },
    #[error(
        "platform refused the login of {username} (HTTP {status}): check nexudus.username and the password"
    )]
    LoginRefused { username: String, status: u16 },
    #[error("platform answered {path} with HTTP {status}")]
    Status { path: String, status: u16 },
    #[error("platform answered {path} with something that is not the documented shape: {detail}")]
    Shape { path: String, detail: String },
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<Value>,
    pub has_next: bool,
}

struct Token {
    access: String,
    renew_at: Instant,
}

/// A client of one platform account.
pub struct PlatformClient {
    agent: ureq::Agent,
    base: String,
    username: String,
    password: crate::config::Secret,
    token: Mutex<Option<Token>>,
}

impl PlatformClient {
    pub fn new(config: &NexudusConfig) -> PlatformClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .timeout_connect(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        PlatformClient {
            agent,
            base: config.base_url.clone(),
            username: config.username.clone(),
            password: config.password.clone(),
            token: Mutex::new(None),
        }
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> PlatformError {
        PlatformError::Unreachable {
            base: self.base.clone(),
            detail: e.to_string(),
        }
    }

    /// A valid access token: the cached one, or a new one.
    fn access_token(&self) -> Result<String, PlatformError> {
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.access.clone());
        }
        let password = String::from_utf8_lossy(self.password.as_bytes()).into_owned();
        let mut response = self
            .agent
            .post(format!("{}/api/token", self.base))
            .send_form([
                ("grant_type", "password"),
                ("username", self.username.as_str()),
                ("password", password.as_str()),
            ])
            .map_err(|e| self.unreachable(e))?;
        let status = response.status().as_u16();
        if status == 400 || status == 401 || status == 403 {
            return Err(PlatformError::LoginRefused {
                username: self.username.clone(),
                status,
            });
        }
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.unreachable(e))?;
        if !(200..300).contains(&status) {
            return Err(PlatformError::Status {
                path: "/api/token".into(),
                status,
            });
        }
        let shape = |detail: &str| PlatformError::Shape {
            path: "/api/token".into(),
            detail: detail.into(),
        };
        let v: Value = serde_json::from_str(&body).map_err(|_| shape("not JSON"))?;
        let access = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| shape("no access_token"))?
            .to_string();
        let lifetime =
            Duration::from_secs(v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600));
        *cached = Some(Token {
            access: access.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(RENEW_BEFORE.min(lifetime / 2)),
        });
        Ok(access)
    }

    /// GET `path` with `query`, as JSON; `None` for 404. A 401 renews the token and
    /// tries once more (it may have expired at the platform before its stated time).
    fn get_json(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Value>, PlatformError> {
        for attempt in 0..2 {
            let token = self.access_token()?;
            let mut request = self
                .agent
                .get(format!("{}{path}", self.base))
                .header("Authorization", format!("Bearer {token}"))
                .header("Accept", "application/json");
            for (k, v) in query {
                request = request.query(k, v);
            }
            let mut response = request.call().map_err(|e| self.unreachable(e))?;
            let status = response.status().as_u16();
            if status == 401 && attempt == 0 {
                *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
                continue;
            }
            if status == 404 {
                return Ok(None);
            }
            if !(200..300).contains(&status) {
                return Err(PlatformError::Status {
                    path: path.into(),
                    status,
                });
            }
            let body = response
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
                .map_err(|e| self.unreachable(e))?;
            return serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| PlatformError::Shape {
                    path: path.into(),
                    detail: format!("not JSON: {e}"),
                });
        }
        Err(PlatformError::Status {
            path: path.into(),
            status: 401,
        })
    }

    /// Page `page` (from 1) of `entity`, ordered by `UpdatedOn` ascending, with
    /// `filters` (`{Entity}_{Field}` / `from_{Entity}_{Field}` = value).
    pub fn list(
        &self,
        entity: &str,
        filters: &[(String, String)],
        page: u32,
    ) -> Result<Page, PlatformError> {
        let path = format!("/api/spaces/{entity}");
        let mut query = vec![
            ("page".to_string(), page.to_string()),
            ("size".to_string(), PAGE_SIZE.to_string()),
            ("orderBy".to_string(), "UpdatedOn".to_string()),
            ("dir".to_string(), "0".to_string()),
        ];
        query.extend(filters.iter().cloned());
        let v = self.get_json(&path, &query)?.ok_or(PlatformError::Status {
            path: path.clone(),
            status: 404,
        })?;
        let records = v
            .get("Records")
            .and_then(Value::as_array)
            .ok_or_else(|| PlatformError::Shape {
                path: path.clone(),
                detail: "no Records array".into(),
            })?
            .clone();
        let has_next = v
            .get("HasNextPage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(Page { records, has_next })
    }

    /// One record of `entity` by `Id`; `None` when the platform has none.
    pub fn get(&self, entity: &str, id: i64) -> Result<Option<Value>, PlatformError> {
        self.get_json(&format!("/api/spaces/{entity}/{id}"), &[])
    }
}
