//! What a login reads: a token with its owner and usage, served from the facts cache
//! while the database is unchanged, and device binding (atomic, across processes).

use super::sql::{Args, Db, DbError};
use super::tokens::{TOKEN_COLUMNS, TokenRow};
use super::{ReadPoint, Store, StoreError, ms};
use crate::model::{AccessToken, Mac, TokenOwner, TokenUsage};
use chrono::{DateTime, Utc};

/// Result of [`Store::bind_device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindOutcome {
    /// The device is now bound.
    Bound,
    /// It already was (a second login, or a racing request from the same device).
    AlreadyBound,
    /// The token already has `device_limit` devices; nothing was written.
    LimitReached,
}

impl Store {
    /// Everything a login decision needs: the token with this code in the client's
    /// business, its owner and its usage. `device` is excluded from the count of open
    /// sessions (a device re-logging in does not compete with itself).
    ///
    /// Served from memory while the database is unchanged ([`Store::data_version`],
    /// which moves with every commit of any other connection, process or server: an
    /// admin's `token revoke` is seen by the very next request). `point` is when the request
    /// arrived ([`Store::read_point`]): everything committed before it is seen.
    pub fn login_facts(
        &self,
        point: ReadPoint,
        business_id: i64,
        code: &str,
        device: Option<Mac>,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Option<(SharedToken, TokenOwner, TokenUsage)>, StoreError> {
        let version = self.data_version(point)?;
        let facts = match self.facts_cache.get(version, business_id, code) {
            Some(hit) => hit,
            None => {
                let sql = format!(
                    "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE business_id = $1 AND access_code = $2"
                );
                let read = self
                    .facts(&sql, &[&business_id, &code])?
                    .map(std::sync::Arc::new);
                self.facts_cache
                    .put(version, business_id, code, read.clone());
                read
            }
        };
        Ok(facts.map(|f| {
            let (owner, usage) = (f.1, f.2.at(device, now, stale_before));
            (SharedToken(f), owner, usage)
        }))
    }

    /// The same by token id, read from the database (the reaper's check of open
    /// sessions).
    pub fn token_facts(
        &self,
        token_id: i64,
        device: Option<Mac>,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Option<(AccessToken, TokenOwner, TokenUsage)>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE id = $1");
        Ok(self
            .facts(&sql, &[&token_id])?
            .map(|(t, o, u)| (t, o, u.at(device, now, stale_before))))
    }

    /// The token selected by `sql`, its owner and raw usage, in one read transaction.
    fn facts(&self, sql: &str, key: &Args<'_>) -> Result<Option<Facts>, StoreError> {
        self.read(|db| {
            let Some(row) = db.query_opt(sql, key)? else {
                return Ok(None);
            };
            let token = TokenRow::read(&row)?.into_token()?;
            let owner = owner_of(db, &token)?;
            let usage = raw_usage(db, token.id, Devices::AnyOrder)?;
            Ok(Some((token, owner, usage)))
        })
    }

    /// Who owns a token (standalone, a visitor, a customer), for `token explain`.
    pub fn token_owner(&self, token: &AccessToken) -> Result<TokenOwner, StoreError> {
        self.with_db(|db| Ok(owner_of(db, token)?))
    }

    /// The usage of one token, for `token show` and `token explain`.
    pub fn token_usage(
        &self,
        token_id: i64,
        device: Option<Mac>,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<TokenUsage, StoreError> {
        self.read(|db| Ok(usage(db, token_id, device, now, stale_before)?))
    }

    /// Forgets that `mac` is bound to the token (a phone that changed its MAC address
    /// frees its place). False when it was not bound.
    pub fn unbind_device(&self, token_id: i64, mac: Mac) -> Result<bool, StoreError> {
        // A write transaction: the write lock first, then the rows (a change
        // trigger asking for it after would deadlock with another server's writer).
        self.write(|db| {
            let n = db.execute(
                "DELETE FROM device_bindings WHERE token_id = $1 AND mac = $2",
                &[&token_id, &mac.to_string()],
            )?;
            Ok(n == 1)
        })
    }

    /// Binds `mac` to the token unless `device_limit` distinct devices are already
    /// bound. Count and insert happen in one write transaction, so of several devices
    /// racing for the last place exactly one wins, across threads, processes and
    /// servers alike. The server binds through its login writer
    /// ([`super::LoginWriter`]) with the same [`bind`] in a group commit; this one
    /// transaction is how the tests write as another process would.
    #[cfg(test)]
    pub fn bind_device(
        &self,
        token_id: i64,
        mac: Mac,
        device_limit: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<BindOutcome, StoreError> {
        self.write(|db| Ok(bind(db, token_id, mac, device_limit, now)?))
    }
}

/// Binds `mac` to the token unless `device_limit` devices are bound: inside a
/// transaction that holds the write lock, so the count is the truth.
pub(super) fn bind(
    db: &mut dyn Db,
    token_id: i64,
    mac: Mac,
    device_limit: Option<u32>,
    now: DateTime<Utc>,
) -> Result<BindOutcome, DbError> {
    let mac_text = mac.to_string();
    if db.exists(
        "SELECT 1 FROM device_bindings WHERE token_id = $1 AND mac = $2",
        &[&token_id, &mac_text],
    )? {
        return Ok(BindOutcome::AlreadyBound);
    }
    if let Some(limit) = device_limit {
        let bound: i64 = db
            .query_one(
                "SELECT count(*) FROM device_bindings WHERE token_id = $1",
                &[&token_id],
            )?
            .get(0)?;
        if bound >= i64::from(limit) {
            return Ok(BindOutcome::LimitReached);
        }
    }
    db.execute(
        "INSERT INTO device_bindings (token_id, mac, bound_at) VALUES ($1, $2, $3)",
        &[&token_id, &mac_text, &ms(now)],
    )?;
    Ok(BindOutcome::Bound)
}

/// The owner of a token, for the login rules.
pub(super) fn owner_of(db: &mut dyn Db, token: &AccessToken) -> Result<TokenOwner, DbError> {
    if let Some(customer_id) = token.customer_id {
        let active: Option<bool> = db
            .query_opt(
                "SELECT active FROM customers WHERE id = $1",
                &[&customer_id],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        // A customer row deleted by hand takes its token with it (ON DELETE CASCADE);
        // should one be missing anyway, the PIN does not log in.
        return Ok(TokenOwner::Customer {
            customer_id,
            active: active.unwrap_or(false),
        });
    }
    if let Some(guid) = &token.visitor_guid {
        let visitor: Option<(i64, Option<i64>)> = db
            .query_opt(
                "SELECT id, arrived_at FROM visitors WHERE guid = $1 AND business_id = $2",
                &[guid, &token.business_id],
            )?
            .map(|r| Ok::<_, DbError>((r.get(0)?, r.get(1)?)))
            .transpose()?;
        if let Some((visitor_id, arrived_at)) = visitor {
            let arrived_at = arrived_at.map(super::from_ms);
            return Ok(TokenOwner::Visitor {
                visitor_id,
                arrived_at,
            });
        }
    }
    Ok(TokenOwner::Standalone)
}

/// Usage at `now`. The live time of open sessions on other devices (from their last
/// update to `now`, rounded up) is counted too, so devices sharing a budget never get
/// more than the budget between them.
///
/// Open sessions not updated since `stale_before` are ignored: their NAS has gone
/// quiet, and the reaper is about to close them anyway.
fn usage(
    db: &mut dyn Db,
    token_id: i64,
    device: Option<Mac>,
    now: DateTime<Utc>,
    stale_before: DateTime<Utc>,
) -> Result<TokenUsage, DbError> {
    Ok(raw_usage(db, token_id, Devices::FirstBoundFirst)?.at(device, now, stale_before))
}

/// What the store holds about a token's use, independent of `now` and of the device
/// asking, so it can be cached until the database changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawUsage {
    bound_devices: std::sync::Arc<[Mac]>,
    used_seconds: u64,
    /// Open sessions: their device and last update (ms).
    open: Vec<(Option<Mac>, i64)>,
}

impl RawUsage {
    pub(super) fn is_bound(&self, mac: Mac) -> bool {
        self.bound_devices.contains(&mac)
    }

    /// The same with `mac` bound too.
    pub(super) fn with_device(&self, mac: Mac) -> RawUsage {
        let mut devices = self.bound_devices.to_vec();
        devices.push(mac);
        RawUsage {
            bound_devices: devices.into(),
            used_seconds: self.used_seconds,
            open: self.open.clone(),
        }
    }

    /// The usage as a login from `device` at `now` sees it.
    pub(super) fn at(
        &self,
        device: Option<Mac>,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> TokenUsage {
        let (now, stale_before) = (ms(now), ms(stale_before));
        let elsewhere = self.open.iter().filter(|(mac, updated)| {
            *updated >= stale_before && (mac.is_none() || device.is_none() || *mac != device)
        });
        let (count, live_ms) = elsewhere.fold((0u32, 0i64), |(n, live), (_, updated)| {
            (n + 1, live + (now - updated).max(0))
        });
        TokenUsage {
            bound_devices: self.bound_devices.clone(),
            used_seconds: self.used_seconds,
            open_sessions_elsewhere: count,
            live_seconds_elsewhere: u64::try_from(live_ms).unwrap_or(0).div_ceil(1000),
        }
    }
}

/// The order bound devices are listed in.
enum Devices {
    /// As people read them (`token show`): the first bound first.
    FirstBoundFirst,
    /// The index's order, without a sort: a login only asks "is it there, how many".
    AnyOrder,
}

fn raw_usage(db: &mut dyn Db, token_id: i64, order: Devices) -> Result<RawUsage, DbError> {
    let bound_devices = db
        .query(
            match order {
                Devices::FirstBoundFirst => {
                    "SELECT mac FROM device_bindings WHERE token_id = $1 ORDER BY bound_at, mac"
                }
                Devices::AnyOrder => "SELECT mac FROM device_bindings WHERE token_id = $1",
            },
            &[&token_id],
        )?
        .iter()
        .map(|r| r.get::<String>(0))
        .filter_map(|m| m.map(|m| m.parse::<Mac>().ok()).transpose())
        .collect::<Result<Vec<Mac>, DbError>>()?;
    let used_seconds: i64 = db
        .query_one(
            "SELECT CAST(COALESCE(SUM(session_time), 0) AS BIGINT) FROM sessions WHERE token_id = $1",
            &[&token_id],
        )?
        .get(0)?;
    let open = db
        .query(
            "SELECT mac, updated_at FROM sessions WHERE token_id = $1 AND stopped_at IS NULL",
            &[&token_id],
        )?
        .iter()
        .map(|r| {
            let mac: Option<String> = r.get(0)?;
            Ok((mac.and_then(|m| m.parse::<Mac>().ok()), r.get::<i64>(1)?))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    Ok(RawUsage {
        bound_devices: bound_devices.into(),
        used_seconds: u64::try_from(used_seconds).unwrap_or(0),
        open,
    })
}

/// A token with its owner and raw usage: what the facts cache keeps.
pub(super) type Facts = (AccessToken, TokenOwner, RawUsage);

/// A token as a login reads it: shared with the facts cache, not copied per request.
#[derive(Debug, Clone)]
pub struct SharedToken(std::sync::Arc<Facts>);

impl std::ops::Deref for SharedToken {
    type Target = AccessToken;

    fn deref(&self) -> &AccessToken {
        &self.0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{TestStore, new, now, on_each_backend};
    use std::sync::Arc;

    #[test]
    fn binding_respects_limit_under_a_race() {
        on_each_backend(binding_race);
    }

    fn binding_race(t: &TestStore) {
        let id = t.create_token(&new("55555"), now()).unwrap();
        let s = Arc::new(t.another());
        let handles: Vec<_> = (0..16u8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mac: Mac = format!("02:00:00:00:00:{i:02x}").parse().unwrap();
                    s.bind_device(id, mac, Some(3), now()).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == BindOutcome::Bound)
                .count(),
            3
        );
        assert_eq!(
            s.token_usage(id, None, now(), now())
                .unwrap()
                .bound_devices
                .len(),
            3
        );
        let first = s.token_usage(id, None, now(), now()).unwrap().bound_devices[0];
        assert_eq!(
            s.bind_device(id, first, Some(3), now()).unwrap(),
            BindOutcome::AlreadyBound
        );
    }

    #[test]
    fn cached_login_facts_see_every_commit_at_once() {
        on_each_backend(cached_facts_see_commits);
    }

    fn cached_facts_see_commits(server: &TestStore) {
        let admin = server.another(); // as the CLI (or another server) would
        let id = server.create_token(&new("12345"), now()).unwrap();
        let facts = |s: &Store| {
            s.login_facts(s.read_point(), 1, "12345", None, now(), now())
                .unwrap()
        };
        assert!(facts(server).unwrap().0.revoked_at.is_none());
        assert!(facts(server).is_some(), "served from the cache");
        // A commit on another connection (another process) is seen by the next read.
        admin.revoke_token(id, now()).unwrap();
        assert!(facts(server).unwrap().0.revoked_at.is_some());
        // Unknown codes are cached as unknown until a token with that code appears.
        assert!(
            server
                .login_facts(server.read_point(), 1, "99999", None, now(), now())
                .unwrap()
                .is_none()
        );
        admin.create_token(&new("99999"), now()).unwrap();
        assert!(
            server
                .login_facts(server.read_point(), 1, "99999", None, now(), now())
                .unwrap()
                .is_some()
        );
        // The server's own writes (other pooled connections) count too.
        let mac: Mac = "02:00:00:00:00:01".parse().unwrap();
        server.bind_device(id, mac, None, now()).unwrap();
        assert_eq!(*facts(server).unwrap().2.bound_devices, [mac]);
    }

    #[test]
    fn one_data_version_read_serves_the_requests_that_arrived_before_it() {
        on_each_backend(one_probe_per_point);
    }

    fn one_probe_per_point(server: &TestStore) {
        let admin = server.another();
        let id = server.create_token(&new("12345"), now()).unwrap();
        let revoked = |s: &Store, point| {
            s.login_facts(point, 1, "12345", None, now(), now())
                .unwrap()
                .unwrap()
                .0
                .revoked_at
                .is_some()
        };
        // Two requests received in one batch share its point.
        let batch = server.read_point();
        assert!(!revoked(server, batch));
        admin.revoke_token(id, now()).unwrap();
        // The second request of that batch arrived before the revoke committed: the
        // batch's one read serves it (no second read of data_version).
        assert!(!revoked(server, batch));
        // A request that arrives after the commit is answered from a newer read.
        assert!(revoked(server, server.read_point()));
    }

    #[test]
    fn a_write_changes_the_cached_facts_of_the_codes_it_touched_only() {
        on_each_backend(writes_drop_their_codes_only);
    }

    fn writes_drop_their_codes_only(server: &TestStore) {
        let admin = server.another(); // as the CLI would
        let a = server.create_token(&new("11111"), now()).unwrap();
        server.create_token(&new("22222"), now()).unwrap();
        let facts = |code: &str| {
            server
                .login_facts(server.read_point(), 1, code, None, now(), now())
                .unwrap()
                .unwrap()
        };
        let (_, _) = (facts("11111"), facts("22222"));
        let misses = server.facts_cache_misses();
        // Another process binds a device to 11111: both stay served from memory, and
        // 11111's entry has the device (the change names it: nothing to read again).
        let mac: Mac = "02:00:00:00:00:07".parse().unwrap();
        admin.bind_device(a, mac, None, now()).unwrap();
        assert!(facts("22222").2.bound_devices.is_empty());
        assert_eq!(*facts("11111").2.bound_devices, [mac]);
        assert_eq!(server.facts_cache_misses(), misses, "nothing read again");
        // An unbind drops the entry: read again, without the device.
        admin.unbind_device(a, mac).unwrap();
        assert!(facts("11111").2.bound_devices.is_empty());
        assert_eq!(server.facts_cache_misses(), misses + 1);
        // Each table a login reads drops it: a session (the ledger), a revoke, a
        // customer deactivated; an unknown code cached as unknown appears when created.
        assert!(
            server
                .login_facts(server.read_point(), 1, "33333", None, now(), now())
                .unwrap()
                .is_none()
        );
        admin.create_token(&new("33333"), now()).unwrap();
        assert!(facts("33333").0.revoked_at.is_none());
        admin.revoke_token(a, now()).unwrap();
        assert!(facts("11111").0.revoked_at.is_some());
        admin
            .with_db(|db| {
                Ok(db.execute(
                    "INSERT INTO sessions (token_id, client, acct_session_id, started_at, updated_at, session_time, stopped_at, nas) \
                     VALUES ($1, 'nas', 's1', 0, 0, 600, 0, 'nas')",
                    &[&a],
                )?)
            })
            .unwrap();
        assert_eq!(facts("11111").2.used_seconds, 600);
        let misses = server.facts_cache_misses();
        assert!(facts("22222").2.bound_devices.is_empty());
        assert_eq!(server.facts_cache_misses(), misses, "22222 never dropped");
    }
}
