//! Prometheus metrics (`GET /metrics` on the `[http]` listener). The server counts
//! into these as packets pass; the HTTP side encodes them. Counters are atomics, so
//! the auth threads count without a lock of their own.

use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The RADIUS code name: Access-Request, Accounting-Request, Status-Server.
    pub code: &'static str,
    /// The configured client's name.
    pub client: Arc<str>,
    /// How it came: udp, or radsec (TLS, RFC 6614).
    pub transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabel {
    pub client: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `RejectReason::label()`: unknown_code, expired, device_limit, ...
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabel {
    /// What a failure budget applies to: device, account, client, server.
    pub scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    /// unknown_client, malformed, bad_message_authenticator, overload, ...
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabel {
    /// "auth" or "acct".
    pub port: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// ack, nak, timeout, no_address, error.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// The database file: ok, missing, replaced, read_only, full.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub route: &'static str,
    pub status: u16,
}

/// One client's request and accept counters (see `Metrics::client_counters`).
#[derive(Debug, Clone, Default)]
pub struct ClientCounters {
    pub access_requests: Counter,
    pub accounting_requests: Counter,
    pub status_server: Counter,
    pub accepts: Counter,
}

/// Request latency buckets, seconds: 50 us to 1 s.
const LATENCY_BUCKETS: [f64; 13] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Every metric pinradius exports.
pub struct Metrics {
    registry: Registry,
    /// Authentic requests taken for processing, by code and client.
    pub requests: Family<RequestLabels, Counter>,
    pub accepts: Family<ClientLabel, Counter>,
    pub rejects: Family<ReasonLabel, Counter>,
    /// Datagrams dropped unanswered, by cause.
    pub drops: Family<CauseLabel, Counter>,
    /// Devices locked out for guessing.
    pub lockouts: Counter,
    /// Locks (device lockouts, account locks, NAS and server pauses) started, by scope.
    pub guard_locks: Family<ScopeLabel, Counter>,
    /// Subjects locked now, by scope (refreshed by the guard's sweep).
    pub guard_locked: Family<ScopeLabel, Gauge>,
    /// Logins refused by a lock or a spent budget without being decided, by scope.
    pub guard_refusals: Family<ScopeLabel, Counter>,
    /// Accounting records kept as unmatched, by reason.
    pub unmatched: Family<ReasonLabel, Counter>,
    /// Pulls from the platform, by result (ok, error).
    pub platform_pulls: Family<ResultLabel, Counter>,
    /// Platform records by what applying them did (created, updated, unchanged,
    /// clash, invalid, removed).
    pub platform_records: Family<ResultLabel, Counter>,
    /// When the last pull from the platform succeeded (Unix seconds).
    pub platform_last_success: Gauge,
    /// Seconds since then, as of the scrape (-1 before the first success).
    pub platform_seconds_since_success: Gauge,
    /// Webhooks received, by result (queued, bad_signature, queue_full, disabled).
    pub webhooks: Family<ResultLabel, Counter>,
    /// Retransmits answered from the cache (RFC 5080), by port.
    pub retransmits: Family<PortLabel, Counter>,
    /// From a datagram's arrival to its answer, by port.
    pub latency: Family<PortLabel, Histogram>,
    /// `latency` of each port, resolved once (the auth threads observe every request).
    pub auth_latency: Histogram,
    pub acct_latency: Histogram,
    /// Sessions open in the ledger; refreshed when scraped.
    pub open_sessions: Gauge,
    /// From handing an accounting record to the ledger writer to its durable commit.
    pub acct_commit: Histogram,
    /// Disconnect-Requests finished, by result.
    pub disconnects: Family<ResultLabel, Counter>,
    /// HTTP API requests, by route and status.
    pub api_requests: Family<ApiLabels, Counter>,
    /// 1 for the database file's state now, 0 for the others.
    pub store_state: Family<StateLabel, Gauge>,
    /// Writes (accounting records, logins' writes) not acknowledged because the
    /// database could not be written.
    pub store_refused_writes: Counter,
    /// Login-fact lookups the cache could not answer.
    pub facts_cache_misses: Counter,
    /// RadSec connections by what became of them (accepted, limit, handshake_failed,
    /// unknown_client).
    pub radsec_connections: Family<ResultLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pinradius");
        let requests = Family::<RequestLabels, Counter>::default();
        let accepts = Family::<ClientLabel, Counter>::default();
        let rejects = Family::<ReasonLabel, Counter>::default();
        let drops = Family::<CauseLabel, Counter>::default();
        let lockouts = Counter::default();
        let guard_locks = Family::<ScopeLabel, Counter>::default();
        let guard_locked = Family::<ScopeLabel, Gauge>::default();
        let guard_refusals = Family::<ScopeLabel, Counter>::default();
        let unmatched = Family::<ReasonLabel, Counter>::default();
        let platform_pulls = Family::<ResultLabel, Counter>::default();
        let platform_records = Family::<ResultLabel, Counter>::default();
        let platform_last_success = Gauge::default();
        let platform_seconds_since_success = Gauge::default();
        let webhooks = Family::<ResultLabel, Counter>::default();
        let retransmits = Family::<PortLabel, Counter>::default();
        let latency = Family::<PortLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        let open_sessions = Gauge::default();
        let acct_commit = Histogram::new(LATENCY_BUCKETS);
        let disconnects = Family::<ResultLabel, Counter>::default();
        let api_requests = Family::<ApiLabels, Counter>::default();
        let store_state = Family::<StateLabel, Gauge>::default();
        let store_refused_writes = Counter::default();
        let facts_cache_misses = Counter::default();
        let radsec_connections = Family::<ResultLabel, Counter>::default();
        registry.register(
            "radsec_connections",
            "RadSec (TLS) connections, by result: accepted, limit, handshake_failed, unknown_client",
            radsec_connections.clone(),
        );
        registry.register(
            "store_state",
            "1 for the database file's state now (ok, missing, replaced, read_only, full)",
            store_state.clone(),
        );
        registry.register(
            "store_refused_writes",
            "Writes not acknowledged because the database could not be written",
            store_refused_writes.clone(),
        );
        registry.register(
            "facts_cache_misses",
            "Login-fact lookups read from the database rather than the cache",
            facts_cache_misses.clone(),
        );
        registry.register(
            "requests",
            "RADIUS requests processed, by code and client",
            requests.clone(),
        );
        registry.register("accepts", "Access-Accepts sent, by client", accepts.clone());
        registry.register("rejects", "Access-Rejects sent, by reason", rejects.clone());
        registry.register(
            "drops",
            "Datagrams dropped without an answer, by cause",
            drops.clone(),
        );
        registry.register(
            "lockouts",
            "Devices locked out after repeated failed logins",
            lockouts.clone(),
        );
        registry.register(
            "guard_locks",
            "Locks started by the failure budgets against guessing, by scope (device, account, client, server)",
            guard_locks.clone(),
        );
        registry.register(
            "guard_locked",
            "Subjects locked by the failure budgets now, by scope",
            guard_locked.clone(),
        );
        registry.register(
            "guard_refusals",
            "Logins refused by a lock or a spent failure budget without being decided, by scope",
            guard_refusals.clone(),
        );
        registry.register(
            "accounting_unmatched",
            "Accounting records acknowledged and kept as unmatched (no session or token to charge), by reason",
            unmatched.clone(),
        );
        registry.register(
            "platform_pulls",
            "Pulls from the coworking platform, by result",
            platform_pulls.clone(),
        );
        registry.register(
            "platform_records",
            "Platform records applied, by what applying them did",
            platform_records.clone(),
        );
        registry.register(
            "platform_last_success_timestamp_seconds",
            "When the last pull from the platform succeeded (seconds since the Unix epoch; 0: none yet)",
            platform_last_success.clone(),
        );
        registry.register(
            "platform_seconds_since_success",
            "Seconds since the last successful pull from the platform, as of this scrape (-1: none yet)",
            platform_seconds_since_success.clone(),
        );
        registry.register(
            "webhooks",
            "Platform webhooks received, by result",
            webhooks.clone(),
        );
        registry.register(
            "retransmits",
            "Retransmitted requests answered from the cache (RFC 5080), by port",
            retransmits.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer, by port",
            latency.clone(),
        );
        registry.register(
            "open_sessions",
            "Sessions open in the accounting ledger",
            open_sessions.clone(),
        );
        registry.register(
            "accounting_commit_seconds",
            "Time for an accounting record to be durable on disk",
            acct_commit.clone(),
        );
        registry.register(
            "disconnects",
            "Disconnect-Requests (RFC 5176) finished, by result",
            disconnects.clone(),
        );
        registry.register(
            "api_requests",
            "HTTP API requests, by route and status",
            api_requests.clone(),
        );
        let auth_latency = latency.get_or_create(&PortLabel { port: "auth" }).clone();
        let acct_latency = latency.get_or_create(&PortLabel { port: "acct" }).clone();
        Self {
            registry,
            auth_latency,
            acct_latency,
            requests,
            accepts,
            rejects,
            drops,
            lockouts,
            guard_locks,
            guard_locked,
            guard_refusals,
            unmatched,
            platform_pulls,
            platform_records,
            platform_last_success,
            platform_seconds_since_success,
            webhooks,
            retransmits,
            latency,
            open_sessions,
            acct_commit,
            disconnects,
            api_requests,
            store_state,
            store_refused_writes,
            facts_cache_misses,
            radsec_connections,
        }
    }

    /// A RadSec connection came to `result`.
    pub fn radsec_connection(&self, result: &'static str) {
        self.radsec_connections
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// The database file is in `state` now.
    pub fn store_state(&self, state: crate::store::health::FileState) {
        for s in crate::store::health::FileState::ALL {
            self.store_state
                .get_or_create(&StateLabel { state: s.label() })
                .set(i64::from(s == state));
        }
    }

    /// A lock started by the failure budgets.
    pub fn guard_lock_started(&self, scope: crate::model::LockScope) {
        if scope == crate::model::LockScope::Device {
            self.lockouts.inc();
        }
        self.guard_locks
            .get_or_create(&ScopeLabel {
                scope: scope.as_str(),
            })
            .inc();
    }

    /// `n` subjects of `scope` are locked now.
    pub fn guard_locked(&self, scope: crate::model::LockScope, n: i64) {
        self.guard_locked
            .get_or_create(&ScopeLabel {
                scope: scope.as_str(),
            })
            .set(n);
    }

    /// A pull from the platform finished at `now`.
    pub fn platform_pull(&self, ok: bool, now: chrono::DateTime<chrono::Utc>) {
        let result = if ok { "ok" } else { "error" };
        self.platform_pulls
            .get_or_create(&ResultLabel { result })
            .inc();
        if ok {
            self.platform_last_success.set(now.timestamp());
        }
    }

    /// Sets `platform_seconds_since_success` as of `now` (at each scrape).
    pub fn platform_staleness(&self, now: chrono::DateTime<chrono::Utc>) {
        let last = self.platform_last_success.get();
        self.platform_seconds_since_success.set(if last > 0 {
            (now.timestamp() - last).max(0)
        } else {
            -1
        });
    }

    /// `n` platform records whose applying did `outcome`.
    pub fn platform_records(&self, outcome: &'static str, n: usize) {
        if n > 0 {
            self.platform_records
                .get_or_create(&ResultLabel { result: outcome })
                .inc_by(n as u64);
        }
    }

    /// A webhook received.
    pub fn webhook(&self, result: &'static str) {
        self.webhooks.get_or_create(&ResultLabel { result }).inc();
    }

    /// An accounting record kept as unmatched.
    pub fn unmatched(&self, reason: &'static str) {
        self.unmatched.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A login refused by a lock or spent budget of `scope`.
    pub fn guard_refused(&self, scope: crate::model::LockScope) {
        self.guard_refusals
            .get_or_create(&ScopeLabel {
                scope: scope.as_str(),
            })
            .inc();
    }

    /// The counters of one client, resolved once per config load so the request path
    /// counts without looking a label set up (a counter handle shares its family's
    /// value).
    pub fn client_counters(&self, client: &Arc<str>, transport: &'static str) -> ClientCounters {
        let request = |code| {
            self.requests
                .get_or_create(&RequestLabels {
                    code,
                    client: client.clone(),
                    transport,
                })
                .clone()
        };
        ClientCounters {
            access_requests: request("Access-Request"),
            accounting_requests: request("Accounting-Request"),
            status_server: request("Status-Server"),
            accepts: self
                .accepts
                .get_or_create(&ClientLabel {
                    client: client.clone(),
                })
                .clone(),
        }
    }

    pub fn dropped(&self, cause: &'static str) {
        self.drops.get_or_create(&CauseLabel { cause }).inc();
    }

    pub fn retransmit(&self, port: &'static str) {
        self.retransmits.get_or_create(&PortLabel { port }).inc();
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_text_format() {
        let m = Metrics::new();
        let lobby = m.client_counters(&"lobby".into(), "udp");
        lobby.access_requests.inc();
        m.client_counters(&"lobby".into(), "udp")
            .access_requests
            .inc();
        m.rejects
            .get_or_create(&ReasonLabel { reason: "expired" })
            .inc();
        m.dropped("unknown_client");
        m.auth_latency.observe(0.000_2);
        let text = m.encode();
        assert!(
            text.contains("pinradius_requests_total{code=\"Access-Request\",client=\"lobby\",transport=\"udp\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("pinradius_rejects_total{reason=\"expired\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pinradius_drops_total{cause=\"unknown_client\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pinradius_request_duration_seconds_count{port=\"auth\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pinradius_accepts_total{client=\"lobby\"} 0"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
