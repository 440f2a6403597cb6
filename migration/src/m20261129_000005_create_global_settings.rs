use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GlobalSettings {
    Table,
    Key,
    Value,
    UpdatedBy,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GlobalSettings::Table)
                    .col(string_len(GlobalSettings::Key, 128).primary_key())
                    .col(json(GlobalSettings::Value))
                    .col(uuid_null(GlobalSettings::UpdatedBy))
                    .col(timestamp_with_time_zone(GlobalSettings::UpdatedAt))
                    .foreign_key(&mut crate::fk(
                        "fk_global_settings_updated_by",
                        GlobalSettings::Table,
                        GlobalSettings::UpdatedBy,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(GlobalSettings::Table).to_owned()).await
    }
}
