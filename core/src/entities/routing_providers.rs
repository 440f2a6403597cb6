//! Targets of a route alias: `chat-fast` -> (provider, model) with a weight and an order.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "routing_providers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Unique together with `provider_id` and `model` (`uq_routing_providers_alias_target`).
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub alias: String,
    pub provider_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub model: String,
    #[sea_orm(default_value = 1)]
    pub weight: i32,
    #[sea_orm(default_value = 0)]
    pub position: i32,
    #[sea_orm(default_value = true)]
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// A route target cannot point at a provider that is gone.
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
