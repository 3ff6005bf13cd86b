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

/// The ledger keyed by NAS (issue 13). Sessions are identified by the NAS that
/// reports them (`nas`: its address, NAS-IP-Address and NAS-Identifier) and its
/// Acct-Session-Id, no longer by the client's configured name nor the MAC, and a
/// session id may be used again after its Stop. Token and session ids are never
/// reused (AUTOINCREMENT), and a token is named in Class by `uid`, a random value no
/// other token will have. Records that cannot be tied to a session or a token are kept
/// in `unmatched_accounting`. Both tables are rebuilt (SQLite cannot drop a UNIQUE
/// constraint nor add AUTOINCREMENT in place); `migrate` turns foreign keys off
/// around it, as SQLite's procedure for schema changes asks, and checks them after.
const V7: &str = r#"
CREATE TABLE access_tokens_v7 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
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
    customer_id      INTEGER REFERENCES customers(id) ON DELETE CASCADE,
    uid              TEXT    NOT NULL UNIQUE,
    UNIQUE (business_id, access_code)
) STRICT;
INSERT INTO access_tokens_v7 (id, business_id, access_code, minutes_included, description, valid_from, valid_to,
    user_limit, device_limit, mac_address, booking_guid, visitor_guid, created_at, revoked_at, customer_id, uid)
    SELECT id, business_id, access_code, minutes_included, description, valid_from, valid_to,
    user_limit, device_limit, mac_address, booking_guid, visitor_guid, created_at, revoked_at, customer_id,
    lower(hex(randomblob(16))) FROM access_tokens;
DROP TABLE access_tokens;
ALTER TABLE access_tokens_v7 RENAME TO access_tokens;
CREATE UNIQUE INDEX access_tokens_by_customer ON access_tokens (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX access_tokens_by_visitor ON access_tokens (visitor_guid) WHERE visitor_guid IS NOT NULL;

CREATE TABLE sessions_v7 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id        INTEGER NOT NULL REFERENCES access_tokens(id) ON DELETE CASCADE,
    client          TEXT    NOT NULL,
    nas             TEXT    NOT NULL,
    acct_session_id TEXT    NOT NULL,
    mac             TEXT,
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    session_time    INTEGER NOT NULL DEFAULT 0 CHECK (session_time >= 0),
    stopped_at      INTEGER,
    user_name       TEXT,
    nas_ip          TEXT,
    framed_ip       TEXT,
    closed_by       TEXT,
    nas_address     TEXT
) STRICT;
INSERT INTO sessions_v7 (id, token_id, client, nas, acct_session_id, mac, started_at, updated_at, session_time,
    stopped_at, user_name, nas_ip, framed_ip, closed_by, nas_address)
    SELECT id, token_id, client, COALESCE(nas_address, client) || COALESCE(' nas-ip=' || nas_ip, ''),
    acct_session_id, mac, started_at, updated_at, session_time, stopped_at, user_name, nas_ip, framed_ip,
    closed_by, nas_address FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v7 RENAME TO sessions;
CREATE INDEX sessions_by_token ON sessions (token_id, stopped_at);
CREATE INDEX sessions_by_key ON sessions (nas, acct_session_id, id);
CREATE INDEX sessions_open_by_nas ON sessions (nas) WHERE stopped_at IS NULL;
CREATE INDEX sessions_open_by_update ON sessions (updated_at) WHERE stopped_at IS NULL;

CREATE TABLE unmatched_accounting (
    id              INTEGER PRIMARY KEY,
    received_at     INTEGER NOT NULL,
    client          TEXT    NOT NULL,
    nas             TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    acct_session_id TEXT,
    user_name       TEXT,
    class           TEXT,
    mac             TEXT,
    session_time    INTEGER,
    reason          TEXT    NOT NULL
) STRICT;
"#;

/// The platform (issue 14): which local record each platform record became
/// (`platform_links`: one code, one owner still holds; a platform record is changed
/// by the platform), and where each entity's pull stands (`platform_sync`).
const V8: &str = r#"
CREATE TABLE platform_links (
    entity      TEXT    NOT NULL CHECK (entity IN ('accesstokens', 'coworkers', 'visitors')),
    platform_id INTEGER NOT NULL,
    business_id INTEGER NOT NULL,
    -- The local record: a customer's id or a visitor's guid (NULL for a token).
    local_id    TEXT,
    token_id    INTEGER REFERENCES access_tokens(id) ON DELETE SET NULL,
    updated_on  INTEGER NOT NULL,
    linked_at   INTEGER NOT NULL,
    PRIMARY KEY (entity, platform_id)
) STRICT;
CREATE UNIQUE INDEX platform_links_by_token ON platform_links (token_id) WHERE token_id IS NOT NULL;

