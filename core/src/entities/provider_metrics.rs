//! Per-minute rollup of requests, errors, latency, tokens and cost per provider and model.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "provider_metrics")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique together with `minute` and `model` (`uq_provider_metrics_provider_minute_model`).
    pub provider_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub model: String,
    pub minute: DateTimeUtc,
    #[sea_orm(default_value = 0)]
    pub requests: i64,
    #[sea_orm(default_value = 0)]
    pub errors: i64,
    pub latency_p50_ms: Option<i32>,
    pub latency_p95_ms: Option<i32>,
    pub ttft_p50_ms: Option<i32>,
    #[sea_orm(default_value = 0)]
    pub tokens_in: i64,
    #[sea_orm(default_value = 0)]
    pub tokens_out: i64,
    #[sea_orm(default_value = 0)]
    pub cost_micros: i64,
    /// `up` | `degraded` | `down`.
    #[sea_orm(column_type = "String(StringLen::N(16))", default_value = "up")]
    pub health: String,
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
