use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Providers {
    Table,
    BudgetMicros,
    BudgetPeriod,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    BudgetMicros,
    BudgetPeriod,
}

#[derive(DeriveIden)]
enum RoutingRequests {
    Table,
    Id,
    CreatedAt,
    TokenId,
    RouteAlias,
}

/// Spend limits per provider and per API token (a route's budget lives in its policy), and the
/// indexes that let the gateway add up a period's spend for a token or a route without a scan.
/// SQLite alters one column per statement, so each column is its own step.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Providers::Table)
                    .add_column(big_integer_null(Providers::BudgetMicros))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Providers::Table)
                    .add_column(string_len(Providers::BudgetPeriod, 8).default("month"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .add_column(big_integer_null(ApiTokens::BudgetMicros))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .add_column(string_len(ApiTokens::BudgetPeriod, 8).default("month"))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_routing_requests_token_created_id", RoutingRequests::TokenId),
            ("idx_routing_requests_alias_created_id", RoutingRequests::RouteAlias),
        ] {
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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["idx_routing_requests_token_created_id", "idx_routing_requests_alias_created_id"] {
            manager.drop_index(Index::drop().name(name).table(RoutingRequests::Table).to_owned()).await?;
        }
        manager
            .alter_table(
                Table::alter().table(ApiTokens::Table).drop_column(ApiTokens::BudgetPeriod).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(ApiTokens::Table).drop_column(ApiTokens::BudgetMicros).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Providers::Table).drop_column(Providers::BudgetPeriod).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Providers::Table).drop_column(Providers::BudgetMicros).to_owned(),
            )
            .await?;
        Ok(())
    }
}
