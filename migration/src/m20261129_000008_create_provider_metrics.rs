use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000002_create_providers::Providers;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Per-minute rollup per provider and model.
#[derive(DeriveIden)]
enum ProviderMetrics {
    Table,
    Id,
    ProviderId,
    Model,
    Minute,
    Requests,
    Errors,
    LatencyP50Ms,
    LatencyP95Ms,
    TtftP50Ms,
    TokensIn,
    TokensOut,
    CostMicros,
    // up | degraded | down
    Health,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProviderMetrics::Table)
                    .col(big_pk_auto(ProviderMetrics::Id))
                    .col(uuid(ProviderMetrics::ProviderId))
                    .col(string_len(ProviderMetrics::Model, 128))
                    .col(timestamp_with_time_zone(ProviderMetrics::Minute))
                    .col(big_integer(ProviderMetrics::Requests).default(0))
                    .col(big_integer(ProviderMetrics::Errors).default(0))
                    .col(integer_null(ProviderMetrics::LatencyP50Ms))
                    .col(integer_null(ProviderMetrics::LatencyP95Ms))
                    .col(integer_null(ProviderMetrics::TtftP50Ms))
                    .col(big_integer(ProviderMetrics::TokensIn).default(0))
                    .col(big_integer(ProviderMetrics::TokensOut).default(0))
                    .col(big_integer(ProviderMetrics::CostMicros).default(0))
                    .col(string_len(ProviderMetrics::Health, 16).default("up"))
                    .foreign_key(&mut crate::fk(
                        "fk_provider_metrics_provider",
                        ProviderMetrics::Table,
                        ProviderMetrics::ProviderId,
                        Providers::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // One row per provider, model and minute; also serves "by provider over time".
        manager
            .create_index(
                Index::create()
                    .name("uq_provider_metrics_provider_minute_model")
                    .table(ProviderMetrics::Table)
                    .col(ProviderMetrics::ProviderId)
                    .col(ProviderMetrics::Minute)
                    .col(ProviderMetrics::Model)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Dashboard charts read every provider over a time range.
        manager
            .create_index(
                Index::create()
                    .name("idx_provider_metrics_minute")
                    .table(ProviderMetrics::Table)
                    .col(ProviderMetrics::Minute)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ProviderMetrics::Table).to_owned()).await
    }
}
