//! What a model name means: the routing table (an in-memory snapshot of providers, keys, models, route
//! aliases and policies, reloaded on a short interval) and the ordered list of targets to try.
//!
//! A model name is a route alias (`chat-fast`), `provider/model` (`openai/gpt-4o-mini`), or a bare model
//! that one or more providers serve (`gpt-4o-mini`, tried in provider priority order).

use std::{collections::HashMap, sync::Arc};

use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::{
    crypto::{Keyring, Sealed},
    entities::{
        api_tokens, model_configs, provider_credentials, provider_policies, providers, routing_providers,
    },
    gateway::budget::{Limit, Period},
    providers::{ProviderKind, caps_of, effective_base_url, key_label},
    secret::Secret,
};

/// One opened key: (credential id, key, expires at).
pub type KeyEntry = (Uuid, Secret<String>, Option<chrono::DateTime<chrono::Utc>>);

/// A provider as the request path sees it: enabled, with its usable keys opened.
#[derive(Debug)]
pub struct ProviderEntry {
    pub id: Uuid,
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    /// `{base_url}/chat/completions`, parsed once: the upstream URL of every OpenAI-compatible chat
    /// completion. `None` when it does not parse (the request then fails as it would anyway).
    pub chat_completions_url: Option<url::Url>,
    pub capabilities: Vec<String>,
    pub priority: i32,
    pub keys: Vec<KeyEntry>,
    pub budget: Option<Limit>,
}

#[derive(Clone, Debug)]
pub struct ModelEntry {
    pub provider_id: Uuid,
    pub model_id: String,
    pub capabilities: Vec<String>,
    pub price_in: i64,
    pub price_out: i64,
}

#[derive(Clone, Debug)]
pub struct AliasTarget {
    pub provider_id: Uuid,
    pub model: String,
    pub weight: i32,
    pub position: i32,
}

/// One place to send a request.
#[derive(Clone, Debug)]
pub struct Target {
    pub provider: Arc<ProviderEntry>,
    pub model: String,
    pub weight: i32,
    /// Micro-USD per million tokens (0 when unknown).
    pub price_in: i64,
    pub price_out: i64,
}

#[derive(Debug, Default)]
pub struct Table {
    pub providers: HashMap<Uuid, Arc<ProviderEntry>>,
    pub by_name: HashMap<String, Uuid>,
    pub models: Vec<ModelEntry>,
    pub aliases: HashMap<String, Vec<AliasTarget>>,
    pub policies: HashMap<String, provider_policies::Model>,
    /// Budgets of API tokens that have one (and are not revoked).
    pub token_budgets: HashMap<Uuid, Limit>,
}

impl Table {
    /// Reads everything the request path needs. Keys that cannot be opened are left out (and logged).
    ///
    /// # Errors
    /// A database error.
    pub async fn load(db: &DatabaseConnection, keyring: &Keyring) -> Result<Table, DbErr> {
        let mut t = Table::default();
        let rows = providers::Entity::find().filter(providers::Column::Enabled.eq(true)).all(db).await?;
        let creds = provider_credentials::Entity::find()
            .filter(provider_credentials::Column::Enabled.eq(true))
            .order_by_asc(provider_credentials::Column::CreatedAt)
            .all(db)
            .await?;
        for p in rows {
            let Ok(kind) = p.kind.parse::<ProviderKind>() else { continue };
            let Some(base_url) = effective_base_url(&p) else { continue };
            let keys = creds
                .iter()
                .filter(|c| c.provider_id == p.id)
                .filter_map(|c| {
                    let sealed = Sealed { key_id: c.key_id.clone(), bytes: c.ciphertext.clone() };
                    match keyring.open(&key_label(c.id), &sealed) {
                        Ok(k) => String::from_utf8(k.expose().clone()).ok().map(|k| (c.id, Secret::new(k), c.expires_at)),
                        Err(e) => {
                            tracing::error!(credential = %c.id, error = %e, "a provider key could not be opened");
                            None
                        }
                    }
                })
                .collect();
            t.by_name.insert(p.name.clone(), p.id);
            t.providers.insert(
                p.id,
                Arc::new(ProviderEntry {
                    id: p.id,
                    name: p.name,
                    kind,
                    chat_completions_url: url::Url::parse(&format!("{base_url}/chat/completions")).ok(),
                    base_url,
                    capabilities: caps_of(&p.capabilities),
                    priority: p.priority,
                    keys,
                    budget: p
                        .budget_micros
                        .map(|micros| Limit { micros, period: Period::parse(&p.budget_period) }),
                }),
            );
        }
        t.models = model_configs::Entity::find()
            .all(db)
            .await?
            .into_iter()
            .filter(|m| t.providers.contains_key(&m.provider_id))
            .map(|m| ModelEntry {
                provider_id: m.provider_id,
                capabilities: caps_of(&m.capabilities),
                model_id: m.model_id,
                price_in: m.price_in_micros_per_mtok,
                price_out: m.price_out_micros_per_mtok,
            })
            .collect();
        for r in routing_providers::Entity::find()
            .filter(routing_providers::Column::Enabled.eq(true))
            .order_by_asc(routing_providers::Column::Position)
            .all(db)
            .await?
        {
            t.aliases.entry(r.alias).or_default().push(AliasTarget {
                provider_id: r.provider_id,
                model: r.model,
                weight: r.weight,
                position: r.position,
            });
        }
        for p in provider_policies::Entity::find().all(db).await? {
            t.policies.insert(p.route_alias.clone(), p);
        }
        for tok in api_tokens::Entity::find()
            .filter(api_tokens::Column::BudgetMicros.is_not_null())
            .filter(api_tokens::Column::RevokedAt.is_null())
            .all(db)
            .await?
        {
            if let Some(micros) = tok.budget_micros {
                t.token_budgets.insert(tok.id, Limit { micros, period: Period::parse(&tok.budget_period) });
            }
        }
        Ok(t)
    }

