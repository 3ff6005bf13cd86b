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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the RADIUS server.
    Serve,
    /// Validate the config file and print warnings; exits non-zero when invalid.
    CheckConfig,
    /// Manage access tokens.
    #[command(subcommand)]
    Token(Box<TokenCommand>),
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
    /// Revoke a token: the next login with it is rejected.
    Revoke {
        code: String,
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        business_id: Option<String>,
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
pub struct CreateArgs {
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub business_id: String,
    /// The code typed at the portal.
    #[arg(long, allow_hyphen_values = true)]
    pub code: String,
    /// Minutes of access included, summed over all sessions.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub minutes: String,
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
