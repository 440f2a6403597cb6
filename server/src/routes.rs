//! HTTP routes outside the Leptos pages.

pub mod health;
