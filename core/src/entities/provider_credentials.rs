//! Encrypted provider API keys (AES-256-GCM nonce || ciphertext, never the plaintext).

use sea_orm::entity::prelude::*;

/// Deliberately not `Serialize`: the row holds key ciphertext and must never reach an API body.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub provider_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub label: String,
    /// AES-256-GCM nonce || ciphertext.
    #[sea_orm(column_type = "Blob")]
    pub ciphertext: Vec<u8>,
    /// Id of the encryption key that sealed `ciphertext`, for rotation.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub key_id: String,
    /// Display form such as `sk-...abcd`.
    #[sea_orm(column_type = "String(StringLen::N(32))")]
    pub masked: String,
    #[sea_orm(default_value = true)]
    pub enabled: bool,
    pub expires_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// A provider's keys go with it.
    #[sea_orm(
        belongs_to = "super::providers::Entity",
        from = "Column::ProviderId",
        to = "super::providers::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Providers,
    /// Keys outlive the account that added them.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CreatedBy",
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

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
