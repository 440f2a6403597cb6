//! HTTP routes outside the Leptos pages.

pub mod api;
pub mod chat;
pub mod fields;
pub mod health;
pub mod metrics;
pub mod raptor;
pub mod search;
pub mod tasks;
pub mod v1;
