//! Where browser sessions live: the `sessions` table by default, Redis when configured (so every
//! server instance sees the same sessions). Both record which user a session belongs to, so a person
//! can list and end their sessions, and disabling a user ends all of theirs at once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::OnConflict,
};
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store,
};
use uuid::Uuid;

use crate::{entities::sessions, redis_store::RedisHandle};

/// The session key under which the signed-in user's id is kept.
pub const USER_ID_KEY: &str = "goblin.user_id";
/// The session key holding the sign-in time (Unix seconds), for the absolute lifetime.
pub const SIGNED_IN_AT_KEY: &str = "goblin.signed_in_at";

/// Slides a signed-in session's idle expiry forward; called on each authenticated request (not on
/// health checks or static files, so those never write to the store).
pub fn touch(session: &tower_sessions::Session, idle_minutes: u32) {
    session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(
        tower_sessions::cookie::time::Duration::minutes(i64::from(idle_minutes)),
    )));
}

/// Whether a session signed in at `signed_in_at` (Unix seconds) is still within its absolute lifetime.
pub fn within_absolute_lifetime(signed_in_at: i64, now: DateTime<Utc>, absolute_hours: u32) -> bool {
    now.timestamp() - signed_in_at <= i64::from(absolute_hours) * 3600
}

fn user_of(record: &Record) -> Option<Uuid> {
    record.data.get(USER_ID_KEY).and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok())
}

fn expiry(record: &Record) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(record.expiry_date.unix_timestamp(), 0).unwrap_or_else(Utc::now)
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

/// Sessions in the database.
#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: DatabaseConnection,
}

impl DbSessionStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Deletes sessions past their expiry; returns how many.
    ///
    /// # Errors
    /// A database error.
    pub async fn delete_expired(&self) -> Result<u64, sea_orm::DbErr> {
        let r = sessions::Entity::delete_many()
            .filter(sessions::Column::ExpiresAt.lt(Utc::now()))
            .exec(&self.db)
            .await?;
        Ok(r.rows_affected)
    }

    fn row(record: &Record) -> session_store::Result<sessions::ActiveModel> {
        let data = serde_json::to_string(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let now = Utc::now();
        Ok(sessions::ActiveModel {
            id: Set(record.id.to_string()),
            data: Set(data),
            expires_at: Set(expiry(record)),
            user_id: Set(user_of(record)),
            created_at: Set(now),
            updated_at: Set(now),
        })
    }
}

#[async_trait::async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // Ids are 128 random bits; a collision is retried with a new id rather than overwriting.
        for _ in 0..4 {
            let inserted = sessions::Entity::insert(Self::row(record)?)
                .on_conflict(OnConflict::column(sessions::Column::Id).do_nothing().to_owned())
                .exec_without_returning(&self.db)
                .await
                .map_err(backend)?;
            if inserted == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(session_store::Error::Backend("could not allocate a session id".into()))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        // Only an existing session is saved: a request still in flight when its session was ended
        // must not bring it back. New sessions come through `create`.
        let row = Self::row(record)?;
        sessions::Entity::update_many()
            .set(sessions::ActiveModel {
                data: row.data,
                expires_at: row.expires_at,
                user_id: row.user_id,
                updated_at: row.updated_at,
                ..Default::default()
            })
            .filter(sessions::Column::Id.eq(record.id.to_string()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row = sessions::Entity::find_by_id(id.to_string())
            .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
            .one(&self.db)
            .await
            .map_err(backend)?;
        row.map(|r| serde_json::from_str(&r.data).map_err(|e| session_store::Error::Decode(e.to_string())))
            .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sessions::Entity::delete_by_id(id.to_string()).exec(&self.db).await.map_err(backend)?;
        Ok(())
    }
}

/// Sessions in Redis: `goblin:session:<id>` with the record, expiring with it, and a set
/// `goblin:user-sessions:<user>` of each user's session ids.
#[derive(Clone)]
pub struct RedisSessionStore {
    redis: Arc<RedisHandle>,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisSessionStore")
    }
}

fn session_key(id: &Id) -> String {
    format!("goblin:session:{id}")
}

fn user_key(user: Uuid) -> String {
    format!("goblin:user-sessions:{user}")
}

impl RedisSessionStore {
    pub fn new(redis: Arc<RedisHandle>) -> Self {
        Self { redis }
    }

