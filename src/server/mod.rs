//! The network side: the only module that touches sockets. One receive loop per
//! listener validates, identifies the client, checks the Message-Authenticator and the
//! retransmit cache inline (cheap, no I/O), then hands the request to a blocking
//! worker for the store and the policy. Anything wrong is dropped and logged at a
//! bounded rate; the loop itself never stops on an error.

mod acct;
mod answer;
mod auth;
mod cache;
mod clients;
pub mod datagrams;
mod disconnect;
mod filewatch;
mod grant;
mod guard;
mod holds;
mod radsec;
mod ratelog;
mod reaper;

pub use acct::{record_of, token_from_class};
pub use answer::class_for_token;
pub use auth::{Arrived, AuthAnswer, Processed, process_auth_datagram, process_auth_packet};
pub use cache::{RequestKey, RetransmitCache, Seen};
pub use clients::ClientTable;
pub use grant::Responder;
pub use guard::{Charge, Guard, LockToSave, NasLabel, Ticket, Verdict};
pub use ratelog::{LogLimiter, RejectTally};
pub use reaper::reap;

use crate::clock::Clock;
use crate::config::Config;
use crate::policy::LoginRules;
use crate::policy::lockout::GuardRules;
use crate::store::{LedgerWriter, LoginWrite, LoginWriter, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, watch};

/// Auth threads beyond one per core: one spare, so a thread waiting on a store write
/// (device binding, check-in) or preempted does not leave a core idle. More split the
/// socket's datagrams into smaller batches and wake more often: on 2 cores, 3 threads
/// answered 10-20% more than 4 at saturation, with no worse p99 at half load
/// (README, Performance).
const SPARE_AUTH_THREADS: usize = 1;
/// Accounting requests processed at once; beyond this, new requests are dropped (the
/// NAS retransmits) instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 1024;
/// Retransmit cache entries kept at most.
const RETRANSMIT_CAPACITY: usize = 65_536;
/// How long shutdown waits for requests already being processed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Reply settings that apply to every Access-Accept.
#[derive(Debug, Clone, Default)]
pub struct ReplySettings {
    pub idle_timeout: Option<u32>,
    pub acct_interim_interval: Option<u32>,
}

/// Everything taken from the config that SIGHUP may change. Each request works with
/// one snapshot (an `Arc`), so a reload never changes a request half-way.
#[derive(Debug)]
pub struct Settings {
    pub clients: ClientTable,
    pub reply: ReplySettings,
    /// Login rules for visitors, customers and open sessions.
    pub rules: LoginRules,
    /// The failure budgets against guessing.
    pub lockout: GuardRules,
    pub disconnect: crate::config::DisconnectSettings,
    /// How long an accept holds its simultaneous-use place before accounting.
    pub login_hold: chrono::Duration,
    /// How long a login's writes may wait for the database's write lock.
    pub login_write_wait: Duration,
    /// `[nexudus] webhook_secret`: webhooks are taken only with one.
    pub webhook_secret: Option<crate::config::Secret>,
    /// Bearer tokens of the HTTP API (reloadable like the client secrets).
    pub api_keys: Vec<crate::config::ApiKey>,
    /// The RadSec listener's TLS configuration (certificates reload with SIGHUP;
    /// connections open keep the one they started with).
    pub radsec_tls: Option<Arc<rustls::ServerConfig>>,
}

impl Settings {
    pub fn from_config(config: &Config, metrics: &crate::metrics::Metrics) -> Self {
        Self {
            clients: ClientTable::new(&config.clients, metrics),
            reply: ReplySettings {
                idle_timeout: config.idle_timeout,
                acct_interim_interval: config.acct_interim_interval,
            },
            rules: config.login_rules(),
            lockout: config.lockout,
            disconnect: config.disconnect,
            login_hold: chrono::Duration::seconds(config.login_hold_seconds as i64),
            login_write_wait: config.login_write_wait,
            webhook_secret: config
                .nexudus
                .as_ref()
                .and_then(|n| n.webhook_secret.clone()),
            api_keys: config
                .http
                .as_ref()
                .map(|h| h.api_keys.clone())
                .unwrap_or_default(),
            radsec_tls: config.radsec.as_ref().map(|r| r.tls.clone()),
        }
    }
}

