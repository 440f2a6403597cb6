//! HTTP and command-line tests of the `goblin` server: one binary, one module per area.
//! Every test gets a fresh database; PostgreSQL variants run when GOBLIN_TEST_PG_URL is set (and
//! must run under CI=true).

mod account;
mod admin;
mod ceremonies;
mod chat;
mod cli;
mod gateway;
mod health;
mod helpers;
mod instances;
mod keys;
mod migrations;
mod monitoring;
mod pages;
mod pg_restart;
mod providers;
mod routing;
mod search;
mod settings;
mod tasks;
mod tokens;