    /// `only_if_new`: create (SET NX); otherwise update an existing session only (SET XX), so an ended
    /// session is never brought back by a request that was in flight.
    async fn write(&self, record: &Record, only_if_new: bool) -> session_store::Result<bool> {
        let data = serde_json::to_string(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let mut conn = self.redis.connection().await.map_err(backend)?;
        let ttl_ms = (expiry(record) - Utc::now()).num_milliseconds().max(1) as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(session_key(&record.id)).arg(data).arg("PX").arg(ttl_ms);
        cmd.arg(if only_if_new { "NX" } else { "XX" });
        let set: Option<String> = cmd.query_async(&mut conn).await.map_err(backend)?;
        if set.is_some()
            && let Some(user) = user_of(record)
        {
            let _: () = conn.sadd(user_key(user), record.id.to_string()).await.map_err(backend)?;
        }
        Ok(set.is_some())
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..4 {
            if self.write(record, true).await? {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(session_store::Error::Backend("could not allocate a session id".into()))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(record, false).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let mut conn = self.redis.connection().await.map_err(backend)?;
        let data: Option<String> = conn.get(session_key(id)).await.map_err(backend)?;
        data.map(|d| serde_json::from_str(&d).map_err(|e| session_store::Error::Decode(e.to_string())))
            .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let mut conn = self.redis.connection().await.map_err(backend)?;
        let _: () = conn.del(session_key(id)).await.map_err(backend)?;
        Ok(())
    }
}

/// The store a server uses: Redis when configured, the database otherwise.
#[derive(Clone, Debug)]
pub enum Store {
    Db(DbSessionStore),
    Redis(RedisSessionStore),
}

#[async_trait::async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Store::Db(s) => s.create(record).await,
            Store::Redis(s) => s.create(record).await,
        }
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Store::Db(s) => s.save(record).await,
            Store::Redis(s) => s.save(record).await,
        }
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Store::Db(s) => s.load(id).await,
            Store::Redis(s) => s.load(id).await,
        }
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Store::Db(s) => s.delete(id).await,
            Store::Redis(s) => s.delete(id).await,
        }
    }
}

/// One of a person's sessions as they see it. `handle` names it without revealing the cookie value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionInfo {
    pub handle: String,
    pub expires_at: DateTime<Utc>,
    pub signed_in_at: Option<DateTime<Utc>>,
}

/// A short, stable name for a session id that cannot be turned back into it.
pub fn handle(id: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(id.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn info(id: &str, record: &Record) -> SessionInfo {
    SessionInfo {
        handle: handle(id),
        expires_at: expiry(record),
        signed_in_at: record
            .data
            .get(SIGNED_IN_AT_KEY)
            .and_then(serde_json::Value::as_i64)
            .and_then(|t| DateTime::<Utc>::from_timestamp(t, 0)),
    }
}

impl Store {
    /// The live sessions of `user`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn list_for_user(&self, user: Uuid) -> session_store::Result<Vec<SessionInfo>> {
        match self {
            Store::Db(s) => {
                let rows = sessions::Entity::find()
                    .filter(sessions::Column::UserId.eq(user))
                    .filter(sessions::Column::ExpiresAt.gt(Utc::now()))
                    .all(&s.db)
                    .await
                    .map_err(backend)?;
                Ok(rows
                    .iter()
                    .filter_map(|r| serde_json::from_str::<Record>(&r.data).ok().map(|rec| info(&r.id, &rec)))
                    .collect())
            }
            Store::Redis(s) => {
                let mut conn = s.redis.connection().await.map_err(backend)?;
                let ids: Vec<String> = conn.smembers(user_key(user)).await.map_err(backend)?;
                let mut out = Vec::new();
                for id in ids {
                    let data: Option<String> =
                        conn.get(format!("goblin:session:{id}")).await.map_err(backend)?;
                    match data.and_then(|d| serde_json::from_str::<Record>(&d).ok()) {
                        Some(rec) if user_of(&rec) == Some(user) => out.push(info(&id, &rec)),
                        _ => {
                            let _: () = conn.srem(user_key(user), &id).await.map_err(backend)?;
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Ends the user's session named by `handle`; false when there is no such session of theirs.
    ///
    /// # Errors
    /// When the store cannot be written.
    pub async fn end_for_user(&self, user: Uuid, handle_: &str) -> session_store::Result<bool> {
        let ids: Vec<String> = match self {
            Store::Db(s) => sessions::Entity::find()
                .filter(sessions::Column::UserId.eq(user))
                .all(&s.db)
                .await
                .map_err(backend)?
                .into_iter()
                .map(|r| r.id)
                .collect(),
            Store::Redis(s) => {
                let mut conn = s.redis.connection().await.map_err(backend)?;
                conn.smembers(user_key(user)).await.map_err(backend)?
            }
        };
        let Some(id) = ids.into_iter().find(|id| handle(id) == handle_) else { return Ok(false) };
        let Ok(parsed) = id.parse::<Id>() else { return Ok(false) };
        self.delete(&parsed).await?;
        Ok(true)
    }

    /// Ends every session of `user` (when they are disabled).
    ///
    /// # Errors
    /// When the store cannot be written.
    pub async fn end_all_for_user(&self, user: Uuid) -> session_store::Result<()> {
        for s in self.list_for_user(user).await? {
            self.end_for_user(user, &s.handle).await?;
        }
        Ok(())
    }
}
