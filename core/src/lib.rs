//! Goblin Assistant's server-side domain library: configuration, the database layer (SeaORM entities
//! and connection), and the services that pages, server functions and HTTP handlers call.
//!
//! Nothing here knows about HTTP frameworks; callers authenticate, call one service function, and map
//! its error.

pub mod audit;
pub mod ceremonies;
pub mod chat;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod entities;
pub mod gateway;
pub mod health;
pub mod keyset;
pub mod monitoring;
pub mod passkeys;
pub mod providers;
pub mod raptor;
pub mod rate_limit;
pub mod redis_store;
pub mod rotation;
pub mod routing;
pub mod search;
pub mod secret;
pub mod sessions;
pub mod settings;
pub mod tasks;
pub mod tokens;
pub mod users;

pub use config::Config;
pub use secret::Secret;

/// A hash map for the in-memory lookups every request makes (verified tokens, token rows, metric
/// series, settings): foldhash, seeded per process, hashes short keys several times faster than the
/// standard library's SipHash. Only for maps whose keys a caller cannot choose at will (a token is
/// cached only once its signature checks out).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
