//! Schema migrations for Goblin Assistant. One file per change, each runs on SQLite and PostgreSQL.
//! Applied migrations are never edited: a later change is a new file appended to [`Migrator`].

pub use sea_orm_migration::{MigrationStatus, prelude::*};

mod m20261129_000001_create_users;
mod m20261129_000002_create_providers;
mod m20261129_000003_create_provider_credentials;
mod m20261129_000004_create_model_configs;
mod m20261129_000005_create_global_settings;
mod m20261129_000006_create_routing_providers;
mod m20261129_000007_create_provider_policies;
mod m20261129_000008_create_provider_metrics;
mod m20261129_000009_create_routing_requests;
mod m20261129_000010_create_tasks;
mod m20261129_000011_create_streams;
mod m20261129_000012_create_stream_chunks;
mod m20261129_000013_create_search_collections;
mod m20261129_000014_create_search_documents;
mod m20261129_000015_create_signing_keys;
mod m20261129_000016_create_api_tokens;
mod m20261129_000017_create_audit_log;
mod m20261129_000018_create_passkeys;
mod m20261129_000019_create_sessions;
mod m20261129_000020_create_invites;
mod m20261129_000021_create_provider_checks;
mod m20261129_000022_create_provider_seeds;
mod m20261129_000023_index_routing_requests;
mod m20261129_000024_add_prompt_to_streams;
mod m20261129_000025_add_budgets;
mod m20261129_000026_create_task_logs;
mod m20261129_000027_add_token_to_tasks;
mod m20261129_000030_create_exceptions;
mod m20261129_000031_create_search_chunks;
mod m20261129_000040_add_sources_to_streams;
mod m20261129_000041_create_search_chunk_vectors;

/// The 14 tables of the initial schema, in creation order.
pub const TABLES: [&str; 14] = [
    "users",
    "providers",
    "provider_credentials",
    "model_configs",
    "global_settings",
    "routing_providers",
    "provider_policies",
    "provider_metrics",
    "routing_requests",
    "tasks",
    "streams",
    "stream_chunks",
    "search_collections",
    "search_documents",
];

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_create_users::Migration),
            Box::new(m20261129_000002_create_providers::Migration),
            Box::new(m20261129_000003_create_provider_credentials::Migration),
            Box::new(m20261129_000004_create_model_configs::Migration),
            Box::new(m20261129_000005_create_global_settings::Migration),
            Box::new(m20261129_000006_create_routing_providers::Migration),
            Box::new(m20261129_000007_create_provider_policies::Migration),
            Box::new(m20261129_000008_create_provider_metrics::Migration),
            Box::new(m20261129_000009_create_routing_requests::Migration),
            Box::new(m20261129_000010_create_tasks::Migration),
            Box::new(m20261129_000011_create_streams::Migration),
            Box::new(m20261129_000012_create_stream_chunks::Migration),
            Box::new(m20261129_000013_create_search_collections::Migration),
            Box::new(m20261129_000014_create_search_documents::Migration),
            Box::new(m20261129_000015_create_signing_keys::Migration),
            Box::new(m20261129_000016_create_api_tokens::Migration),
            Box::new(m20261129_000017_create_audit_log::Migration),
            Box::new(m20261129_000018_create_passkeys::Migration),
            Box::new(m20261129_000019_create_sessions::Migration),
            Box::new(m20261129_000020_create_invites::Migration),
            Box::new(m20261129_000021_create_provider_checks::Migration),
            Box::new(m20261129_000022_create_provider_seeds::Migration),
            Box::new(m20261129_000023_index_routing_requests::Migration),
            Box::new(m20261129_000024_add_prompt_to_streams::Migration),
            Box::new(m20261129_000025_add_budgets::Migration),
            Box::new(m20261129_000026_create_task_logs::Migration),
            Box::new(m20261129_000027_add_token_to_tasks::Migration),
            Box::new(m20261129_000030_create_exceptions::Migration),
            Box::new(m20261129_000031_create_search_chunks::Migration),
            Box::new(m20261129_000040_add_sources_to_streams::Migration),
            Box::new(m20261129_000041_create_search_chunk_vectors::Migration),
        ]
    }
}

/// Builds a foreign key from `from.col` to `to.id` with an explicit ON DELETE action.
pub(crate) fn fk(
    name: &str,
    from: impl IntoIden,
    col: impl IntoIden,
    to: impl IntoIden,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from, col)
        .to(to, Alias::new("id"))
        .on_delete(on_delete)
        .on_update(ForeignKeyAction::Cascade)
        .take()
}