    fn price(&self, provider_id: Uuid, model: &str) -> (i64, i64) {
        self.models
            .iter()
            .find(|m| m.provider_id == provider_id && m.model_id == model)
            .map_or((0, 0), |m| (m.price_in, m.price_out))
    }

    fn target(&self, provider_id: Uuid, model: &str, weight: i32) -> Option<Target> {
        let provider = self.providers.get(&provider_id)?.clone();
        let (price_in, price_out) = self.price(provider_id, model);
        Some(Target { provider, model: model.to_string(), weight, price_in, price_out })
    }

    /// The targets for `name` serving `capability`, in the table's own order (alias position, or
    /// provider priority), and the alias when `name` is one. `None` when nothing serves it.
    pub fn resolve(&self, name: &str, capability: &str) -> Option<(Option<String>, Vec<Target>)> {
        let serves = |t: &Target| t.provider.capabilities.iter().any(|c| c == capability);
        if let Some(targets) = self.aliases.get(name) {
            let list: Vec<Target> = targets
                .iter()
                .filter_map(|a| self.target(a.provider_id, &a.model, a.weight))
                .filter(serves)
                .collect();
            return Some((Some(name.to_string()), list));
        }
        if let Some((provider, model)) = name.split_once('/')
            && let Some(id) = self.by_name.get(provider)
            && !model.is_empty()
        {
            return Some((None, self.target(*id, model, 1).filter(serves).into_iter().collect()));
        }
        let mut list: Vec<Target> = self
            .models
            .iter()
            .filter(|m| m.model_id == name && m.capabilities.iter().any(|c| c == capability))
            .filter_map(|m| self.target(m.provider_id, &m.model_id, 1))
            .filter(serves)
            .collect();
        if list.is_empty() {
            return None;
        }
        list.sort_by(|a, b| {
            (a.provider.priority, &a.provider.name).cmp(&(b.provider.priority, &b.provider.name))
        });
        Some((None, list))
    }

    /// Every name a caller may use for `capability`: aliases, `provider/model`, and bare models.
    pub fn model_names(&self, capability: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (alias, targets) in &self.aliases {
            let usable = |a: &AliasTarget| {
                self.target(a.provider_id, &a.model, 1).is_some_and(|t| {
                    capability == "*" || t.provider.capabilities.iter().any(|c| c == capability)
                })
            };
            if targets.iter().any(usable) {
                out.push((alias.clone(), "goblin".to_string()));
            }
        }
        for m in &self.models {
            let Some(p) = self.providers.get(&m.provider_id) else { continue };
            if !m.capabilities.iter().any(|c| c == capability) && capability != "*" {
                continue;
            }
            out.push((format!("{}/{}", p.name, m.model_id), p.name.clone()));
            if !out.iter().any(|(n, _)| *n == m.model_id) {
                out.push((m.model_id.clone(), p.name.clone()));
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}
