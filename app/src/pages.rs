//! One module per page.

pub mod account;
pub mod admin;
pub mod admin_monitoring;
pub mod admin_provider;
pub mod admin_providers;
pub mod admin_routing;
pub mod admin_settings;
pub mod chat;
pub mod home;
pub mod not_found;
pub mod search;
pub mod setup;
pub mod signin;
pub mod task;
pub mod tasks;
