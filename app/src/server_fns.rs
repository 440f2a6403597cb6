//! Server functions, one module per feature. Each authenticates (where the feature needs it), calls one
//! service function from `goblin-core`, and maps the error to [`crate::error::AppError`].

pub mod account;
pub mod admin;
pub mod auth;
pub mod chat;
pub mod health;
pub mod monitoring;
pub mod providers;
pub mod routing;
pub mod search;
pub mod settings;
pub mod tasks;
