//! A PostgreSQL schema of its own for a test, in the server `PINRADIUS_TEST_POSTGRES`
//! names (`.ci/run` starts a throwaway cluster and sets it), dropped afterwards.
//! Without the variable the PostgreSQL tests cannot run: under `CI=true` that is a
//! failure; elsewhere the caller is told (`None`) and says what it skipped.

use std::sync::atomic::{AtomicU64, Ordering};

/// The test server's URL, if there is one.
pub fn server_url() -> Option<String> {
    match std::env::var("PINRADIUS_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but PINRADIUS_TEST_POSTGRES is not set: .ci/run starts PostgreSQL and sets it"
            );
            None
        }
    }
}

pub struct Schema {
    /// The server's URL with this schema as the search path: what a pinradius config's
    /// `[server] database` takes.
    pub url: String,
    server: String,
    name: String,
}

impl Schema {
    /// A new empty schema, or `None` when no test server is set.
    pub fn new() -> Option<Schema> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let server = server_url()?;
        let name = format!(
            "e2e_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(
            &server,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
        )
        .expect("create a schema on the PostgreSQL test server");
        let sep = if server.contains('?') { '&' } else { '?' };
        Some(Schema {
            url: format!("{server}{sep}options=-c%20search_path%3D{name}"),
            server,
            name,
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = run(
            &self.server,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// Runs `sql` on the test server, on a thread of its own (the synchronous client may
/// not run on a Tokio thread).
pub fn run(server: &str, sql: &str) -> Result<(), String> {
    let (server, sql) = (server.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let mut client = server
            .parse::<postgres::Config>()
            .map_err(|e| e.to_string())?
            .connect(postgres::NoTls)
            .map_err(|e| e.to_string())?;
        client.batch_execute(&sql).map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "panicked".to_string())?
}
