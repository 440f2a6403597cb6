use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RoutingRequests {
    Table,
    Id,
    CreatedAt,
    UserId,
    ProviderId,
    Model,
    Status,
}

/// Indexes for the request log's filters, each ending in (created_at, id) so that a filtered page is
/// one index range read newest first, and the next page (keyset: `(created_at, id) < cursor`) starts
/// where the last one stopped, however deep. They replace the (provider_id, created_at) and
/// (user_id, created_at) indexes of the table's first migration, whose ties on created_at the keyset
/// condition could not use.
const NEW: [(&str, RoutingRequests); 4] = [
    ("idx_routing_requests_provider_created_id", RoutingRequests::ProviderId),
    ("idx_routing_requests_user_created_id", RoutingRequests::UserId),
    ("idx_routing_requests_status_created_id", RoutingRequests::Status),
    ("idx_routing_requests_model_created_id", RoutingRequests::Model),
];

const OLD: [(&str, RoutingRequests); 2] = [
    ("idx_routing_requests_provider_created", RoutingRequests::ProviderId),
    ("idx_routing_requests_user_created", RoutingRequests::UserId),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, col) in NEW {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(RoutingRequests::Table)
                        .col(col)
                        .col(RoutingRequests::CreatedAt)
                        .col(RoutingRequests::Id)
                        .to_owned(),
                )
                .await?;
        }
        for (name, _) in OLD {
            manager.drop_index(Index::drop().name(name).table(RoutingRequests::Table).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, col) in OLD {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(RoutingRequests::Table)
                        .col(col)
                        .col(RoutingRequests::CreatedAt)
                        .to_owned(),
                )
                .await?;
        }
        for (name, _) in NEW {
            manager.drop_index(Index::drop().name(name).table(RoutingRequests::Table).to_owned()).await?;
        }
        Ok(())
    }
}
