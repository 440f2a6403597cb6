use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A person's passkeys (many per user).
#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    // base64url of the credential id, as the browser reports it.
    CredentialId,
    // The stored passkey (public key and its parameters), as JSON.
    Passkey,
    SignCount,
    BackupEligible,
    BackupState,
    Transports,
    Name,
    CreatedAt,
    LastUsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .col(pk_uuid(Passkeys::Id))
                    .col(uuid(Passkeys::UserId))
                    .col(string_len_uniq(Passkeys::CredentialId, 512))
                    .col(json(Passkeys::Passkey))
                    .col(big_integer(Passkeys::SignCount).default(0))
                    .col(boolean(Passkeys::BackupEligible).default(false))
                    .col(boolean(Passkeys::BackupState).default(false))
                    .col(json(Passkeys::Transports))
                    .col(string_len(Passkeys::Name, 128))
                    .col(timestamp_with_time_zone(Passkeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(Passkeys::LastUsedAt))
                    .foreign_key(&mut crate::fk(
                        "fk_passkeys_user",
                        Passkeys::Table,
                        Passkeys::UserId,
                        Users::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_passkeys_user")
                    .table(Passkeys::Table)
                    .col(Passkeys::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Passkeys::Table).to_owned()).await
    }
}
