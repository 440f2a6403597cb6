//! The `goblin` server: command line, start-up wiring, and the HTTP routes that are not Leptos pages
//! (`/health*` here; `/v1`, `/api` and `/metrics` as their features land).

pub mod assets;
pub mod auth;
pub mod body_limit;
pub mod cli;
pub mod csrf;
pub mod fn_errors;
pub mod observe;
pub mod routes;
pub mod startup;
pub mod telemetry;

pub use startup::Application;
