//! pinradius: a RADIUS server for the Wi-Fi hotspots of coworking spaces.
//!
//! # Layout
//!
//! Dependencies point one way:
//! `main -> cli -> {commands, server} -> {policy, store, protocol, config, clock} -> model`.
//!
//! - [`protocol`]: the RADIUS wire format only (validation, authenticators, PAP, CHAP,
//!   VSAs, dictionaries); no I/O, no clock.
//! - [`policy`]: pure decisions with `now` as a parameter: reject reasons,
//!   Session-Timeout.
//! - [`store`]: the only SQL: migrations, tokens, device bindings, the sessions ledger.
//! - [`server`]: UDP loops, client table, retransmit cache, glue between the above.
//! - [`commands`]: admin operations shared by the CLI and the HTTP API.
//! - [`platform`]: the coworking platform (Nexudus) as a source of codes: its API
//!   client and the sync that applies its records to the store.
//! - [`config`]: the TOML file, validated with errors that name the key.
//! - [`clock`]: injectable wall-clock time.
//! - [`model`]: plain data.

pub mod bench;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod fuzz;
pub mod http;
pub mod metrics;
pub mod model;
pub mod platform;
pub mod policy;
pub mod probe;
pub mod protocol;
pub mod server;
pub mod store;
