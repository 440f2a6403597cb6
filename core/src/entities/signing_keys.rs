//! Keys that sign API tokens: one current, one standby, and retired ones that still verify.

use sea_orm::entity::prelude::*;

/// No `Serialize`: the row holds sealed key material.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// The JWT `kid`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "String(StringLen::N(64))")]
    pub id: String,
    /// `current` | `standby` | `retired`.
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub state: String,
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub algorithm: String,
    #[sea_orm(column_type = "Blob")]
    pub ciphertext: Vec<u8>,
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub enc_key_id: String,
    pub created_at: DateTimeUtc,
    pub promoted_at: Option<DateTimeUtc>,
    pub retired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
