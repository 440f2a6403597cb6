//! Console accounts: people and service identities, with their role and status.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(64))", unique)]
    pub username: String,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub display_name: String,
    /// `admin` | `operator` | `viewer`.
    #[sea_orm(column_type = "String(StringLen::N(16))", default_value = "viewer")]
    pub role: String,
    /// `active` | `disabled`.
    #[sea_orm(column_type = "String(StringLen::N(16))", default_value = "active")]
    pub status: String,
    #[sea_orm(default_value = false)]
    pub is_service: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::provider_credentials::Entity")]
    ProviderCredentials,
    #[sea_orm(has_many = "super::global_settings::Entity")]
    GlobalSettings,
    #[sea_orm(has_many = "super::routing_requests::Entity")]
    RoutingRequests,
    #[sea_orm(has_many = "super::tasks::Entity")]
    Tasks,
    #[sea_orm(has_many = "super::streams::Entity")]
    Streams,
    #[sea_orm(has_many = "super::search_collections::Entity")]
    SearchCollections,
}

impl Related<super::provider_credentials::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ProviderCredentials.def()
    }
}

impl Related<super::global_settings::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::GlobalSettings.def()
    }
}

impl Related<super::routing_requests::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RoutingRequests.def()
    }
}

impl Related<super::tasks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tasks.def()
    }
}

impl Related<super::streams::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Streams.def()
    }
}

impl Related<super::search_collections::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SearchCollections.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
