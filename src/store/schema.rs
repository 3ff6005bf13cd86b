//! Schema migrations (`rusqlite_migration`, tracked in `PRAGMA user_version`). Append
//! new migrations; never edit one that has shipped.
//!
//! Times are INTEGER milliseconds since the Unix epoch, UTC: exact, sortable and
//! cheap to compare in SQL.

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

const V1: &str = r#"
CREATE TABLE access_tokens (
    id               INTEGER PRIMARY KEY,
    business_id      INTEGER NOT NULL CHECK (business_id > 0),
    access_code      TEXT    NOT NULL CHECK (length(access_code) BETWEEN 1 AND 128),
    minutes_included INTEGER NOT NULL CHECK (minutes_included > 0),
    description      TEXT,
    valid_from       INTEGER,
    valid_to         INTEGER,
    user_limit       INTEGER CHECK (user_limit IS NULL OR user_limit >= 1),
    device_limit     INTEGER CHECK (device_limit IS NULL OR device_limit >= 1),
    mac_address      TEXT,
    booking_guid     TEXT,
    visitor_guid     TEXT,
    created_at       INTEGER NOT NULL,
    revoked_at       INTEGER,
    UNIQUE (business_id, access_code)
) STRICT;

-- Devices (normalised MACs) that have used a token; limits count these rows.
CREATE TABLE device_bindings (
    token_id INTEGER NOT NULL REFERENCES access_tokens(id) ON DELETE CASCADE,
    mac      TEXT    NOT NULL,
    bound_at INTEGER NOT NULL,
    PRIMARY KEY (token_id, mac)
) STRICT, WITHOUT ROWID;

-- Sessions reported by accounting (RFC 2866); the ledger of used time.
CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY,
    token_id        INTEGER NOT NULL REFERENCES access_tokens(id) ON DELETE CASCADE,
    client          TEXT    NOT NULL,
    acct_session_id TEXT    NOT NULL,
    mac             TEXT,
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    session_time    INTEGER NOT NULL DEFAULT 0 CHECK (session_time >= 0),
    stopped_at      INTEGER,
    UNIQUE (client, acct_session_id, mac)
) STRICT;
CREATE INDEX sessions_by_token ON sessions (token_id, stopped_at);
"#;

/// Visitors and customers (issue 3). A visitor's token is linked by `visitor_guid`;
/// a customer's PIN logs in through an access token owned by the customer, so device
/// bindings, sessions and accounting treat all three alike.
const V2: &str = r#"
CREATE TABLE visitors (
    id               INTEGER PRIMARY KEY,
    guid             TEXT    NOT NULL UNIQUE,
    business_id      INTEGER NOT NULL CHECK (business_id > 0),
    name             TEXT    NOT NULL CHECK (length(name) >= 1),
    email            TEXT,
    expected_arrival INTEGER,
    arrived_at       INTEGER,
    pin              TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    UNIQUE (business_id, pin)
) STRICT;

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    business_id INTEGER NOT NULL CHECK (business_id > 0),
    name        TEXT    NOT NULL CHECK (length(name) >= 1),
    email       TEXT,
    pin         TEXT    NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at  INTEGER NOT NULL,
    UNIQUE (business_id, pin)
) STRICT;

ALTER TABLE access_tokens ADD COLUMN customer_id INTEGER REFERENCES customers(id) ON DELETE CASCADE;
CREATE UNIQUE INDEX access_tokens_by_customer ON access_tokens (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX access_tokens_by_visitor ON access_tokens (visitor_guid) WHERE visitor_guid IS NOT NULL;
"#;

/// Accounting (issue 4): what a Disconnect-Request needs later, and why a session was
/// closed. Open sessions are found through a partial index.
const V3: &str = r#"
ALTER TABLE sessions ADD COLUMN user_name TEXT;
ALTER TABLE sessions ADD COLUMN nas_ip TEXT;
ALTER TABLE sessions ADD COLUMN framed_ip TEXT;
ALTER TABLE sessions ADD COLUMN closed_by TEXT;
CREATE INDEX sessions_open_by_client ON sessions (client) WHERE stopped_at IS NULL;
CREATE INDEX sessions_open_by_update ON sessions (updated_at) WHERE stopped_at IS NULL;
"#;

/// Guessing lockouts (issue 5): one row per device that has been locked out, kept
/// after the lockout ends so repeated lockouts double. Survives restarts.
const V4: &str = r#"
CREATE TABLE lockouts (
    mac          TEXT    PRIMARY KEY,
    lockouts     INTEGER NOT NULL CHECK (lockouts >= 1),
    locked_until INTEGER NOT NULL,
    client       TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#;

/// Disconnects (issue 7): where accounting came from, and the queue of
/// Disconnect-Requests (see `disconnects.rs`). Rows copy what the request needs and
/// have no foreign key: they outlive the sessions of a deleted token.
const V5: &str = r#"
ALTER TABLE sessions ADD COLUMN nas_address TEXT;
CREATE TABLE disconnects (
    id              INTEGER PRIMARY KEY,
    session_id      INTEGER NOT NULL,
    client          TEXT    NOT NULL,
    nas_address     TEXT,
    nas_ip          TEXT,
    user_name       TEXT,
    acct_session_id TEXT    NOT NULL,
    framed_ip       TEXT,
    mac             TEXT,
    reason          TEXT    NOT NULL,
    requested_at    INTEGER NOT NULL,
    finished_at     INTEGER,
    result          TEXT
) STRICT;
CREATE UNIQUE INDEX disconnects_pending ON disconnects (session_id) WHERE finished_at IS NULL;
"#;

/// Failure budgets (issue 12): locks of devices, accounts (email + PIN), NASes and
/// the whole server in one table keyed by scope and subject (the device lockouts of
/// V4 carried over); emails looked up case-insensitively for email + PIN logins.
const V6: &str = r#"
CREATE TABLE guard_locks (
    scope        TEXT    NOT NULL CHECK (scope IN ('device', 'account', 'client', 'server')),
    subject      TEXT    NOT NULL,
    lockouts     INTEGER NOT NULL CHECK (lockouts >= 1),
    locked_until INTEGER NOT NULL,
    client       TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (scope, subject)
) STRICT, WITHOUT ROWID;
INSERT INTO guard_locks (scope, subject, lockouts, locked_until, client, updated_at)
    SELECT 'device', mac, lockouts, locked_until, client, updated_at FROM lockouts;
DROP TABLE lockouts;
CREATE INDEX visitors_by_email ON visitors (business_id, email COLLATE NOCASE) WHERE email IS NOT NULL;
CREATE INDEX customers_by_email ON customers (business_id, email COLLATE NOCASE) WHERE email IS NOT NULL;
"#;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up(V6),
    ])
}

pub fn migrate(conn: &mut Connection) -> Result<(), rusqlite_migration::Error> {
    migrations().to_latest(conn)
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::migrate(&mut conn).unwrap();
        assert!(
            rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(super::V1)])
                .validate()
                .is_ok()
        );
    }
}