CREATE TABLE platform_sync (
    entity        TEXT    PRIMARY KEY,
    cursor        INTEGER,
    last_success  INTEGER,
    last_full     INTEGER,
    last_error    TEXT,
    last_error_at INTEGER,
    applied       INTEGER NOT NULL DEFAULT 0,
    clashes       INTEGER NOT NULL DEFAULT 0,
    removed       INTEGER NOT NULL DEFAULT 0
) STRICT;
"#;

/// Which codes' login facts each commit changed (`fact_changes`), written by triggers
/// so every writer is covered, the sqlite3 shell included: the server's facts cache
/// drops the entries of just those codes instead of everything, and adds a newly
/// bound device to its code's entry instead of dropping it (`cache.rs`). The writers
/// prune old rows; a cache that fell behind the pruned rows starts over.
const V9: &str = r#"
CREATE TABLE fact_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    business_id INTEGER NOT NULL,
    code        TEXT    NOT NULL,
    -- A device bound to the code (and nothing else changed); NULL: anything may have.
    bound_mac   TEXT
) STRICT;

CREATE TRIGGER fact_changes_token_insert AFTER INSERT ON access_tokens BEGIN
    INSERT INTO fact_changes (business_id, code) VALUES (NEW.business_id, NEW.access_code);
END;
CREATE TRIGGER fact_changes_token_update AFTER UPDATE ON access_tokens BEGIN
    INSERT INTO fact_changes (business_id, code) VALUES (OLD.business_id, OLD.access_code);
    INSERT INTO fact_changes (business_id, code) SELECT NEW.business_id, NEW.access_code
        WHERE NEW.business_id IS NOT OLD.business_id OR NEW.access_code IS NOT OLD.access_code;
END;
CREATE TRIGGER fact_changes_token_delete AFTER DELETE ON access_tokens BEGIN
    INSERT INTO fact_changes (business_id, code) VALUES (OLD.business_id, OLD.access_code);
END;

CREATE TRIGGER fact_changes_binding_insert AFTER INSERT ON device_bindings BEGIN
    INSERT INTO fact_changes (business_id, code, bound_mac)
        SELECT business_id, access_code, NEW.mac FROM access_tokens WHERE id = NEW.token_id;
END;
CREATE TRIGGER fact_changes_binding_update AFTER UPDATE ON device_bindings BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens WHERE id IN (OLD.token_id, NEW.token_id);
END;
CREATE TRIGGER fact_changes_binding_delete AFTER DELETE ON device_bindings BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens WHERE id = OLD.token_id;
END;

CREATE TRIGGER fact_changes_session_insert AFTER INSERT ON sessions BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens WHERE id = NEW.token_id;
END;
CREATE TRIGGER fact_changes_session_update AFTER UPDATE ON sessions BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens WHERE id IN (OLD.token_id, NEW.token_id);
END;
CREATE TRIGGER fact_changes_session_delete AFTER DELETE ON sessions BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens WHERE id = OLD.token_id;
END;

CREATE TRIGGER fact_changes_visitor_update AFTER UPDATE ON visitors BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens
        WHERE visitor_guid = OLD.guid AND business_id = OLD.business_id;
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens
        WHERE visitor_guid = NEW.guid AND business_id = NEW.business_id
          AND (NEW.guid IS NOT OLD.guid OR NEW.business_id IS NOT OLD.business_id);
END;
CREATE TRIGGER fact_changes_visitor_insert AFTER INSERT ON visitors BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens
        WHERE visitor_guid = NEW.guid AND business_id = NEW.business_id;
END;
CREATE TRIGGER fact_changes_visitor_delete AFTER DELETE ON visitors BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens
        WHERE visitor_guid = OLD.guid AND business_id = OLD.business_id;
END;

CREATE TRIGGER fact_changes_customer_insert AFTER INSERT ON customers BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens WHERE customer_id = NEW.id;
END;
CREATE TRIGGER fact_changes_customer_update AFTER UPDATE ON customers BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens WHERE customer_id IN (OLD.id, NEW.id);
END;
CREATE TRIGGER fact_changes_customer_delete AFTER DELETE ON customers BEGIN
    INSERT INTO fact_changes (business_id, code)
        SELECT business_id, access_code FROM access_tokens WHERE customer_id = OLD.id;
END;
"#;

