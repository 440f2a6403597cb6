use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000002_create_providers::Providers;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One target of a route alias: `chat-fast` -> (provider, model) with a weight and an order.
#[derive(DeriveIden)]
enum RoutingProviders {
    Table,
    Id,
    Alias,
    ProviderId,
    Model,
    Weight,
    Position,
    Enabled,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoutingProviders::Table)
                    .col(pk_uuid(RoutingProviders::Id))
                    .col(string_len(RoutingProviders::Alias, 64))
                    .col(uuid(RoutingProviders::ProviderId))
                    .col(string_len(RoutingProviders::Model, 128))
                    .col(integer(RoutingProviders::Weight).default(1))
                    .col(integer(RoutingProviders::Position).default(0))
                    .col(boolean(RoutingProviders::Enabled).default(true))
                    .col(timestamp_with_time_zone(RoutingProviders::CreatedAt))
                    .col(timestamp_with_time_zone(RoutingProviders::UpdatedAt))
                    // A route target cannot point at a provider that is gone.
                    .foreign_key(&mut crate::fk(
                        "fk_routing_providers_provider",
                        RoutingProviders::Table,
                        RoutingProviders::ProviderId,
                        Providers::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_routing_providers_alias_target")
                    .table(RoutingProviders::Table)
                    .col(RoutingProviders::Alias)
                    .col(RoutingProviders::ProviderId)
                    .col(RoutingProviders::Model)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RoutingProviders::Table).to_owned()).await
    }
}