/// State shared by the receive loops and the workers.
pub struct Context {
    pub store: Arc<Store>,
    /// Wall-clock source; fixed in tests.
    pub clock: Arc<dyn Clock>,
    /// The current settings; replaced whole by [`Context::reload`].
    settings: RwLock<Arc<Settings>>,
    /// What the running sockets and database were opened with: a reload that changes
    /// these is told that they need a restart.
    started_with: (
        SocketAddr,
        SocketAddr,
        crate::model::Database,
        Option<SocketAddr>,
    ),
    /// Answers replayed to retransmits (RFC 5080).
    pub cache: RetransmitCache,
    /// The same for Accounting-Requests.
    pub acct_cache: RetransmitCache,
    /// Seconds between reaper runs.
    pub reap_interval: Duration,
    /// Rate limit for drop logs.
    pub drop_log: LogLimiter,
    /// Failed-login counting and lockouts.
    pub guard: Guard,
    /// Rejects logged as a count per reason, once a minute per client.
    pub reject_log: RejectTally,
    /// Simultaneous-use places held by accepts whose accounting has not started.
    pub holds: holds::Holds,
    /// Where verified webhook bodies go (the platform sync's thread), once `serve`
    /// has started it.
    pub platform_inbox: std::sync::OnceLock<std::sync::mpsc::SyncSender<Vec<u8>>>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Wakes the disconnector when this process queued a disconnect.
    pub disconnect_wake: tokio::sync::Notify,
    /// The thread that makes the writes logins need (group commit): auth threads
    /// never wait for SQLite's write lock.
    pub logins: LoginWriter,
}

impl Context {
    pub fn new(
        config: &Config,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::store::StoreError> {
        let guard = Guard::load(&store, &config.lockout, clock.now())?;
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let logins = LoginWriter::start(&store)?;
        Ok(Self {
            store,
            clock,
            settings: RwLock::new(Arc::new(Settings::from_config(config, &metrics))),
            started_with: (
                config.auth_listen,
                config.acct_listen,
                config.database.clone(),
                config.radsec.as_ref().map(|r| r.listen),
            ),
            cache: RetransmitCache::new(
                Duration::from_secs(config.retransmit_cache_seconds),
                RETRANSMIT_CAPACITY,
            ),
            acct_cache: RetransmitCache::new(
                Duration::from_secs(config.retransmit_cache_seconds),
                RETRANSMIT_CAPACITY,
            ),
            reap_interval: Duration::from_secs(config.reap_interval_seconds),
            drop_log: LogLimiter::new(Duration::from_secs(10)),
            guard,
            reject_log: RejectTally::new(Duration::from_secs(60)),
            holds: holds::Holds::default(),
            platform_inbox: std::sync::OnceLock::new(),
            metrics,
            disconnect_wake: tokio::sync::Notify::new(),
            logins,
        })
    }

    /// Queues the rows of locks that just started (never waits); each is marked saved
    /// in the guard once it is in the store, and `then` runs after (the answer of
    /// the attempt that started them: once it is out, `lockout list` shows them).
    /// A row that cannot be written holds in memory until a restart.
    pub fn persist_locks(
        self: &Arc<Self>,
        locks: Vec<LockToSave>,
        now: chrono::DateTime<chrono::Utc>,
        then: Option<Box<dyn FnOnce() + Send>>,
    ) {
        // Failures to share with other servers go with the locks (and a reply that
        // waits for either is sent once they are written).
        let failures = self.guard.take_shared();
        if locks.is_empty() && failures.is_empty() && !self.guard.shares() {
            if let Some(then) = then {
                then();
            }
            return;
        }
        if locks.is_empty() && failures.is_empty() && then.is_none() {
            return;
        }
        let unshared = failures.clone();
        let write = LoginWrite {
            hold: None,
            bind: None,
            check_in: None,
            locks: locks.iter().map(|l| l.row.clone()).collect(),
            failures,
            now,
            deadline: Instant::now() + self.settings().login_write_wait,
        };
        let ctx = self.clone();
        self.logins.submit(
            write,
            Box::new(move |written| {
                match written {
                    Ok(_) => locks.iter().for_each(|l| ctx.guard.saved(l)),
                    Err(e) => {
                        // Shared failures go with the next write instead: the other
                        // servers still learn of them.
                        unshared.into_iter().for_each(|f| ctx.guard.share(f));
                        if !locks.is_empty() {
                            tracing::error!(error = %e,
                                "could not persist a lock; it holds in memory until a restart");
                        }
                    }
                }
                if let Some(then) = then {
                    then();
                }
            }),
        );
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies a new, already validated config: clients, secrets, reply attributes and
    /// rules change for the next request; requests in flight finish with the settings
    /// they started with. Listen addresses and the database cannot change without a
    /// restart; such changes are logged and ignored.
    pub fn reload(&self, config: &Config) {
        let (auth, acct, db, radsec) = &self.started_with;
        let radsec_now = config.radsec.as_ref().map(|r| r.listen);
        if (
            config.auth_listen,
            config.acct_listen,
            &config.database,
            radsec_now,
        ) != (*auth, *acct, db, *radsec)
        {
            tracing::warn!(
                "reload: listen addresses (radsec.listen too, or adding or removing [radsec]) and the database take effect only after a restart"
            );
        }
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Settings::from_config(config, &self.metrics));
        tracing::info!(clients = config.clients.len(), "configuration reloaded");
    }

    /// The first checks of any datagram, on the receive loop: it comes from a
    /// configured client and is a well-formed RADIUS packet. Anything else is dropped
    /// (and logged at a bounded rate), never answered.
    pub(crate) fn admit<'s, 'a>(
        &self,
        settings: &'s Settings,
        datagram: &'a [u8],
        source: SocketAddr,
        port: &str,
    ) -> Option<(
        &'s Arc<crate::config::Client>,
        &'s crate::metrics::ClientCounters,
        crate::protocol::Packet<'a>,
    )> {
        let Some((client, counters)) = settings.clients.find(source.ip()) else {
            self.log_drop(
                "unknown_client",
                source,
                &format_args!("{port}: sender is not a configured [[client]]"),
            );
            return None;
        };
        match crate::protocol::validate(datagram) {
            Ok(packet) => Some((client, counters, packet)),
            Err(e) => {
                self.log_drop(
                    "malformed",
                    source,
                    &format_args!("{port}: client {}: {e}", client.name),
                );
                None
            }
        }
    }

    /// Whether a Status-Server carries a valid Message-Authenticator, as RFC 5997
    /// section 3 requires (dropped and logged otherwise; counted when it does).
    pub(crate) fn status_server_authentic(
        &self,
        packet: &crate::protocol::Packet<'_>,
        client: &crate::config::Client,
        counters: &crate::metrics::ClientCounters,
        source: SocketAddr,
    ) -> bool {
        let secret = client.secret.as_bytes();
        if crate::protocol::verify_message_authenticator(packet, secret, None) != Some(true) {
            self.log_drop(
                "bad_message_authenticator",
                source,
                &format_args!(
                    "client {}: Status-Server without a valid Message-Authenticator",
                    client.name
                ),
            );
            return false;
        }
        counters.status_server.inc();
        true
    }

    /// Logs a dropped datagram, at most once per cause every ten seconds.
    pub(crate) fn log_drop(
        &self,
        cause: &'static str,
        source: SocketAddr,
        detail: &dyn std::fmt::Display,
    ) {
        self.metrics.dropped(cause);
        if let Some(n) = self.drop_log.allow(cause, Instant::now()) {
            tracing::warn!(%source, cause, dropped = n, "dropped datagram: {detail}");
        }
    }
}

/// The NAS that sent `packet` from `source`: the address, NAS-IP-Address (RFC 2865
/// 5.4) and NAS-Identifier (5.32) when present and readable.
pub(crate) fn nas_of<'a>(
    packet: &crate::protocol::Packet<'a>,
    source: std::net::IpAddr,
) -> crate::model::NasKey<'a> {
    use crate::protocol::attr;
    crate::model::NasKey {
        source,
        nas_ip: packet
            .value(attr::NAS_IP_ADDRESS)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(std::net::IpAddr::from),
        nas_id: packet
            .value(attr::NAS_IDENTIFIER)
            .and_then(|v| std::str::from_utf8(v).ok()),
    }
}

