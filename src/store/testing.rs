//! What the store's unit tests share: a fixed time, a token, a fresh database.

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

/// A new database in a temporary folder (kept while the folder lives).
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("t.db")).unwrap();
    (dir, s)
}
