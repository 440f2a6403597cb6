//! API tokens: JWTs (HS256) signed by the current signing key and carrying its `kid`.
//!
//! ```text
//!   issue:   row in api_tokens (jti, user, scopes, expiry) -> JWT {sub, jti, scopes, iat, exp}, kid
//!   verify:  kid -> signing key (current, standby or retired) -> signature -> expiry (clock)
//!            -> api_tokens row (unknown or revoked: refused) -> user active -> scope
//!   rotate:  current -> retired (still verifies until its tokens expire), standby -> current,
//!            a new standby; one transaction
//! ```
//!
//! There is always a standby key, so a rotation never has to create and use a key in one step. Keys
//! are stored sealed by the [`Keyring`]; the token itself is never stored, only its id.

use std::{collections::HashMap, sync::Arc};

use aes_gcm::aead::{OsRng, rand_core::RngCore};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DbErr, EntityTrait, QueryFilter, QueryOrder, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::{
    audit,
    clock::SharedClock,
    crypto::{CryptoError, Keyring, Sealed},
    entities::{api_tokens, signing_keys, users},
    secret::Secret,
};

/// Scopes a token can carry.
pub const SCOPES: &[&str] = &["chat", "tasks:run", "search", "admin"];
const ISSUER: &str = "goblin";
const ALG: &str = "HS256";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    jti: String,
    scopes: Vec<String>,
    iat: i64,
    exp: i64,
}

/// Why a token was refused. Messages are safe to show the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was signed with a key this server does not know")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token expired at {0}")]
    Expired(DateTime<Utc>),
    #[error("the token was revoked")]
    Revoked,
    #[error("the token is not known to this server")]
    UnknownToken,
    #[error("the token's user is disabled or gone")]
    UserDisabled,
    #[error("the token lacks the '{0}' scope")]
    MissingScope(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TokenServiceError {
    #[error("unknown scope '{0}'; scopes are chat, tasks:run, search and admin")]
    UnknownScope(String),
    #[error("a token needs at least one scope")]
    NoScopes,
    #[error("the lifetime must be between 1 minute and 3650 days")]
    BadTtl,
    #[error("the token name must be 1 to 128 characters")]
    BadName,
    #[error("service accounts and active users only: '{0}' cannot own tokens")]
    UserNotActive(String),
    #[error("no API token with id {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("signing failed")]
    Signing,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub token_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub expires_at: DateTime<Utc>,
}

/// What [`TokenService::verify`] reads of a stored token and its owner (none when the owner is gone).
#[derive(Clone)]
struct TokenRow {
    user_id: Uuid,
    kid: String,
    scopes: serde_json::Value,
    revoked: bool,
    username: Option<String>,
    role: Option<String>,
    status: Option<String>,
}

/// A newly issued token: shown once, never stored.
#[derive(Debug)]
pub struct Issued {
    pub id: Uuid,
    pub token: Secret<String>,
    pub kid: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub retired: String,
    pub current: String,
    pub standby: String,
}

/// Parses a lifetime such as `30d`, `12h`, `45m`.
///
/// # Errors
/// [`TokenServiceError::BadTtl`] for anything else or out of range.
pub fn parse_ttl(s: &str) -> Result<Duration, TokenServiceError> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| TokenServiceError::BadTtl)?;
    let d = match unit {
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" | "" => Duration::try_days(n),
        _ => return Err(TokenServiceError::BadTtl),
    }
    .ok_or(TokenServiceError::BadTtl)?;
    if d < Duration::minutes(1) || d > Duration::days(3650) {
        return Err(TokenServiceError::BadTtl);
    }
    Ok(d)
}

pub struct TokenService {
    db: DatabaseConnection,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    /// Decrypted signing keys by kid; refreshed from the database on an unknown kid.
    cache: RwLock<HashMap<String, Arc<Secret<Vec<u8>>>>>,
    rows: RowCache,
    checked: SignedCache,
}

