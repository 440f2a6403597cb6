use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One-time links: the first-run setup link (kind `setup`, role admin) and admins' invites.
/// Only a SHA-256 of the link's token is stored.
#[derive(DeriveIden)]
enum Invites {
    Table,
    Id,
    // setup | invite
    Kind,
    TokenHash,
    Role,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    UsedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Invites::Table)
                    .col(pk_uuid(Invites::Id))
                    .col(string_len(Invites::Kind, 16))
                    .col(string_len_uniq(Invites::TokenHash, 64))
                    .col(string_len(Invites::Role, 16))
                    .col(uuid_null(Invites::CreatedBy))
                    .col(timestamp_with_time_zone(Invites::CreatedAt))
                    .col(timestamp_with_time_zone(Invites::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Invites::UsedAt))
                    .col(uuid_null(Invites::UsedBy))
                    .foreign_key(&mut crate::fk(
                        "fk_invites_created_by",
                        Invites::Table,
                        Invites::CreatedBy,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .foreign_key(&mut crate::fk(
                        "fk_invites_used_by",
                        Invites::Table,
                        Invites::UsedBy,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Invites::Table).to_owned()).await
    }
}
