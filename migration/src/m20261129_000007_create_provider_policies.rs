use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Routing policy of one route alias (or `*` for the default policy).
#[derive(DeriveIden)]
enum ProviderPolicies {
    Table,
    Id,
    RouteAlias,
    // priority | weighted | latency | cost | score
    Strategy,
    // {"latency": 0.4, "cost": 0.3, "reliability": 0.2, "bandwidth": 0.1}
    ScoreWeights,
    MaxRetries,
    RetryBackoffMs,
    AttemptTimeoutMs,
    DeadlineMs,
    FallbackEnabled,
    BreakerFailureThreshold,
    BreakerErrorRate,
    BreakerWindowS,
    BreakerCooldownS,
    BudgetMicros,
    // day | week | month
    BudgetPeriod,
    // refuse | cheaper
    BudgetAction,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProviderPolicies::Table)
                    .col(pk_uuid(ProviderPolicies::Id))
                    .col(string_len_uniq(ProviderPolicies::RouteAlias, 64))
                    .col(string_len(ProviderPolicies::Strategy, 16).default("priority"))
                    .col(json(ProviderPolicies::ScoreWeights))
                    .col(integer(ProviderPolicies::MaxRetries).default(1))
                    .col(integer(ProviderPolicies::RetryBackoffMs).default(100))
                    .col(integer(ProviderPolicies::AttemptTimeoutMs).default(30_000))
                    .col(integer(ProviderPolicies::DeadlineMs).default(120_000))
                    .col(boolean(ProviderPolicies::FallbackEnabled).default(true))
                    .col(integer(ProviderPolicies::BreakerFailureThreshold).default(5))
                    .col(double(ProviderPolicies::BreakerErrorRate).default(0.5))
                    .col(integer(ProviderPolicies::BreakerWindowS).default(60))
                    .col(integer(ProviderPolicies::BreakerCooldownS).default(30))
                    .col(big_integer_null(ProviderPolicies::BudgetMicros))
                    .col(string_len(ProviderPolicies::BudgetPeriod, 8).default("month"))
                    .col(string_len(ProviderPolicies::BudgetAction, 8).default("refuse"))
                    .col(timestamp_with_time_zone(ProviderPolicies::CreatedAt))
                    .col(timestamp_with_time_zone(ProviderPolicies::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ProviderPolicies::Table).to_owned()).await
    }
}
