//! First-start providers from the environment: `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, ...,
//! `LOCAL_LLM_BASE_URL` (with an optional `LOCAL_LLM_API_KEY`), each with an optional
//! `<NAME>_BASE_URL`.
//!
//! Each seed runs once per database: a row in `provider_seeds` records it in the same transaction
//! that creates the provider, so a restart with other values, several instances starting together,
//! or an admin's later edits and deletions are never overridden.

use std::collections::BTreeMap;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::OnConflict,
};
use uuid::Uuid;

use super::{ProviderError, ProviderKind, ProviderService, caps_json, validate_base_url, validate_key};
use crate::{
    audit,
    entities::{provider_seeds, providers},
    secret::Secret,
};

/// What one start did with one seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeedOutcome {
    Created {
        name: String,
    },
    /// Seeded before (by this or another instance): left alone.
    AlreadySeeded {
        name: String,
    },
    /// A provider with the seed's name exists already (made by an admin): left alone, and the seed
    /// is recorded as done.
    NameInUse {
        name: String,
    },
    /// The environment value is unusable; the message names the variable (never the value of a key).
    Skipped {
        name: String,
        reason: String,
    },
}

impl ProviderService {
    /// Creates the providers the environment names, once each.
    ///
    /// # Errors
    /// A database error.
    pub async fn seed_from_env(
        &self,
        env: &BTreeMap<String, Secret<String>>,
    ) -> Result<Vec<SeedOutcome>, ProviderError> {
        let mut outcomes = Vec::new();
        for kind in ProviderKind::ALL {
            let (name, key_vars, base_var) = kind.seed_env();
            let key = key_vars.iter().find_map(|v| env.get(*v).map(|k| (*v, k)));
            let base = env.get(base_var);
            let wanted = if kind == ProviderKind::OpenAiCompatible { base.is_some() } else { key.is_some() };
            if !wanted {
                continue;
            }
            let base_url = match base.map(|b| validate_base_url(b.expose())).transpose() {
                Ok(b) => b.flatten(),
                Err(e) => {
                    outcomes
                        .push(SeedOutcome::Skipped { name: name.into(), reason: format!("{base_var}: {e}") });
                    continue;
                }
            };
            let key = match key
                .map(|(var, k)| validate_key(k.expose()).map_err(|e| format!("{var}: {e}")))
                .transpose()
            {
                Ok(k) => k,
                Err(reason) => {
                    outcomes.push(SeedOutcome::Skipped { name: name.into(), reason });
                    continue;
                }
            };
            outcomes.push(self.seed_one(kind, name, base_url, key).await?);
        }
        for o in &outcomes {
            match o {
                SeedOutcome::Created { name } => {
                    tracing::info!(provider = %name, "created a provider from the environment")
                }
                SeedOutcome::NameInUse { name } => tracing::warn!(
                    provider = %name,
                    "a provider with this name already exists; its environment key was not added"
                ),
                SeedOutcome::Skipped { name, reason } => {
                    tracing::warn!(provider = %name, %reason, "provider from the environment not created")
                }
                SeedOutcome::AlreadySeeded { .. } => {}
            }
        }
        Ok(outcomes)
    }

    async fn seed_one(
        &self,
        kind: ProviderKind,
        name: &str,
        base_url: Option<String>,
        key: Option<String>,
    ) -> Result<SeedOutcome, ProviderError> {
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        // The marker first: a second instance doing the same waits here and then finds it taken.
        let inserted = provider_seeds::Entity::insert(provider_seeds::ActiveModel {
            name: Set(name.to_string()),
            seeded_at: Set(now),
        })
        .on_conflict(OnConflict::column(provider_seeds::Column::Name).do_nothing().to_owned())
        .exec_without_returning(&txn)
        .await?;
        if inserted == 0 {
            txn.rollback().await?;
            return Ok(SeedOutcome::AlreadySeeded { name: name.into() });
        }
        if providers::Entity::find().filter(providers::Column::Name.eq(name)).one(&txn).await?.is_some() {
            txn.commit().await?;
            return Ok(SeedOutcome::NameInUse { name: name.into() });
        }
        let provider = providers::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(name.to_string()),
            kind: Set(kind.as_str().to_string()),
            base_url: Set(base_url),
            enabled: Set(true),
            priority: Set(100),
            capabilities: Set(caps_json(
                &kind.default_capabilities().iter().map(|c| (*c).to_string()).collect::<Vec<_>>(),
            )),
            created_at: Set(now),
            updated_at: Set(now),
            budget_micros: Set(None),
            budget_period: Set("month".into()),
        }
        .insert(&txn)
        .await?;
        if let Some(key) = key {
            self.key_row(None, provider.id, "from environment", &key, None).insert(&txn).await?;
        }
        audit::record(
            &txn,
            self.clock.as_ref(),
            audit::Event {
                action: "provider.seeded",
                target: Some(provider.id.to_string()),
                success: true,
                detail: serde_json::json!({ "name": name, "kind": kind.as_str() }),
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        Ok(SeedOutcome::Created { name: name.into() })
    }
}