/// Tokens whose signature and claims were checked, so a busy token is not decoded and its HMAC
/// recomputed on every request. A signing key never changes once made, and a retired key still
/// verifies, so a token whose signature verified once always verifies; what can change (the expiry
/// against the clock, the stored row: revocation, owner, scopes) is still checked on every request.
/// Keyed by the whole token, so only the exact string that verified is trusted; only tokens with a
/// valid signature get in.
#[derive(Default)]
struct SignedCache {
    entries: std::sync::RwLock<crate::FastMap<Box<str>, Arc<SignedToken>>>,
}

/// What a verified token says.
struct SignedToken {
    kid: String,
    id: Uuid,
    sub: String,
    expires_at: DateTime<Utc>,
}

/// More verified tokens than this clears the cache.
const MAX_CACHED_TOKENS: usize = 10_000;

impl SignedCache {
    fn get(&self, token: &str) -> Option<Arc<SignedToken>> {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(token).cloned()
    }

    fn put(&self, token: &str, signed: Arc<SignedToken>) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_CACHED_TOKENS {
            entries.clear();
        }
        entries.insert(token.into(), signed);
    }
}

/// Recently read token rows, so a busy API token costs one database read every few seconds instead
/// of one a request, and keeps working while the database is briefly unreachable.
///
/// - An entry is used for `fresh` after it was read; then it is read again.
/// - When that read fails (the database is down), an entry up to [`STALE_LIMIT`] old is used
///   instead: a revocation cannot be written during an outage either.
/// - A revocation or a change to a user's role or status clears the cache at once on the instance
///   that made it, and through Redis (when configured) on every other instance; without Redis,
///   other instances see it within `fresh`.
struct RowCache {
    fresh: std::time::Duration,
    entries: std::sync::RwLock<crate::FastMap<Uuid, CachedRow>>,
    /// Bumped by every clearing: a read that started before one is not cached.
    generation: std::sync::atomic::AtomicU64,
    /// When a read last failed: for a second after, cached rows are used without trying again, so
    /// an outage does not make every request wait for the database's timeout.
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
    redis: Option<Arc<crate::redis_store::RedisHandle>>,
}

struct CachedRow {
    row: TokenRow,
    read_at: std::time::Instant,
}

/// The oldest cached row used while the database cannot be read.
const STALE_LIMIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// More cached rows than this clears the cache (only valid, signed tokens get in).
const MAX_CACHED_ROWS: usize = 100_000;

/// The Redis channel on which instances tell each other to clear their token caches.
pub const CHANGES_CHANNEL: &str = "goblin:tokens:changed";

/// How long a token row is trusted by default before it is read again.
pub const DEFAULT_ROW_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

impl RowCache {
    fn get(&self, id: Uuid, max_age: std::time::Duration) -> Option<TokenRow> {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(&id).filter(|c| c.read_at.elapsed() < max_age).map(|c| c.row.clone())
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn put(&self, id: Uuid, row: TokenRow, read_since: u64) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Checked under the lock: a clearing between the read and now would otherwise be undone.
        if self.generation() != read_since {
            return;
        }
        if entries.len() >= MAX_CACHED_ROWS {
            entries.clear();
        }
        entries.insert(id, CachedRow { row, read_at: std::time::Instant::now() });
    }

    fn failed(&self) {
        *self.failed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::time::Instant::now());
    }

    fn failed_recently(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
    }

    fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        entries.clear();
    }
}

/// What a signing key is sealed as (see [`crate::crypto`]).
pub fn label(kid: &str) -> String {
    format!("signing_key:{kid}")
}

fn new_kid() -> String {
    format!("jwt-{}", Uuid::new_v4().simple())
}

impl TokenService {
    pub fn new(db: DatabaseConnection, keyring: Arc<Keyring>, clock: SharedClock) -> Self {
        Self {
            db,
            keyring,
            clock,
            cache: RwLock::new(HashMap::new()),
            rows: RowCache {
                fresh: DEFAULT_ROW_CACHE,
                entries: std::sync::RwLock::new(crate::FastMap::default()),
                generation: std::sync::atomic::AtomicU64::new(0),
                failed_at: std::sync::Mutex::new(None),
                redis: None,
            },
            checked: SignedCache::default(),
        }
    }

