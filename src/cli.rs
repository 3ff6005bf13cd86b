//! Command-line definitions (clap derive) and nothing else. Values that need checking
//! stay text here and are validated in `commands`, so the CLI, CSV import and the
//! HTTP API share one set of rules and messages.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pinradius",
    version,
    about = "RADIUS server for coworking-space Wi-Fi: access codes, visitor and member PINs"
)]
pub struct Cli {
    /// Config file (TOML).
    #[arg(long, global = true, default_value = "config/pinradius.toml")]
    pub config: PathBuf,
    /// Log lines as human-readable text or one JSON object per line (for log
    /// shippers). The level comes from RUST_LOG (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the RADIUS server.
    Serve,
    /// Validate the config file and print warnings; exits non-zero when invalid.
    CheckConfig,
    /// Ask the server of this config whether it answers: a Status-Server to its
    /// auth_listen from 127.0.0.1 (a [[client]] must cover it); exits non-zero when
    /// there is no verified answer (the container image's HEALTHCHECK).
    Probe {
        /// Milliseconds to wait for the answer.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Manage access tokens.
    #[command(subcommand)]
    Token(Box<TokenCommand>),
    /// Manage pre-registered visitors and their PINs.
    #[command(subcommand)]
    Visitor(Box<VisitorCommand>),
    /// Manage customers (members) and their PINs.
    #[command(subcommand)]
    Customer(Box<CustomerCommand>),
    /// Accounting sessions (the minutes ledger).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Devices locked out after too many failed logins.
    #[command(subcommand)]
    Lockout(LockoutCommand),
    /// The database file.
    #[command(subcommand)]
    Db(DbCommand),
    /// The coworking platform (`[nexudus]`): pull its records now, or show where the
    /// sync stands.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Load generator and benchmark helpers.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send Access-Requests (PAP + Message-Authenticator) and report throughput/latency.
    Auth(BenchArgs),
    /// Send Accounting-Requests (Interim-Update) and report throughput/latency.
    Acct(BenchArgs),
    /// Guess 5-digit PINs as an attacker behind one NAS would; report checked guesses
    /// per minute and the time to the first valid PIN.
    Guess {
        #[arg(long, default_value = "127.0.0.1:1812")]
        target: std::net::SocketAddr,
        #[arg(long)]
        secret: String,
        /// rotating: a new MAC per guess; none: no Calling-Station-Id; one: one MAC.
        #[arg(long, value_enum, default_value = "rotating")]
        macs: crate::bench::guess::MacMode,
        /// Requests in flight (1-255).
        #[arg(long, default_value_t = 128)]
        window: u32,
        /// Seconds to run.
        #[arg(long, default_value_t = 60.0)]
        duration: f64,
        /// Seed of the guessing order.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Fill the store with N tokens named PREFIX0000000.. (one transaction).
    Seed {
        #[arg(long)]
        tokens: u64,
        #[arg(long, default_value = "bench-")]
        prefix: String,
        #[arg(long, default_value_t = 1)]
        business_id: i64,
        #[arg(long, default_value_t = 525_600)]
        minutes: u32,
    },
    /// A bare UDP echo server: the ceiling for this load tool on this machine.
    Echo {
        #[arg(long, default_value = "127.0.0.1:18199")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value_t = 2)]
        threads: u32,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:1812")]
    pub target: std::net::SocketAddr,
    #[arg(long)]
    pub secret: String,
    /// Codes to use, one per line (default: the codes `bench seed` made).
    #[arg(long)]
    pub codes: Option<PathBuf>,
    /// With the seeded codes: how many (PREFIX0000000 .. PREFIX{N-1}).
    #[arg(long, default_value_t = 1000)]
    pub tokens: u64,
    #[arg(long, default_value = "bench-")]
    pub prefix: String,
    /// Distinct devices (Calling-Station-Id).
    #[arg(long, default_value_t = 1000)]
    pub devices: u32,
    /// Every request from a device never seen before (numbered from a random start):
    /// first-use logins, each binding its device.
    #[arg(long, conflicts_with = "devices")]
    pub new_devices: bool,
    /// Requests outstanding in total.
    #[arg(long, default_value_t = 256)]
    pub window: u32,
    /// Client sockets (threads).
    #[arg(long, default_value_t = 2)]
    pub sockets: u32,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Count any answer (for the echo ceiling).
    #[arg(long)]
    pub no_verify: bool,
    /// Send at this many requests/s (paced) instead of as fast as the window allows.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Milliseconds after which an unanswered request is counted lost.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Over RadSec (RFC 6614) instead of UDP: this NAS certificate (PEM), with
    /// --tls-key and --tls-ca; one TLS connection, --window requests in flight on it.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The CA that signed the server's certificate.
    #[arg(long, requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the target's address).
    #[arg(long, requires = "tls_cert")]
    pub tls_name: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LockoutCommand {
    /// List what is locked now: devices, accounts (email + PIN), NASes and the whole
    /// server (pauses of new-device logins).
    List {
        #[arg(long)]
        json: bool,
        /// Also locks that have ended (their doubling level is kept).
        #[arg(long)]
        all: bool,
    },
    /// Lift a lock (and forget its level); effective on the next request. Name a
    /// device by its MAC, or use one of the options.
    Clear {
        /// The device (MAC address).
        #[arg(allow_hyphen_values = true, required_unless_present_any = ["client", "nas", "account", "server"])]
        mac: Option<String>,
        /// Every NAS pause of this client (its name in the config).
        #[arg(long, conflicts_with_all = ["mac", "nas", "account", "server"])]
        client: Option<String>,
        /// One NAS pause, as `lockout list` shows its subject.
        #[arg(long, conflicts_with_all = ["mac", "account", "server"])]
        nas: Option<String>,
        /// An account lock: the email (with --business-id).
        #[arg(long, requires = "business_id", conflicts_with_all = ["mac", "server"])]
        account: Option<String>,
        #[arg(long)]
        business_id: Option<i64>,
        /// The whole server's pause.
        #[arg(long, conflicts_with_all = ["mac"])]
        server: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the database (mode 0600) or bring it to the current schema. Only this
    /// and `serve` create one: every other command needs it to exist.
    Init,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// One pass: pull the records changed since the last pass (all of them with
    /// --full, which also removes here what the platform no longer has); prints what
    /// changed.
    Run {
        #[arg(long)]
        full: bool,
    },
    /// Last success, cursor per entity, counts, last error.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List sessions.
    List {
        #[arg(long)]
        json: bool,
        /// Only sessions still open.
        #[arg(long)]
        open: bool,
    },
    /// Accounting records that could not be tied to a session or a token (kept,
    /// acknowledged, nothing counted), newest first.
    Unmatched {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Close an open session (frees its simultaneous-use place).
    Close {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VisitorCommand {
    /// Register a visitor; prints the visitor's guid and PIN.
    Register {
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: String,
        #[arg(long, allow_hyphen_values = true)]
        name: String,
        #[arg(long, allow_hyphen_values = true)]
        email: Option<String>,
        /// Expected arrival (RFC 3339); informational, the window starts at check-in.
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        expected_arrival: Option<String>,
        /// Print {"guid": ..., "pin": ...}.
        #[arg(long)]
        json: bool,
    },
    /// Record the visitor's arrival: the Wi-Fi window starts here.
    CheckIn {
        guid: String,
        /// Arrival time (RFC 3339); default now.
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        at: Option<String>,
        /// Edit a visitor or member that came from Nexudus anyway.
        #[arg(long)]
        force: bool,
    },
    /// List visitors.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: Option<String>,
    },
    /// Show one visitor.
    Show {
        guid: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a visitor; the visitor's access token stops working at once.
    Delete {
        guid: String,
        /// Edit a visitor or member that came from Nexudus anyway.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Create a customer; prints the id and the PIN.
    Create {
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: String,
        #[arg(long, allow_hyphen_values = true)]
        name: String,
        #[arg(long, allow_hyphen_values = true)]
        email: Option<String>,
        /// A 5-digit PIN; default: a random unique one.
        #[arg(long, allow_hyphen_values = true)]
        pin: Option<String>,
        /// Print {"id": ..., "pin": ...}.
        #[arg(long)]
        json: bool,
    },
    /// Change a customer's PIN (5 digits, unique); the old PIN stops working at once.
    SetPin {
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(allow_hyphen_values = true)]
        pin: String,
        /// Edit a visitor or member that came from Nexudus anyway.
        #[arg(long)]
        force: bool,
    },
    /// Deactivate a customer: the PIN no longer opens the Wi-Fi.
    Deactivate {
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Edit a visitor or member that came from Nexudus anyway.
        #[arg(long)]
        force: bool,
    },
    /// Activate a customer again.
    Activate {
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Edit a visitor or member that came from Nexudus anyway.
        #[arg(long)]
        force: bool,
    },
    /// List customers.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: Option<String>,
    },
    /// Print name, email and PIN of each customer, for a PIN reminder message.
    PinReminder {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints its id.
    Create(CreateArgs),
    /// List tokens.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: Option<String>,
    },
    /// Show one token and its usage.
    Show {
        code: String,
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change a token's fields (the flags of `create`; those not given stay).
    Update {
        #[arg(allow_hyphen_values = true)]
        code: String,
        #[command(flatten)]
        changes: UpdateArgs,
        /// Edit a token that came from Nexudus anyway.
        #[arg(long)]
        force: bool,
    },
    /// Delete a token (its open sessions are disconnected; the code is free again).
    Delete {
        #[arg(allow_hyphen_values = true)]
        code: String,
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: Option<String>,
        #[arg(long)]
        force: bool,
    },
    /// Free a device's place on a token (a phone that changed its MAC address).
    Unbind {
        #[arg(allow_hyphen_values = true)]
        code: String,
        #[arg(allow_hyphen_values = true)]
        mac: String,
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: Option<String>,
    },
    /// Revoke a token: the next login with it is rejected.
    Revoke {
        code: String,
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: Option<String>,
        /// Revoke a token that came from Nexudus anyway.
        #[arg(long)]
        force: bool,
    },
    /// Import tokens from a CSV file with a header row (all rows or none).
    Import { file: PathBuf },
    /// Explain what a login with this code would get now, and why.
    Explain {
        code: String,
        /// Device (MAC) logging in.
        #[arg(long, allow_hyphen_values = true)]
        mac: Option<String>,
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: Option<String>,
        /// Evaluate at this time instead of now (RFC 3339).
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        at: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The token's business (to tell the code apart when several have it).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub business_id: Option<String>,
    /// A new code.
    #[arg(long, allow_hyphen_values = true)]
    pub new_code: Option<String>,
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub minutes: Option<String>,
    #[command(flatten)]
    pub fields: TokenFields,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub business_id: String,
    /// The code typed at the portal.
    #[arg(long, allow_hyphen_values = true)]
    pub code: String,
    /// Minutes of access included, summed over all sessions.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub minutes: String,
    #[command(flatten)]
    pub fields: TokenFields,
}

/// A token's optional fields, shared by `token create` and `token update`.
#[derive(Debug, Args)]
pub struct TokenFields {
    /// Usable from (RFC 3339, e.g. 2026-11-23T09:00:00Z).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub valid_from: Option<String>,
    /// No longer usable after (RFC 3339).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub valid_to: Option<String>,
    /// Devices online with the token at the same time.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub user_limit: Option<String>,
    /// Distinct devices that may ever use the token.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub device_limit: Option<String>,
    /// Only this device may use the token.
    #[arg(long, allow_hyphen_values = true)]
    pub mac: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub description: Option<String>,
    #[arg(long, value_name = "G", allow_hyphen_values = true)]
    pub visitor_guid: Option<String>,
    #[arg(long, value_name = "G", allow_hyphen_values = true)]
    pub booking_guid: Option<String>,
}

#[cfg(test)]
mod tests {
    /// clap checks every subcommand's definition (unique names, valid groups).
    #[test]
    fn the_command_line_definition_is_valid() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
