use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;
use super::m20261129_000002_create_providers::Providers;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum ProviderCredentials {
    Table,
    Id,
    ProviderId,
    Label,
    // AES-256-GCM nonce || ciphertext; never the plaintext.
    Ciphertext,
    // Id of the encryption key that sealed the ciphertext, for rotation.
    KeyId,
    // Display form such as `sk-...abcd`.
    Masked,
    Enabled,
    ExpiresAt,
    LastUsedAt,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProviderCredentials::Table)
                    .col(pk_uuid(ProviderCredentials::Id))
                    .col(uuid(ProviderCredentials::ProviderId))
                    .col(string_len(ProviderCredentials::Label, 64))
                    .col(blob(ProviderCredentials::Ciphertext))
                    .col(string_len(ProviderCredentials::KeyId, 64))
                    .col(string_len(ProviderCredentials::Masked, 32))
                    .col(boolean(ProviderCredentials::Enabled).default(true))
                    .col(timestamp_with_time_zone_null(ProviderCredentials::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ProviderCredentials::LastUsedAt))
                    .col(uuid_null(ProviderCredentials::CreatedBy))
                    .col(timestamp_with_time_zone(ProviderCredentials::CreatedAt))
                    .col(timestamp_with_time_zone(ProviderCredentials::UpdatedAt))
                    // A provider's keys go with it.
                    .foreign_key(&mut crate::fk(
                        "fk_provider_credentials_provider",
                        ProviderCredentials::Table,
                        ProviderCredentials::ProviderId,
                        Providers::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    // Keys outlive the account that added them.
                    .foreign_key(&mut crate::fk(
                        "fk_provider_credentials_created_by",
                        ProviderCredentials::Table,
                        ProviderCredentials::CreatedBy,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_provider_credentials_provider")
                    .table(ProviderCredentials::Table)
                    .col(ProviderCredentials::ProviderId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_provider_credentials_key_id")
                    .table(ProviderCredentials::Table)
                    .col(ProviderCredentials::KeyId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ProviderCredentials::Table).to_owned()).await
    }
}
