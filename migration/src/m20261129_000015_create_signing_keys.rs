use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Keys that sign API tokens. Exactly one `current` and one `standby`; `retired` keys still verify
/// tokens they signed until those expire. The key material is sealed with the encryption key.
#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    // The JWT `kid`.
    Id,
    // current | standby | retired
    State,
    Algorithm,
    // AES-256-GCM nonce || ciphertext of the key bytes.
    Ciphertext,
    // Id of the encryption key that sealed it.
    EncKeyId,
    CreatedAt,
    PromotedAt,
    RetiredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string_len(SigningKeys::Id, 64).primary_key())
                    .col(string_len(SigningKeys::State, 16))
                    .col(string_len(SigningKeys::Algorithm, 16))
                    .col(blob(SigningKeys::Ciphertext))
                    .col(string_len(SigningKeys::EncKeyId, 64))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(SigningKeys::PromotedAt))
                    .col(timestamp_with_time_zone_null(SigningKeys::RetiredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_signing_keys_state")
                    .table(SigningKeys::Table)
                    .col(SigningKeys::State)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SigningKeys::Table).to_owned()).await
    }
}