/// Emails are matched with `lower()` on both backends (PostgreSQL has no NOCASE
/// collation), so the email lookups get indexes on `lower(email)`.
const V10: &str = r#"
DROP INDEX visitors_by_email;
DROP INDEX customers_by_email;
CREATE INDEX visitors_by_email ON visitors (business_id, lower(email)) WHERE email IS NOT NULL;
CREATE INDEX customers_by_email ON customers (business_id, lower(email)) WHERE email IS NOT NULL;
"#;

/// Several servers on one database (issue 16): guessing failures each server shares
/// with the others (`guard_failures`, read by every other server before it admits an
/// attempt), and which server is sending a queued Disconnect-Request, until when
/// (`claimed_by`, `claimed_until`: one sends it; another takes it over only if the
/// first died), and simultaneous-use holds (`login_holds`). A single SQLite server
/// uses the claims only.
const V11: &str = r#"
CREATE TABLE guard_failures (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    scope        TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    -- The lock this failure started on its server, if it started one.
    lockouts     INTEGER,
    locked_until INTEGER,
    server       TEXT    NOT NULL
) STRICT;
ALTER TABLE disconnects ADD COLUMN claimed_by TEXT;
ALTER TABLE disconnects ADD COLUMN claimed_until INTEGER;
-- Simultaneous-use places held by accepts whose accounting has not started, when
-- servers share the database (one server keeps them in memory): `holder` is the
-- device, or a value of its own for a login without one.
CREATE TABLE login_holds (
    token_id INTEGER NOT NULL REFERENCES access_tokens(id) ON DELETE CASCADE,
    holder   TEXT    NOT NULL,
    until    INTEGER NOT NULL,
    PRIMARY KEY (token_id, holder)
) STRICT, WITHOUT ROWID;
"#;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up(V6),
        M::up(V7),
        M::up(V8),
        M::up(V9),
        M::up(V10),
        M::up(V11),
    ])
}

/// Migrates to the latest schema. Foreign keys are off while migrations run (a table
/// rebuild must not cascade its DROP into the tables that reference it) and checked
/// once they are done.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    conn.pragma_update(None, "foreign_keys", false)
        .map_err(|e| e.to_string())?;
    let migrated = migrations().to_latest(conn).map_err(|e| e.to_string());
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| e.to_string())?;
    migrated?;
    let broken: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .map_err(|e| e.to_string())?;
    if broken > 0 {
        return Err(format!(
            "{broken} row(s) violate a foreign key after migrating"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::migrate(&mut conn).unwrap();
        super::migrate(&mut conn).unwrap();
        assert!(
            rusqlite_migration::Migrations::new(vec![rusqlite_migration::M::up(super::V1)])
                .validate()
                .is_ok()
        );
    }
}

#[cfg(test)]
mod upgrade_tests {
    use rusqlite::Connection;
    use rusqlite_migration::{M, Migrations};

    /// A database at V6 with a token, a binding and a session keeps them through V7:
    /// the rebuild of `access_tokens` cascades nothing, ids are kept, uids are given.
    #[test]
    fn v7_keeps_tokens_bindings_and_sessions() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        Migrations::new(vec![
            M::up(super::V1),
            M::up(super::V2),
            M::up(super::V3),
            M::up(super::V4),
            M::up(super::V5),
            M::up(super::V6),
        ])
        .to_latest(&mut conn)
        .unwrap();
        conn.execute_batch(
            "INSERT INTO access_tokens (id, business_id, access_code, minutes_included, created_at) VALUES (7, 1, '12345', 60, 0);
             INSERT INTO device_bindings VALUES (7, 'AA:BB:CC:DD:EE:FF', 0);
             INSERT INTO sessions (token_id, client, acct_session_id, mac, started_at, updated_at, session_time, nas_address)
                 VALUES (7, 'nas', 's1', NULL, 0, 0, 120, '10.0.0.1');",
        )
        .unwrap();
        super::migrate(&mut conn).unwrap();
        let (id, uid): (i64, String) = conn
            .query_row("SELECT id, uid FROM access_tokens", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((id, uid.len()), (7, 32));
        let kept: (i64, i64, String) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM device_bindings), (SELECT session_time FROM sessions), (SELECT nas FROM sessions)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(kept, (1, 120, "10.0.0.1".to_string()));
        // Deleting the highest token does not give its id to the next one.
        conn.execute("DELETE FROM access_tokens WHERE id = 7", [])
            .unwrap();
        conn.execute(
            "INSERT INTO access_tokens (business_id, access_code, minutes_included, created_at, uid) VALUES (1, '1', 1, 0, 'u')",
            [],
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 8);
    }
}
