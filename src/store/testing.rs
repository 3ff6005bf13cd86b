//! What the store's unit tests share: a fixed time, a token, a fresh database of
//! each backend.
//!
//! PostgreSQL is the server named by `PINRADIUS_TEST_POSTGRES` (a URL; `.ci/run`
//! starts a throwaway cluster and sets it); each test store is a schema of its own,
//! dropped afterwards (`tests/common/pg.rs`, shared with the integration tests).
//! Without the variable the PostgreSQL half is skipped, except under `CI=true`, where
//! that is a failure.

use super::Store;
use crate::model::NewAccessToken;
use chrono::{DateTime, TimeZone, Utc};

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

/// A 60-minute token of business 1 with `code`.
pub fn new(code: &str) -> NewAccessToken {
    NewAccessToken {
        business_id: 1,
        access_code: code.into(),
        minutes_included: 60,
        ..Default::default()
    }
}

/// The PostgreSQL test server's schemas, shared with the integration tests.
#[path = "../../tests/common/pg.rs"]
mod pg;

/// A fresh store of one backend; a PostgreSQL schema is dropped with it.
pub struct TestStore {
    pub store: Store,
    place: Place,
}

enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(pg::Schema),
}

impl std::ops::Deref for TestStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl TestStore {
    /// Another handle on the same database, as another process or server opens it.
    pub fn another(&self) -> Store {
        match &self.place {
            Place::Sqlite(dir) => Store::open(&dir.path().join("t.db")).unwrap(),
            Place::Postgres(schema) => open_schema(schema),
        }
    }

    /// Which backend, for assertion messages.
    pub fn backend(&self) -> &'static str {
        match self.place {
            Place::Sqlite(_) => "sqlite",
            Place::Postgres(_) => "postgres",
        }
    }
}

/// A fresh store on each backend available (SQLite always; PostgreSQL when
/// `PINRADIUS_TEST_POSTGRES` names a server, and always under `CI=true`).
pub fn backends() -> Vec<TestStore> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![TestStore {
        store: Store::open(&dir.path().join("t.db")).unwrap(),
        place: Place::Sqlite(dir),
    }];
    if let Some(schema) = pg::Schema::new() {
        out.push(TestStore {
            store: open_schema(&schema),
            place: Place::Postgres(schema),
        });
    }
    out
}

/// Runs `test` on a fresh store of each backend.
pub fn on_each_backend(test: impl Fn(&TestStore)) {
    for s in backends() {
        eprintln!("store test on {}", s.backend());
        test(&s);
    }
}

/// Records a session of `token_id` (open, no time yet) as a NAS's Start would.
pub fn open_session(store: &Store, token_id: i64, acct_session_id: &str) {
    store
        .execute_sql(
            "INSERT INTO sessions (token_id, client, nas, acct_session_id, started_at, updated_at) \
             VALUES ($1, 'ap', 'nas', $2, 0, 0)",
            &[&token_id, &acct_session_id],
        )
        .unwrap();
}

fn open_schema(schema: &pg::Schema) -> Store {
    Store::open_database(&crate::model::Database::Postgres {
        url: schema.url.clone(),
        password_file: None,
    })
    .unwrap()
}
