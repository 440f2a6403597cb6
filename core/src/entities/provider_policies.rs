//! Routing policy of one route alias (or `*` for the default): strategy, retries, breaker, budget.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

// No `Eq`: `breaker_error_rate` is an `f64`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "provider_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(64))", unique)]
    pub route_alias: String,
    /// `priority` | `weighted` | `latency` | `cost` | `score`.
    #[sea_orm(column_type = "String(StringLen::N(16))", default_value = "priority")]
    pub strategy: String,
    /// e.g. `{"latency": 0.4, "cost": 0.3, "reliability": 0.2, "bandwidth": 0.1}`.
    #[sea_orm(column_type = "Json")]
    pub score_weights: Json,
    #[sea_orm(default_value = 1)]
    pub max_retries: i32,
    #[sea_orm(default_value = 100)]
    pub retry_backoff_ms: i32,
    #[sea_orm(default_value = 30_000)]
    pub attempt_timeout_ms: i32,
    #[sea_orm(default_value = 120_000)]
    pub deadline_ms: i32,
    #[sea_orm(default_value = true)]
    pub fallback_enabled: bool,
    #[sea_orm(default_value = 5)]
    pub breaker_failure_threshold: i32,
    #[sea_orm(column_type = "Double", default_value = 0.5)]
    pub breaker_error_rate: f64,
    #[sea_orm(default_value = 60)]
    pub breaker_window_s: i32,
    #[sea_orm(default_value = 30)]
    pub breaker_cooldown_s: i32,
    pub budget_micros: Option<i64>,
    /// `day` | `week` | `month`.
    #[sea_orm(column_type = "String(StringLen::N(8))", default_value = "month")]
    pub budget_period: String,
    /// `refuse` | `cheaper`.
    #[sea_orm(column_type = "String(StringLen::N(8))", default_value = "refuse")]
    pub budget_action: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
