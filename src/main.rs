//! The `pinradius` binary: parse the command line, set up logging, dispatch. Errors
//! print as `error: ...` and exit 1.

use anyhow::{Context as _, Result};
use clap::Parser;
use pinradius::cli::{
    BenchCommand, Cli, Command, CreateArgs, CustomerCommand, DbCommand, LockoutCommand, LogFormat,
    SessionCommand, SyncCommand, TokenCommand, VisitorCommand,
};
use pinradius::clock::SystemClock;
use pinradius::commands::people::{self, CustomerInput, VisitorInput};
use pinradius::commands::{self, CommandError, Field, sessions, token_edits, tokens};
use pinradius::config::Config;
use pinradius::server::Server;
use pinradius::store::Store;
use std::sync::Arc;

fn main() {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
                // The HTTP client logs raw wire bytes at trace (the platform's password
                // and bearer token among them): never below warn, whatever RUST_LOG says.
                .add_directive("ureq=warn".parse().expect("a valid directive"))
                .add_directive("ureq_proto=warn".parse().expect("a valid directive")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a terminal: a log file or the journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn business(v: Option<String>) -> Result<Option<i64>, CommandError> {
    v.map(|v| match v.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(CommandError::Invalid(vec![commands::FieldError {
            field: Field::BusinessId,
            value: Some(v.clone()),
            message: "is not a whole number of 1 or more".into(),
        }])),
    })
    .transpose()
}

fn run(cli: Cli) -> Result<()> {
    // The load generator needs no config: it is a client.
    if let Command::Bench(cmd) = &cli.command {
        match cmd {
            BenchCommand::Auth(a) => return bench(a, pinradius::bench::Load::Auth),
            BenchCommand::Acct(a) => return bench(a, pinradius::bench::Load::Acct),
            BenchCommand::Echo { listen, threads } => {
                return Ok(pinradius::bench::echo(*listen, *threads)?);
            }
            BenchCommand::Guess {
                target,
                secret,
                macs,
                window,
                duration,
                seed,
            } => {
                let report =
                    pinradius::bench::guess::run(&pinradius::bench::guess::GuessOptions {
                        target: *target,
                        secret: secret.clone(),
                        macs: *macs,
                        window: *window,
                        duration: std::time::Duration::from_secs_f64(duration.max(0.1)),
                        seed: *seed,
                    })?;
                println!("{report}");
                return Ok(());
            }
            BenchCommand::Seed { .. } => {}
        }
    }
    let config = Config::load(&cli.config)?;
    match cli.command {
        Command::CheckConfig => {
            let database = Store::check_database(&config.database)
                .map_err(|e| anyhow::anyhow!("{}: {e}", cli.config.display()))?;
            for w in config.warnings().into_iter().chain(database) {
                println!("warning: {w}");
            }
            println!(
                "{}: OK ({} client(s), database {})",
                cli.config.display(),
                config.clients.len(),
                config.database
            );
            Ok(())
        }
        Command::Serve => serve(config),
        Command::Probe { timeout_ms } => {
            let took =
                pinradius::probe::probe(&config, std::time::Duration::from_millis(timeout_ms))?;
            println!(
                "{}: Status-Server answered in {} us",
                config.auth_listen,
                took.as_micros()
            );
            Ok(())
        }
        Command::Db(DbCommand::Init) => {
            let existed = config.database.file().is_none_or(std::path::Path::exists);
            Store::open_database(&config.database)?;
            println!(
                "{} {}",
                if existed {
                    "database is up to date:"
                } else {
                    "created database"
                },
                config.database
            );
            Ok(())
        }
        Command::Bench(BenchCommand::Seed {
            tokens,
            prefix,
            business_id,
            minutes,
        }) => {
            let store = Store::open_database(&config.database)?;
            let started = std::time::Instant::now();
            let n = store.seed_tokens(&prefix, tokens, business_id, minutes, chrono::Utc::now())?;
            println!(
                "seeded {n} token(s) ({prefix}0000000..) in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Bench(_) => unreachable!("handled before the config is read"),
        Command::Sync(cmd) => {
            let store = Arc::new(Store::open_existing_database(&config.database)?);
            match cmd {
                SyncCommand::Status { json } => {
                    print!("{}", commands::sync::status(&store, json)?);
                    Ok(())
                }
                SyncCommand::Run { full } => {
                    let Some(sync) = pinradius::platform::Sync::new(&config, store) else {
                        anyhow::bail!(
                            "{}: no [nexudus] section: there is no platform to sync from",
                            config.path.display()
                        );
                    };
                    for report in sync.run_once(full, chrono::Utc::now())? {
                        println!("{report}");
                    }
                    Ok(())
                }
            }
        }
        Command::Lockout(cmd) => {
            let store = Store::open_existing_database(&config.database)?;
            let now = chrono::Utc::now();
            let out = match cmd {
                LockoutCommand::List { json, all } => {
                    commands::lockouts::list(&store, json, (!all).then_some(now))?
                }
                LockoutCommand::Clear {
                    mac,
                    client,
                    nas,
                    account,
                    business_id,
                    server,
                } => {
                    let which = match (mac, client, nas, account, business_id) {
                        (Some(mac), ..) => commands::lockouts::Clear::Device(mac),
                        (_, Some(client), ..) => commands::lockouts::Clear::Client(client),
                        (_, _, Some(nas), ..) => commands::lockouts::Clear::Nas(nas),
                        (_, _, _, Some(email), Some(business_id)) => {
                            commands::lockouts::Clear::Account { business_id, email }
                        }
                        _ if server => commands::lockouts::Clear::Server,
                        _ => unreachable!("clap requires one of them"),
                    };
                    commands::lockouts::clear(&store, which)?
                }
            };
            print!("{out}");
            Ok(())
        }
        Command::Session(cmd) => {
            let store = Store::open_existing_database(&config.database)?;
            let out = match cmd {
                SessionCommand::List { json, open } => sessions::list(&store, open, json)?,
                SessionCommand::Close { id } => sessions::close(&store, &id, chrono::Utc::now())?,
                SessionCommand::Unmatched { json, limit } => {
                    sessions::unmatched(&store, limit, json)?
                }
            };
            print!("{out}");
            Ok(())
        }
        Command::Visitor(cmd) => {
            let store = Store::open_existing_database(&config.database)?;
            print!(
                "{}",
                visitor_command(&config, &store, *cmd, chrono::Utc::now())?
            );
            Ok(())
        }
        Command::Customer(cmd) => {
            let store = Store::open_existing_database(&config.database)?;
            print!(
                "{}",
                customer_command(&config, &store, *cmd, chrono::Utc::now())?
            );
            Ok(())
        }
        Command::Token(cmd) => {
            let cmd = *cmd;
            let store = Store::open_existing_database(&config.database)?;
            let now = chrono::Utc::now();
            let out = match cmd {
                TokenCommand::Create(a) => {
                    tokens::create(&store, &create_input(a), now)?.to_string() + "\n"
                }
                TokenCommand::List { json, business_id } => tokens::list(
                    &store,
                    business(business_id)?,
                    json,
                    now,
                    &config.login_rules(),
                )?,
                TokenCommand::Show {
                    code,
                    business_id,
                    json,
                } => tokens::show(
                    &store,
                    &code,
                    business(business_id)?,
                    json,
                    now,
                    &config.login_rules(),
                )?,
                TokenCommand::Revoke {
                    code,
                    business_id,
                    force,
                } => token_edits::revoke(&store, &code, business(business_id)?, force, now)? + "\n",
                TokenCommand::Update {
                    code,
                    changes,
                    force,
                } => {
                    let business_id = business(changes.business_id.clone())?;
                    token_edits::update(
                        &store,
                        &code,
                        business_id,
                        &update_input(changes),
                        force,
                        now,
                    )? + "\n"
                }
                TokenCommand::Delete {
                    code,
                    business_id,
                    force,
                } => token_edits::delete(&store, &code, business(business_id)?, force, now)? + "\n",
                TokenCommand::Unbind {
                    code,
                    mac,
                    business_id,
                } => token_edits::unbind(&store, &code, &mac, business(business_id)?)? + "\n",
                TokenCommand::Import { file } => {
                    let f = std::fs::File::open(&file)
                        .with_context(|| format!("cannot open {}", file.display()))?;
                    let ids = tokens::import_csv(&store, &file.display().to_string(), f, now)?;
                    format!(
                        "imported {} token(s), ids {}..={}\n",
                        ids.len(),
                        ids[0],
                        ids[ids.len() - 1]
                    )
                }
                TokenCommand::Explain {
                    code,
                    mac,
                    business_id,
                    at,
                } => {
                    let device = mac
                        .map(|m| tokens::parse_mac(Field::MacAddress, &m))
                        .transpose()
                        .map_err(|e| CommandError::Invalid(vec![e]))?;
                    let at = at
                        .map(|t| tokens::parse_time(Field::At, &t))
                        .transpose()
                        .map_err(|e| CommandError::Invalid(vec![e]))?;
                    tokens::explain(
                        &store,
                        &code,
                        business(business_id)?,
                        device,
                        at.unwrap_or(now),
                        &config.login_rules(),
                    )?
                }
            };
            print!("{out}");
            Ok(())
        }
    }
}

fn visitor_command(
    config: &Config,
    store: &Store,
    cmd: VisitorCommand,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, CommandError> {
    Ok(match cmd {
        VisitorCommand::Register {
            business_id,
            name,
            email,
            expected_arrival,
            json,
        } => {
            let input = VisitorInput {
                business_id,
                name,
                email,
                expected_arrival,
            };
            people::render_registered(
                &people::register_visitor(store, &config.visitors, &input, now)?,
                json,
            )
        }
        VisitorCommand::CheckIn { guid, at, force } => {
            people::check_in(store, &guid, at.as_deref(), force, now)?
        }
        VisitorCommand::List { json, business_id } => {
            people::list_visitors(store, business(business_id)?, json)?
        }
        VisitorCommand::Show { guid, json } => people::show_visitor(store, &guid, json)?,
        VisitorCommand::Delete { guid, force } => people::delete_visitor(store, &guid, force, now)?,
    })
}

fn customer_command(
    config: &Config,
    store: &Store,
    cmd: CustomerCommand,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, CommandError> {
    Ok(match cmd {
        CustomerCommand::Create {
            business_id,
            name,
            email,
            pin,
            json,
        } => {
            let input = CustomerInput {
                business_id,
                name,
                email,
                pin,
            };
            people::render_created(
                &people::create_customer(store, &config.customers, &input, now)?,
                json,
            )
        }
        CustomerCommand::SetPin { id, pin, force } => {
            people::set_pin(store, &id, &pin, force, now)?
        }
        CustomerCommand::Deactivate { id, force } => {
            people::set_active(store, &id, false, force, now)?
        }
        CustomerCommand::Activate { id, force } => {
            people::set_active(store, &id, true, force, now)?
        }
        CustomerCommand::List { json, business_id } => {
            people::list_customers(store, business(business_id)?, json)?
        }
        CustomerCommand::PinReminder { ids, json } => people::pin_reminder(store, &ids, json)?,
    })
}

fn bench(a: &pinradius::cli::BenchArgs, load: pinradius::bench::Load) -> Result<()> {
    let codes = match &a.codes {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --codes {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => (0..a.tokens)
            .map(|n| pinradius::bench::seeded_code(&a.prefix, n))
            .collect::<Vec<_>>(),
    };
    anyhow::ensure!(!codes.is_empty(), "--codes: the file has no codes");
    anyhow::ensure!(
        a.duration > 0.0 && a.duration.is_finite(),
        "--duration: {} is not a positive number of seconds",
        a.duration
    );
    let options = pinradius::bench::BenchOptions {
        target: a.target,
        secret: a.secret.clone(),
        load,
        codes,
        devices: if a.new_devices {
            u32::MAX
        } else {
            a.devices.max(1)
        },
        first_device: if a.new_devices { rand::random() } else { 0 },
        window: a.window.max(1),
        sockets: a.sockets.max(1),
        duration: std::time::Duration::from_secs_f64(a.duration),
        no_verify: a.no_verify,
        timeout: std::time::Duration::from_millis(a.timeout_ms.max(1)),
        rate: a.rate.filter(|r| *r > 0.0),
    };
    let report = match (&a.tls_cert, &a.tls_key, &a.tls_ca) {
        (Some(certificate), Some(private_key), Some(ca)) => pinradius::bench::radsec::run(
            &options,
            &pinradius::bench::radsec::TlsFiles {
                certificate: certificate.clone(),
                private_key: private_key.clone(),
                ca: ca.clone(),
                server_name: a.tls_name.clone(),
            },
        )?,
        _ => pinradius::bench::run(&options)?,
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "requests_per_second": report.per_second(), "sent": report.sent, "accepts": report.accepts,
                "rejects": report.rejects, "bad": report.bad, "lost": report.lost,
                "p50_us": report.p50_us, "p99_us": report.p99_us, "p999_us": report.p999_us,
                "seconds": report.elapsed.as_secs_f64(),
            })
        );
    } else {
        println!("{report}");
    }
    Ok(())
}

/// The fields `token update` was given (`--business-id` only picks the token).
fn update_input(a: pinradius::cli::UpdateArgs) -> tokens::TokenInput {
    token_input(None, a.new_code, a.minutes, a.fields)
}

fn create_input(a: CreateArgs) -> tokens::TokenInput {
    token_input(Some(a.business_id), Some(a.code), Some(a.minutes), a.fields)
}

fn token_input(
    business_id: Option<String>,
    access_code: Option<String>,
    minutes_included: Option<String>,
    f: pinradius::cli::TokenFields,
) -> tokens::TokenInput {
    tokens::TokenInput {
        business_id,
        access_code,
        minutes_included,
        description: f.description,
        valid_from: f.valid_from,
        valid_to: f.valid_to,
        user_limit: f.user_limit,
        device_limit: f.device_limit,
        mac_address: f.mac,
        booking_guid: f.booking_guid,
        visitor_guid: f.visitor_guid,
    }
}

fn serve(config: Config) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let store = Arc::new(Store::open_database(&config.database)?);
        let server = Server::bind(&config, store, Arc::new(SystemClock))
            .await
            .with_context(|| {
                format!(
                    "cannot bind server.auth_listen = {} / server.acct_listen = {}",
                    config.auth_listen, config.acct_listen
                )
            })?;
        // Signal handlers are in place before the server says it is listening, so a
        // SIGTERM or SIGHUP sent as soon as it is up is never lost to the default action.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        tokio::spawn(reload_on_sighup(hup, server.context().clone(), config.path.clone()));
        let http = server
            .http_addr()
            .map_or_else(|| "off".to_string(), |a| a.to_string());
        // The platform's sync: a thread of its own (blocking HTTP) that takes the
        // webhooks the HTTP listener verified and pulls on a timer; stopped with the
        // server.
        let stop_sync = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = pinradius::platform::Sync::new(&config, server.context().store.clone()).map(|mut sync| {
            sync.metrics = Some(server.context().metrics.clone());
            let clock = server.context().clock.clone();
            let (webhooks, inbox) = std::sync::mpsc::sync_channel::<Vec<u8>>(1024);
            let _ = server.context().platform_inbox.set(webhooks);
            let stop = stop_sync.clone();
            std::thread::Builder::new()
                .name("pinradius-sync".into())
                .spawn(move || pinradius::platform::run_poller(sync, clock, inbox, stop))
        });
        let poller = poller.transpose().context("cannot start the platform sync thread")?;
        let radsec = server
            .radsec_addr()
            .map_or_else(|| "off".to_string(), |a| a.to_string());
        tracing::info!(auth = %server.auth_addr()?, acct = %server.acct_addr()?, http = %http, radsec = %radsec, database = %config.database, clients = config.clients.len(), sync = config.nexudus.is_some(), "pinradius listening");
        server
            .run(async move {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
                }
            })
            .await?;
        stop_sync.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(poller) = poller {
            // A pull in progress is left to the process's exit after a few seconds (the
            // thread is not joined on a blocking task: the runtime would wait for it).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !poller.is_finished() && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            if !poller.is_finished() {
                tracing::warn!("platform sync still busy after 5 s; stopping anyway");
            }
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// SIGHUP re-reads the config file. A valid one replaces clients, secrets, reply
/// settings and rules for the next request; an invalid one is refused with its error
/// logged, and the running config stays.
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    context: Arc<pinradius::server::Context>,
    path: std::path::PathBuf,
) {
    while hup.recv().await.is_some() {
        match Config::load(&path) {
            Ok(config) => context.reload(&config),
            Err(e) => tracing::error!("reload refused, keeping the running config: {e}"),
        }
    }
}
