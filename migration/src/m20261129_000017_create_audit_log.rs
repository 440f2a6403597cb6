use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Security-relevant events: sign-ins, passkeys, invites, roles, tokens, key rotation.
#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    ActorUserId,
    // e.g. token.created, signin.failed, keys.rotate_jwt
    Action,
    // What it acted on, e.g. a token or user id.
    Target,
    // success | failure
    Outcome,
    Reason,
    Ip,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(uuid_null(AuditLog::ActorUserId))
                    .col(string_len(AuditLog::Action, 64))
                    .col(string_len_null(AuditLog::Target, 256))
                    .col(string_len(AuditLog::Outcome, 16))
                    .col(text_null(AuditLog::Reason))
                    .col(string_len_null(AuditLog::Ip, 64))
                    .col(json(AuditLog::Detail))
                    // The record outlives the account.
                    .foreign_key(&mut crate::fk(
                        "fk_audit_log_actor",
                        AuditLog::Table,
                        AuditLog::ActorUserId,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_audit_log_at").table(AuditLog::Table).col(AuditLog::At).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_action_at")
                    .table(AuditLog::Table)
                    .col(AuditLog::Action)
                    .col(AuditLog::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditLog::Table).to_owned()).await
    }
}