    /// Trusts a token row read from the database for `fresh` (zero reads it on every request), and
    /// shares clearings with the other instances through `redis`. Call
    /// [`TokenService::spawn_change_listener`] to hear theirs.
    #[must_use]
    pub fn with_row_cache(
        mut self,
        fresh: std::time::Duration,
        redis: Option<Arc<crate::redis_store::RedisHandle>>,
    ) -> Self {
        self.rows.fresh = fresh;
        self.rows.redis = redis;
        self
    }

    /// Forgets every cached token row, here and (through Redis) on every other instance. Called after
    /// a revocation and whenever a user's role or status changes. A failure to reach Redis is logged:
    /// the other instances then see the change within their freshness time.
    pub async fn forget_cached(&self) {
        self.rows.clear();
        let Some(redis) = &self.rows.redis else { return };
        let published = async {
            let mut conn = redis.connection().await.map_err(|e| e.to_string())?;
            redis::cmd("PUBLISH")
                .arg(CHANGES_CHANNEL)
                .arg("clear")
                .query_async::<i64>(&mut conn)
                .await
                .map_err(|e| format!("{:?}", e.kind()))
        };
        match tokio::time::timeout(crate::redis_store::REDIS_TIMEOUT, published).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not tell other instances to drop cached tokens"),
            Err(_) => tracing::warn!("could not tell other instances to drop cached tokens: Redis timed out"),
        }
    }

    /// Listens on Redis for other instances' clearings and clears this cache on each, until the
    /// service is dropped. While the subscription is down the cache is cleared and kept empty only
    /// by age, so a lost message can leave a row in use for at most its freshness time.
    pub fn spawn_change_listener(self: &Arc<Self>) {
        let Some(redis) = self.rows.redis.clone() else { return };
        let service = Arc::downgrade(self);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut delay = std::time::Duration::from_millis(250);
            loop {
                match redis.pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(CHANGES_CHANNEL).await {
                        Ok(()) => {
                            delay = std::time::Duration::from_millis(250);
                            // Anything said while the subscription was down is unknown.
                            let Some(s) = service.upgrade() else { return };
                            s.rows.clear();
                            drop(s);
                            let mut messages = pubsub.on_message();
                            while messages.next().await.is_some() {
                                let Some(s) = service.upgrade() else { return };
                                s.rows.clear();
                            }
                            tracing::warn!("lost the Redis subscription for token changes; reconnecting");
                        }
                        Err(e) => tracing::warn!(error = ?e.kind(), "could not subscribe to token changes"),
                    },
                    Err(e) => tracing::debug!(error = %e, "Redis is unreachable for token changes"),
                }
                if service.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
            }
        });
    }

    fn new_key_row(&self, state: &str) -> signing_keys::ActiveModel {
        let kid = new_kid();
        let mut secret = vec![0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let sealed = self.keyring.seal(&label(&kid), &secret);
        let now = self.clock.now();
        signing_keys::ActiveModel {
            id: Set(kid),
            state: Set(state.to_string()),
            algorithm: Set(ALG.to_string()),
            ciphertext: Set(sealed.bytes),
            enc_key_id: Set(sealed.key_id),
            created_at: Set(now),
            promoted_at: Set((state == "current").then_some(now)),
            retired_at: Set(None),
        }
    }

    /// Makes sure there is a current and a standby key. Called at start-up.
    ///
    /// # Errors
    /// A database error.
    pub async fn ensure_keys(&self) -> Result<(), TokenServiceError> {
        let txn = self.db.begin().await?;
        for state in ["current", "standby"] {
            let exists = signing_keys::Entity::find()
                .filter(signing_keys::Column::State.eq(state))
                .one(&txn)
                .await?
                .is_some();
            if !exists {
                self.new_key_row(state).insert(&txn).await?;
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// The key that signs new tokens (the oldest `current`, should two instances have raced to make
    /// one at first start).
    async fn current_key(&self) -> Result<(String, Arc<Secret<Vec<u8>>>), TokenServiceError> {
        let row = signing_keys::Entity::find()
            .filter(signing_keys::Column::State.eq("current"))
            .order_by_asc(signing_keys::Column::CreatedAt)
            .one(&self.db)
            .await?;
        let row = match row {
            Some(r) => r,
            None => {
                self.ensure_keys().await?;
                return Box::pin(self.current_key()).await;
            }
        };
        let secret = self.open_row(&row)?;
        Ok((row.id, secret))
    }

    fn open_row(&self, row: &signing_keys::Model) -> Result<Arc<Secret<Vec<u8>>>, CryptoError> {
        let sealed = Sealed { key_id: row.enc_key_id.clone(), bytes: row.ciphertext.clone() };
        Ok(Arc::new(self.keyring.open(&label(&row.id), &sealed)?))
    }

    async fn key_for(&self, kid: &str) -> Result<Option<Arc<Secret<Vec<u8>>>>, TokenServiceError> {
        if let Some(k) = self.cache.read().await.get(kid) {
            return Ok(Some(k.clone()));
        }
        let Some(row) = signing_keys::Entity::find_by_id(kid.to_string()).one(&self.db).await? else {
            return Ok(None);
        };
        let key = self.open_row(&row)?;
        self.cache.write().await.insert(kid.to_string(), key.clone());
        Ok(Some(key))
    }

    /// Issues a token for `user` and records it. The returned token is the only copy.
    ///
    /// # Errors
    /// Unknown scopes, a bad lifetime or name, an inactive user, or a database error.
    pub async fn issue(
        &self,
        user: &users::Model,
        name: &str,
        scopes: &[String],
        ttl: Duration,
        actor: Option<Uuid>,
    ) -> Result<Issued, TokenServiceError> {
        self.issue_with_budget(user, name, scopes, ttl, None, actor).await
    }

    /// [`TokenService::issue`] with a spend budget: `(micro-USD, "day" | "week" | "month")`, as
    /// [`crate::gateway::budget::parse`] gives it. The gateway refuses the token's requests with 429
    /// once the period's spend reaches it.
    ///
    /// # Errors
    /// As [`TokenService::issue`].
    pub async fn issue_with_budget(
        &self,
        user: &users::Model,
        name: &str,
        scopes: &[String],
        ttl: Duration,
        budget: Option<(i64, String)>,
        actor: Option<Uuid>,
    ) -> Result<Issued, TokenServiceError> {
        if name.is_empty() || name.chars().count() > 128 {
            return Err(TokenServiceError::BadName);
        }
        if scopes.is_empty() {
            return Err(TokenServiceError::NoScopes);
        }
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(TokenServiceError::UnknownScope(bad.clone()));
        }
        if ttl < Duration::minutes(1) || ttl > Duration::days(3650) {
            return Err(TokenServiceError::BadTtl);
        }
        if user.status != "active" {
            return Err(TokenServiceError::UserNotActive(user.username.clone()));
        }
        let (kid, secret) = self.current_key().await?;
        let now = self.clock.now();
        let expires_at = now + ttl;
        let id = Uuid::new_v4();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: user.id.to_string(),
            jti: id.to_string(),
            scopes: scopes.to_vec(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let key = EncodingKey::from_secret(secret.expose()).map_err(|_| TokenServiceError::Signing)?;
        let token = jsonwebtoken::encode(&header, &claims, &key).map_err(|_| TokenServiceError::Signing)?;

        let txn = self.db.begin().await?;
        api_tokens::ActiveModel {
            id: Set(id),
            user_id: Set(user.id),
            name: Set(name.to_string()),
            scopes: Set(serde_json::json!(scopes)),
            kid: Set(kid.clone()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
            last_used_at: Set(None),
            budget_micros: Set(budget.as_ref().map(|b| b.0)),
            budget_period: Set(budget.as_ref().map_or_else(|| "month".to_string(), |b| b.1.clone())),
        }
        .insert(&txn)
        .await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            audit::Event {
                actor,
                action: "token.created",
                target: Some(id.to_string()),
                success: true,
                detail: serde_json::json!({
                    "user": user.username, "name": name, "scopes": scopes, "expires_at": expires_at,
                    "budget_micros": budget.as_ref().map(|b| b.0),
                    "budget_period": budget.as_ref().map(|b| b.1.clone()),
                }),
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        Ok(Issued { id, token: Secret::new(token), kid, expires_at })
    }

    /// Checks a token and, when given, that it carries `scope` (`admin` implies every scope).
    ///
    /// # Errors
    /// [`TokenError`] says why it was refused; `Err(Err(_))` is a server-side failure.
    pub async fn verify(
        &self,
        token: &str,
        scope: Option<&str>,
    ) -> Result<Result<Verified, TokenError>, TokenServiceError> {
        let signed = match self.checked.get(token) {
            Some(signed) => signed,
            None => match self.check_signature(token).await? {
                Ok(signed) => {
                    let signed = Arc::new(signed);
                    self.checked.put(token, signed.clone());
                    signed
                }
                Err(e) => return Ok(Err(e)),
            },
        };
        let SignedToken { kid, id, sub, expires_at } = &*signed;
        let (id, expires_at) = (*id, *expires_at);
        let now = self.clock.now();
        if now >= expires_at {
            return Ok(Err(TokenError::Expired(expires_at)));
        }
        let Some(row) = self.cached_token_row(id).await? else {
            return Ok(Err(TokenError::UnknownToken));
        };
        if row.revoked {
            return Ok(Err(TokenError::Revoked));
        }
        if row.user_id.hyphenated().encode_lower(&mut Uuid::encode_buffer()) != sub.as_str()
            || row.kid != *kid
        {
            return Ok(Err(TokenError::UnknownToken));
        }
        let (Some(username), Some(role), Some("active")) = (row.username, row.role, row.status.as_deref())
        else {
            return Ok(Err(TokenError::UserDisabled));
        };
        // Scopes come from the stored row, which is the authority; the claim is informational. The
        // admin scope holds only while its owner is still an admin.
        let mut scopes: Vec<String> = serde_json::from_value(row.scopes).unwrap_or_default();
        if role != "admin" {
            scopes.retain(|s| s != "admin");
        }
        if let Some(want) = scope
            && !scopes.iter().any(|s| s == want || s == "admin")
        {
            return Ok(Err(TokenError::MissingScope(want.to_string())));
        }
        Ok(Ok(Verified { token_id: id, user_id: row.user_id, username, role, scopes, expires_at }))
    }

    /// The token's header, signature and claims: what does not change once the token is made.
    async fn check_signature(
        &self,
        token: &str,
    ) -> Result<Result<SignedToken, TokenError>, TokenServiceError> {
        let Ok(header) = jsonwebtoken::decode_header(token) else { return Ok(Err(TokenError::Malformed)) };
        if header.alg != Algorithm::HS256 {
            return Ok(Err(TokenError::Malformed));
        }
        let Some(kid) = header.kid else { return Ok(Err(TokenError::Malformed)) };
        let Some(secret) = self.key_for(&kid).await? else { return Ok(Err(TokenError::UnknownKey)) };

        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked by `verify`, against the service clock, on every request.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[ISSUER]);
        let Ok(key) = DecodingKey::from_secret(secret.expose()) else {
            return Ok(Err(TokenError::Malformed));
        };
        let claims = match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                return Ok(Err(match e.kind() {
                    ErrorKind::InvalidSignature => TokenError::BadSignature,
                    _ => TokenError::Malformed,
                }));
            }
        };
        let Some(expires_at) = DateTime::<Utc>::from_timestamp(claims.exp, 0) else {
            return Ok(Err(TokenError::Malformed));
        };
        let Ok(id) = Uuid::parse_str(&claims.jti) else { return Ok(Err(TokenError::Malformed)) };
        Ok(Ok(SignedToken { kid, id, sub: claims.sub, expires_at }))
    }

    /// The stored token and its owner, from the cache while it is fresh (see [`RowCache`]).
    async fn cached_token_row(&self, id: Uuid) -> Result<Option<TokenRow>, DbErr> {
        if self.rows.fresh.is_zero() {
            return self.token_row(id).await;
        }
        if let Some(row) = self.rows.get(id, self.rows.fresh) {
            return Ok(Some(row));
        }
        let stale_limit = STALE_LIMIT.max(self.rows.fresh);
        if self.rows.failed_recently()
            && let Some(row) = self.rows.get(id, stale_limit)
        {
            return Ok(Some(row));
        }
        let generation = self.rows.generation();
        match self.token_row(id).await {
            Ok(Some(row)) => {
                self.rows.put(id, row.clone(), generation);
                Ok(Some(row))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.rows.failed();
                match self.rows.get(id, stale_limit) {
                    Some(row) => {
                        tracing::debug!(error = %e, "the token row could not be read; using the cached one");
                        Ok(Some(row))
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// The stored token and its owner. This runs on every API call, so it is one hand-written query
    /// whose few columns are read directly: building and decoding SeaORM's joined select of both
    /// whole rows cost several times the lookup itself.
    async fn token_row(&self, id: Uuid) -> Result<Option<TokenRow>, DbErr> {
        let backend = self.db.get_database_backend();
        let sql = format!(
            "SELECT t.user_id, t.kid, t.scopes, t.revoked_at IS NOT NULL AS revoked, u.username, u.role, u.status \
             FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.id = {}",
            if backend == DatabaseBackend::Postgres { "$1" } else { "?" }
        );
        let Some(r) =
            self.db.query_one_raw(Statement::from_sql_and_values(backend, sql, [id.into()])).await?
        else {
            return Ok(None);
        };
        Ok(Some(TokenRow {
            user_id: r.try_get("", "user_id")?,
            kid: r.try_get("", "kid")?,
            scopes: r.try_get("", "scopes")?,
            revoked: r.try_get("", "revoked")?,
            username: r.try_get("", "username")?,
            role: r.try_get("", "role")?,
            status: r.try_get("", "status")?,
        }))
    }

    /// Revokes a token: it is refused from now on, on every instance.
    ///
    /// # Errors
    /// [`TokenServiceError::NotFound`] or a database error.
    pub async fn revoke(&self, id: Uuid, actor: Option<Uuid>) -> Result<(), TokenServiceError> {
        let txn = self.db.begin().await?;
        let row =
            api_tokens::Entity::find_by_id(id).one(&txn).await?.ok_or(TokenServiceError::NotFound(id))?;
        if row.revoked_at.is_none() {
            let mut active: api_tokens::ActiveModel = row.into();
            active.revoked_at = Set(Some(self.clock.now()));
            active.update(&txn).await?;
        }
        audit::record(
            &txn,
            self.clock.as_ref(),
            audit::Event {
                actor,
                action: "token.revoked",
                target: Some(id.to_string()),
                success: true,
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        self.forget_cached().await;
        Ok(())
    }

    /// Promotes the standby key to current, retires the old current key (its tokens stay valid until
    /// they expire), and makes a new standby. One transaction.
    ///
    /// # Errors
    /// A database error.
    pub async fn rotate(&self, actor: Option<Uuid>) -> Result<Rotation, TokenServiceError> {
        self.ensure_keys().await?;
        let txn = self.db.begin().await?;
        let now = self.clock.now();
        let currents =
            signing_keys::Entity::find().filter(signing_keys::Column::State.eq("current")).all(&txn).await?;
        let standby = signing_keys::Entity::find()
            .filter(signing_keys::Column::State.eq("standby"))
            .order_by_asc(signing_keys::Column::CreatedAt)
            .one(&txn)
            .await?
            .ok_or(DbErr::RecordNotFound("standby signing key".into()))?;
        let retired = currents.first().map(|c| c.id.clone()).unwrap_or_default();
        for c in currents {
            let mut a: signing_keys::ActiveModel = c.into();
            a.state = Set("retired".into());
            a.retired_at = Set(Some(now));
            a.update(&txn).await?;
        }
        let current = standby.id.clone();
        let mut a: signing_keys::ActiveModel = standby.into();
        a.state = Set("current".into());
        a.promoted_at = Set(Some(now));
        a.update(&txn).await?;
        let new_standby = self.new_key_row("standby").insert(&txn).await?;
        let rotation = Rotation { retired, current, standby: new_standby.id };
        audit::record(
            &txn,
            self.clock.as_ref(),
            audit::Event {
                actor,
                action: "keys.rotate_jwt",
                target: Some(rotation.current.clone()),
                success: true,
                detail: serde_json::json!({
                    "retired": rotation.retired, "current": rotation.current, "standby": rotation.standby,
                }),
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        Ok(rotation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_ttl("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse_ttl("90m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_ttl("7").unwrap(), Duration::days(7));
        for bad in ["", "d", "0d", "30s", "-1d", "99999d", "1.5d", "99999999999999999d", "200000000000m"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_token_is_decoded_once_and_what_can_change_is_checked_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("goblin.db").display());
        let db = sea_orm::Database::connect(&url).await.unwrap();
        crate::db::migrate_up(&db).await.unwrap();
        let clock = crate::clock::ManualClock::new(Utc::now());
        let svc = TokenService::new(db.clone(), Arc::new(Keyring::single([9; 32])), Arc::new(clock.clone()));
        svc.ensure_keys().await.unwrap();
        let bot = crate::users::create_service_account(&db, &clock, "bot", crate::users::Role::Operator)
            .await
            .unwrap();
        let cached = || svc.checked.entries.read().unwrap().len();
        let chat = ["chat".to_string()];

        let issued = svc.issue(&bot, "one", &chat, Duration::hours(1), None).await.unwrap();
        let token = issued.token.expose().clone();
        assert!(svc.verify(&token, Some("chat")).await.unwrap().is_ok());
        assert_eq!(cached(), 1, "the verified token is kept");
        assert!(svc.verify(&token, Some("chat")).await.unwrap().is_ok());
        assert_eq!(cached(), 1, "and not added again");

        // Nothing unverified gets in, and a kept token does not vouch for a look-alike.
        let (head, sig) = token.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{head}.{flipped}{}", &sig[1..]);
        assert_eq!(svc.verify(&tampered, None).await.unwrap(), Err(TokenError::BadSignature));
        assert_eq!(svc.verify("not.a.jwt", None).await.unwrap(), Err(TokenError::Malformed));
        assert_eq!(cached(), 1);

        // The scope, the revocation and the expiry are still checked on a kept token.
        assert_eq!(
            svc.verify(&token, Some("tasks:run")).await.unwrap(),
            Err(TokenError::MissingScope("tasks:run".into()))
        );
        let other = svc.issue(&bot, "two", &chat, Duration::hours(2), None).await.unwrap();
        assert!(svc.verify(other.token.expose(), None).await.unwrap().is_ok());
        svc.revoke(other.id, None).await.unwrap();
        assert_eq!(svc.verify(other.token.expose(), None).await.unwrap(), Err(TokenError::Revoked));
        clock.advance(Duration::hours(1));
        assert!(matches!(svc.verify(&token, None).await.unwrap(), Err(TokenError::Expired(_))));
    }
}

/// A token as its owner sees it (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

impl TokenService {
    /// The user's tokens, newest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn list_for_user(&self, user_id: Uuid) -> Result<Vec<TokenInfo>, DbErr> {
        Ok(api_tokens::Entity::find()
            .filter(api_tokens::Column::UserId.eq(user_id))
            .order_by_desc(api_tokens::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| TokenInfo {
                id: t.id,
                name: t.name,
                scopes: serde_json::from_value(t.scopes).unwrap_or_default(),
                created_at: t.created_at,
                expires_at: t.expires_at,
                revoked: t.revoked_at.is_some(),
            })
            .collect())
    }

    /// Revokes a token if it belongs to `user_id`.
    ///
    /// # Errors
    /// [`TokenServiceError::NotFound`] when it is not theirs, or a database error.
    pub async fn revoke_own(&self, user_id: Uuid, id: Uuid) -> Result<(), TokenServiceError> {
        let owned = api_tokens::Entity::find_by_id(id)
            .filter(api_tokens::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?
            .is_some();
        if !owned {
            return Err(TokenServiceError::NotFound(id));
        }
        self.revoke(id, Some(user_id)).await
    }
}
