//! Models offered by each provider, with capabilities, context window, prices and default params.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "model_configs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Unique together with `model_id` (`uq_model_configs_provider_model`).
    pub provider_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub model_id: String,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub display_name: String,
    #[sea_orm(column_type = "Json")]
    pub capabilities: Json,
    pub context_window: Option<i32>,
    /// Micro-USD per million input tokens.
    #[sea_orm(default_value = 0)]
    pub price_in_micros_per_mtok: i64,
    /// Micro-USD per million output tokens.
    #[sea_orm(default_value = 0)]
    pub price_out_micros_per_mtok: i64,
    #[sea_orm(column_type = "Json")]
    pub default_params: Json,
    #[sea_orm(default_value = false)]
    pub is_default: bool,
    /// Set once an admin edits the row, so "sync models" leaves it alone.
    #[sea_orm(default_value = false)]
    pub edited: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
}

impl Related<super::providers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Providers.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
