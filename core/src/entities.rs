//! SeaORM entities for the tables created by the `migration` crate, one module per table.
//!
//! Column names, types and nullability mirror `migration/src/m20261129_0000NN_create_*.rs`.

pub mod api_tokens;
pub mod audit_log;
pub mod exceptions;
pub mod global_settings;
pub mod invites;
pub mod model_configs;
pub mod passkeys;
pub mod provider_checks;
pub mod provider_credentials;
pub mod provider_metrics;
pub mod provider_policies;
pub mod provider_seeds;
pub mod providers;
pub mod routing_providers;
pub mod routing_requests;
pub mod search_chunk_vectors;
pub mod search_chunks;
pub mod search_collections;
pub mod search_documents;
pub mod sessions;
pub mod signing_keys;
pub mod stream_chunks;
pub mod streams;
pub mod task_logs;
pub mod tasks;
pub mod users;

/// Every entity under a table-named alias: `use goblin_core::entities::prelude::*;`.
pub mod prelude {
    pub use super::api_tokens::Entity as ApiTokens;
    pub use super::audit_log::Entity as AuditLog;
    pub use super::exceptions::Entity as Exceptions;
    pub use super::global_settings::Entity as GlobalSettings;
    pub use super::invites::Entity as Invites;
    pub use super::model_configs::Entity as ModelConfigs;
    pub use super::passkeys::Entity as Passkeys;
    pub use super::provider_checks::Entity as ProviderChecks;
    pub use super::provider_credentials::Entity as ProviderCredentials;
    pub use super::provider_metrics::Entity as ProviderMetrics;
    pub use super::provider_policies::Entity as ProviderPolicies;
    pub use super::provider_seeds::Entity as ProviderSeeds;
    pub use super::providers::Entity as Providers;
    pub use super::routing_providers::Entity as RoutingProviders;
    pub use super::routing_requests::Entity as RoutingRequests;
    pub use super::search_chunk_vectors::Entity as SearchChunkVectors;
    pub use super::search_chunks::Entity as SearchChunks;
    pub use super::search_collections::Entity as SearchCollections;
    pub use super::search_documents::Entity as SearchDocuments;
    pub use super::sessions::Entity as Sessions;
    pub use super::signing_keys::Entity as SigningKeys;
    pub use super::stream_chunks::Entity as StreamChunks;
    pub use super::streams::Entity as Streams;
    pub use super::task_logs::Entity as TaskLogs;
    pub use super::tasks::Entity as Tasks;
    pub use super::users::Entity as Users;
}
