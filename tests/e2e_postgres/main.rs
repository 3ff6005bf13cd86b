//! The end-to-end tests of `tests/e2e`, on PostgreSQL: the same files, with the
//! harness putting each server's data in a schema of its own (see
//! `e2e/harness.rs`).

#[path = "../common/mod.rs"]
mod common;

#[path = "../e2e/accounting.rs"]
mod accounting;
#[path = "../e2e/api.rs"]
mod api;
#[path = "../e2e/auth.rs"]
mod auth;
#[path = "../e2e/disconnects.rs"]
mod disconnects;
#[path = "../e2e/guessing.rs"]
mod guessing;
#[path = "../e2e/hardening.rs"]
mod hardening;
#[path = "../e2e/harness.rs"]
mod harness;
#[path = "../e2e/visitors.rs"]
mod visitors;
