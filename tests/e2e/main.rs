//! End-to-end tests over real UDP on 127.0.0.1 against a server started in-process.

#[path = "../common/mod.rs"]
mod common;

mod accounting;
mod api;
mod auth;
mod disconnects;
mod guessing;
mod hardening;
mod harness;
mod visitors;
