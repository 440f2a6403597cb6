use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;
use super::m20261129_000002_create_providers::Providers;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One row per gateway request.
#[derive(DeriveIden)]
enum RoutingRequests {
    Table,
    Id,
    CreatedAt,
    UserId,
    TokenId,
    RequestedModel,
    RouteAlias,
    // [{provider_id, model, status, latency_ms, error}]
    Attempts,
    ProviderId,
    Model,
    Stream,
    // ok | error | cancelled
    Status,
    HttpStatus,
    TtftMs,
    LatencyMs,
    TokensIn,
    TokensOut,
    CostMicros,
    Error,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoutingRequests::Table)
                    .col(pk_uuid(RoutingRequests::Id))
                    .col(timestamp_with_time_zone(RoutingRequests::CreatedAt))
                    .col(uuid_null(RoutingRequests::UserId))
                    .col(uuid_null(RoutingRequests::TokenId))
                    .col(string_len(RoutingRequests::RequestedModel, 192))
                    .col(string_len_null(RoutingRequests::RouteAlias, 64))
                    .col(json(RoutingRequests::Attempts))
                    .col(uuid_null(RoutingRequests::ProviderId))
                    .col(string_len_null(RoutingRequests::Model, 128))
                    .col(boolean(RoutingRequests::Stream).default(false))
                    .col(string_len(RoutingRequests::Status, 16))
                    .col(integer(RoutingRequests::HttpStatus))
                    .col(integer_null(RoutingRequests::TtftMs))
                    .col(integer(RoutingRequests::LatencyMs))
                    .col(big_integer(RoutingRequests::TokensIn).default(0))
                    .col(big_integer(RoutingRequests::TokensOut).default(0))
                    .col(big_integer(RoutingRequests::CostMicros).default(0))
                    .col(text_null(RoutingRequests::Error))
                    // The request log is history: it outlives users and providers.
                    .foreign_key(&mut crate::fk(
                        "fk_routing_requests_user",
                        RoutingRequests::Table,
                        RoutingRequests::UserId,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .foreign_key(&mut crate::fk(
                        "fk_routing_requests_provider",
                        RoutingRequests::Table,
                        RoutingRequests::ProviderId,
                        Providers::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        // Keyset pagination of the log: newest first, ties broken by id.
        manager
            .create_index(
                Index::create()
                    .name("idx_routing_requests_created")
                    .table(RoutingRequests::Table)
                    .col(RoutingRequests::CreatedAt)
                    .col(RoutingRequests::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_routing_requests_provider_created")
                    .table(RoutingRequests::Table)
                    .col(RoutingRequests::ProviderId)
                    .col(RoutingRequests::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_routing_requests_user_created")
                    .table(RoutingRequests::Table)
                    .col(RoutingRequests::UserId)
                    .col(RoutingRequests::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RoutingRequests::Table).to_owned()).await
    }
}