/// A bound server, ready to run.
pub struct Server {
    context: Arc<Context>,
    /// The auth socket, shared by the auth threads (blocking I/O, see `run`).
    auth: Arc<std::net::UdpSocket>,
    acct: Arc<UdpSocket>,
    /// The accounting writer thread (group commit).
    ledger: LedgerWriter,
    /// The HTTP API and metrics listener and its limits, when `[http]` is configured.
    http: Option<(tokio::net::TcpListener, crate::config::HttpLimits)>,
    /// The RadSec listener and its limits, when `[radsec]` is configured.
    radsec: Option<(tokio::net::TcpListener, crate::config::RadsecLimits)>,
}

impl Server {
    /// Binds the auth and accounting listeners from the config (`auth_listen`,
    /// `acct_listen`; port 0 in tests), starts the ledger writer and runs the first
    /// reaper pass (sessions that went stale or ran out while the server was down are
    /// closed before the first request; later passes run every `reap_interval`).
    pub async fn bind(
        config: &Config,
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<Server> {
        let auth = std::net::UdpSocket::bind(config.auth_listen)?;
        // Auth threads wake up this often to notice shutdown.
        auth.set_read_timeout(Some(Duration::from_millis(100)))?;
        let acct = UdpSocket::bind(config.acct_listen).await?;
        let http = match &config.http {
            Some(h) => Some((
                tokio::net::TcpListener::bind(h.listen).await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("http.listen = {}: {e}", h.listen))
                })?,
                h.limits,
            )),
            None => None,
        };
        let radsec = match &config.radsec {
            Some(r) => Some((
                tokio::net::TcpListener::bind(r.listen).await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("radsec.listen = {}: {e}", r.listen))
                })?,
                r.limits,
            )),
            None => None,
        };
        let ledger = LedgerWriter::start(&store).map_err(std::io::Error::other)?;
        let context = Arc::new(Context::new(config, store, clock).map_err(std::io::Error::other)?);
        let first = context.clone();
        reaper::report(
            tokio::task::spawn_blocking(move || reaper::reap(&first))
                .await
                .map_err(std::io::Error::other)?,
        );
        Ok(Server {
            context,
            auth: Arc::new(auth),
            acct: Arc::new(acct),
            ledger,
            http,
            radsec,
        })
    }

    pub fn auth_addr(&self) -> std::io::Result<SocketAddr> {
        self.auth.local_addr()
    }

    pub fn acct_addr(&self) -> std::io::Result<SocketAddr> {
        self.acct.local_addr()
    }

    /// The HTTP listener's address, when `[http]` is configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The RadSec listener's address, when `[radsec]` is configured.
    pub fn radsec_addr(&self) -> Option<SocketAddr> {
        self.radsec.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    ///
    /// Access-Requests are served by a few OS threads sharing the auth socket, each
    /// doing receive, triage, decide (store calls included: these threads are not
    /// async workers) and send for one datagram at a time. No task is spawned per
    /// request; concurrency is the thread count, and the socket buffer queues the rest
    /// (the NAS retransmits what the kernel drops). Accounting (which waits for the
    /// ledger writer) and the reaper run on the tokio runtime.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let (stop, stopped) = watch::channel(false);
        let acct = tokio::spawn(acct::serve(
            self.context.clone(),
            self.acct.clone(),
            self.ledger.clone(),
            permits.clone(),
            stopped.clone(),
        ));
        let reaper = tokio::spawn(reaper::run(
            self.context.clone(),
            self.context.reap_interval,
            stopped.clone(),
        ));
        let disconnector = tokio::spawn(disconnect::run(self.context.clone(), stopped.clone()));
        let sweeper = tokio::spawn(sweep_guard(self.context.clone(), stopped.clone()));
        let watcher = tokio::spawn(filewatch::run(self.context.clone(), stopped.clone()));
        let http = self.http.map(|(listener, limits)| {
            let mut stopped = stopped.clone();
            tokio::spawn(crate::http::serve(
                listener,
                self.context.clone(),
                limits,
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ))
        });
        let radsec = self.radsec.map(|(listener, limits)| {
            tokio::spawn(radsec::serve(
                listener,
                self.context.clone(),
                limits,
                self.ledger.clone(),
                permits.clone(),
                stopped.clone(),
            ))
        });
        let halt = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads =
            std::thread::available_parallelism().map_or(2, |n| n.get()) + SPARE_AUTH_THREADS;
        let mut auth_threads = Vec::with_capacity(threads);
        for n in 0..threads {
            let (ctx, socket, halt) = (self.context.clone(), self.auth.clone(), halt.clone());
            auth_threads.push(
                std::thread::Builder::new()
                    .name(format!("pinradius-auth-{n}"))
                    .spawn(move || auth::serve_blocking(&ctx, &socket, &halt))?,
            );
        }
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        halt.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = stop.send(true);
        let _ = acct.await;
        let _ = reaper.await;
        let _ = disconnector.await;
        let _ = sweeper.await;
        let _ = watcher.await;
        if let Some(radsec) = radsec {
            let _ = radsec.await;
        }
        if let Some(http) = http
            && tokio::time::timeout(DRAIN_TIMEOUT, http).await.is_err()
        {
            tracing::warn!("HTTP requests still open after {DRAIN_TIMEOUT:?}; stopping anyway");
        }
        let joined = tokio::task::spawn_blocking(move || {
            for t in auth_threads {
                let _ = t.join();
            }
        });
        if tokio::time::timeout(DRAIN_TIMEOUT, joined).await.is_err() {
            tracing::warn!("auth threads still busy after {DRAIN_TIMEOUT:?}; stopping anyway");
        }
        // First logins and lock rows the auth threads queued: written and answered.
        let logins = self.context.logins.clone();
        if !tokio::task::spawn_blocking(move || logins.flush(DRAIN_TIMEOUT))
            .await
            .unwrap_or(false)
        {
            tracing::warn!("login writes still queued after {DRAIN_TIMEOUT:?}; stopping anyway");
        }
        let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
        if tokio::time::timeout(DRAIN_TIMEOUT, permits.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                "accounting requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway"
            );
        }
        Ok(())
    }
}

/// How often the guard logs locks that ended and forgets what no longer matters, and
/// pending reject counts are logged.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Runs the guard's sweep and flushes the reject counts until shutdown.
async fn sweep_guard(ctx: Arc<Context>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let settings = ctx.settings();
        ctx.guard
            .sweep(&settings.lockout, &ctx.metrics, ctx.clock.now());
        ctx.reject_log.flush_due(Instant::now());
        ctx.holds.sweep(ctx.clock.now());
    }
}
