//! One row per gateway request: the route taken, every attempt, status, latency, tokens and cost.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "routing_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created_at: DateTimeUtc,
    pub user_id: Option<Uuid>,
    pub token_id: Option<Uuid>,
    #[sea_orm(column_type = "String(StringLen::N(192))")]
    pub requested_model: String,
    #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
    pub route_alias: Option<String>,
    /// `[{provider_id, model, status, latency_ms, error}]`.
    #[sea_orm(column_type = "Json")]
    pub attempts: Json,
    pub provider_id: Option<Uuid>,
    #[sea_orm(column_type = "String(StringLen::N(128))", nullable)]
    pub model: Option<String>,
    #[sea_orm(default_value = false)]
    pub stream: bool,
    /// `ok` | `error` | `cancelled`.
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub status: String,
    pub http_status: i32,
    pub ttft_ms: Option<i32>,
    pub latency_ms: i32,
    #[sea_orm(default_value = 0)]
    pub tokens_in: i64,
    #[sea_orm(default_value = 0)]
    pub tokens_out: i64,
    #[sea_orm(default_value = 0)]
    pub cost_micros: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The request log is history: it outlives users and providers.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_update = "Cascade",
        on_delete = "SetNull"
    )]
    Users,
    #[sea_orm(
        belongs_to = "super::providers::Entity",
        from = "Column::ProviderId",
        to = "super::providers::Column::Id",
        on_update = "Cascade",
        on_delete = "SetNull"
    )]
    Providers,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl Related<super::providers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Providers.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
