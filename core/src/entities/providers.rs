//! Configured AI providers (OpenAI, Anthropic, OpenAI-compatible, ...) and their routing priority.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "providers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(64))", unique)]
    pub name: String,
    /// `openai` | `anthropic` | `gemini` | `deepseek` | `grok` | `siliconflow` | `moonshot` |
    /// `elevenlabs` | `openai-compatible`.
    #[sea_orm(column_type = "String(StringLen::N(32))")]
    pub kind: String,
    pub base_url: Option<String>,
    #[sea_orm(default_value = true)]
    pub enabled: bool,
    #[sea_orm(default_value = 100)]
    pub priority: i32,
    /// e.g. `["chat", "embeddings", "speech"]`.
    #[sea_orm(column_type = "Json")]
    pub capabilities: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Spend limit in micro-USD per `budget_period`; none when empty.
    pub budget_micros: Option<i64>,
    /// `day` | `week` | `month`.
    #[sea_orm(column_type = "String(StringLen::N(8))", default_value = "month")]
    pub budget_period: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::provider_credentials::Entity")]
    ProviderCredentials,
    #[sea_orm(has_many = "super::model_configs::Entity")]
    ModelConfigs,
    #[sea_orm(has_many = "super::routing_providers::Entity")]
    RoutingProviders,
    #[sea_orm(has_many = "super::provider_metrics::Entity")]
    ProviderMetrics,
    #[sea_orm(has_many = "super::routing_requests::Entity")]
    RoutingRequests,
    #[sea_orm(has_many = "super::streams::Entity")]
    Streams,
}

impl Related<super::provider_credentials::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ProviderCredentials.def()
    }
}

impl Related<super::model_configs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ModelConfigs.def()
    }
}

impl Related<super::routing_providers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RoutingProviders.def()
    }
}

impl Related<super::provider_metrics::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ProviderMetrics.def()
    }
}

impl Related<super::routing_requests::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RoutingRequests.def()
    }
}

impl Related<super::streams::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Streams.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
