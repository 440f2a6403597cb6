//! The audit log: who did what security-relevant thing, when, and whether it worked.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbErr};
use uuid::Uuid;

use crate::{clock::Clock, entities::audit_log};

/// One event to record. `reason` says why a failure failed; it must never hold a secret.
#[derive(Debug, Clone, Default)]
pub struct Event<'a> {
    pub actor: Option<Uuid>,
    pub action: &'a str,
    pub target: Option<String>,
    pub success: bool,
    pub reason: Option<String>,
    pub ip: Option<String>,
    pub detail: serde_json::Value,
}

/// Appends an event.
///
/// # Errors
/// When the row cannot be written.
pub async fn record(db: &impl ConnectionTrait, clock: &dyn Clock, e: Event<'_>) -> Result<(), DbErr> {
    let outcome = if e.success { "success" } else { "failure" };
    metrics::counter!("goblin_audit_events_total", "action" => e.action.to_string(), "outcome" => outcome)
        .increment(1);
    if e.action.starts_with("signin.") {
        metrics::counter!("goblin_passkey_signins_total", "outcome" => outcome).increment(1);
    }
    audit_log::ActiveModel {
        at: Set(clock.now()),
        actor_user_id: Set(e.actor),
        action: Set(e.action.to_string()),
        target: Set(e.target),
        outcome: Set(if e.success { "success" } else { "failure" }.to_string()),
        reason: Set(e.reason),
        ip: Set(e.ip),
        detail: Set(if e.detail.is_null() { serde_json::json!({}) } else { e.detail }),
        ..Default::default()
    }
    .insert(db)
    .await
    .map(|_| ())
}
