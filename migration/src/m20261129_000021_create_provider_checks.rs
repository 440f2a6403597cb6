use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;
use super::m20261129_000002_create_providers::Providers;
use super::m20261129_000003_create_provider_credentials::ProviderCredentials;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One "test connection" against a provider (with one of its keys, or none for keyless local
/// servers): whether it worked, how long it took, and the provider's own message with keys redacted.
#[derive(DeriveIden)]
enum ProviderChecks {
    Table,
    Id,
    ProviderId,
    CredentialId,
    Ok,
    // The upstream HTTP status, when there was a response.
    StatusCode,
    LatencyMs,
    Message,
    CheckedBy,
    CheckedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProviderChecks::Table)
                    .col(pk_uuid(ProviderChecks::Id))
                    .col(uuid(ProviderChecks::ProviderId))
                    .col(uuid_null(ProviderChecks::CredentialId))
                    .col(boolean(ProviderChecks::Ok))
                    .col(integer_null(ProviderChecks::StatusCode))
                    .col(integer(ProviderChecks::LatencyMs))
                    .col(string_len(ProviderChecks::Message, 512))
                    .col(uuid_null(ProviderChecks::CheckedBy))
                    .col(timestamp_with_time_zone(ProviderChecks::CheckedAt))
                    // Checks are history of the provider and go with it.
                    .foreign_key(&mut crate::fk(
                        "fk_provider_checks_provider",
                        ProviderChecks::Table,
                        ProviderChecks::ProviderId,
                        Providers::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    // A deleted key leaves its past checks, unattributed.
                    .foreign_key(&mut crate::fk(
                        "fk_provider_checks_credential",
                        ProviderChecks::Table,
                        ProviderChecks::CredentialId,
                        ProviderCredentials::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .foreign_key(&mut crate::fk(
                        "fk_provider_checks_checked_by",
                        ProviderChecks::Table,
                        ProviderChecks::CheckedBy,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_provider_checks_provider_at")
                    .table(ProviderChecks::Table)
                    .col(ProviderChecks::ProviderId)
                    .col(ProviderChecks::CheckedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ProviderChecks::Table).to_owned()).await
    }
}
