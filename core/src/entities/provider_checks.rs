//! Results of "test connection" against a provider: the newest one is the provider's last check.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_checks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub provider_id: Uuid,
    pub credential_id: Option<Uuid>,
    pub ok: bool,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    /// The provider's own message (or ours for a timeout or refused connection), keys redacted.
    #[sea_orm(column_type = "String(StringLen::N(512))")]
    pub message: String,
    pub checked_by: Option<Uuid>,
    pub checked_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::providers::Entity",
        from = "Column::ProviderId",
        to = "super::providers::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Providers,
    #[sea_orm(
        belongs_to = "super::provider_credentials::Entity",
        from = "Column::CredentialId",
        to = "super::provider_credentials::Column::Id",
        on_update = "Cascade",
        on_delete = "SetNull"
    )]
    ProviderCredentials,
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CheckedBy",
        to = "super::users::Column::Id",
        on_update = "Cascade",
        on_delete = "SetNull"
    )]
    Users,
}

impl Related<super::providers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Providers.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
