//! Spend budgets: a limit in micro-USD per day, week or month for a route (its policy), a provider or
//! an API token, and the spend counted against each.
//!
//! ```text
//!  request ──► Spend::spent(subject, period) ── local map hit ──► compare with the limit
//!                 │ first time this period: Redis GET, else SUM(cost_micros) of routing_requests
//!                 │ since the period began (SET NX into Redis so every instance starts alike)
//!  answer  ──► Spend::charge(subject, period, cost) ── local += cost; Redis INCRBY (when the key exists)
//!  every second (Redis only): MGET of every key this instance holds ──► local = the shared total
//! ```
//!
//! Spend is checked before a request is routed and charged when it ends, so a request that starts
//! under its budget may finish over it: budgets stop the next request, not the current one. With
//! Redis, every instance sees the others' spend within about a second; without it each instance
//! counts its own on top of what the database held when it first looked. If Redis or the database
//! cannot be read, the spend is taken as what this instance knows (a warning is logged): a store
//! outage does not stop all traffic.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use chrono::{DateTime, Datelike, Duration as TimeDelta, NaiveDate, NaiveTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    sea_query::{Expr, Func},
};
use uuid::Uuid;

use crate::{entities::routing_requests, redis_store::RedisHandle};

/// What a budget is counted over.
pub const PERIODS: [&str; 3] = ["day", "week", "month"];

/// A period: UTC days, ISO weeks (from Monday) and calendar months.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    /// `day`, `week` or `month`; anything else is a month (the default).
    pub fn parse(s: &str) -> Period {
        match s {
            "day" => Period::Day,
            "week" => Period::Week,
            _ => Period::Month,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// The start of the period holding `now`, and the start of the next (when the budget resets).
    pub fn bounds(self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let day = now.date_naive();
        let (start, end): (NaiveDate, NaiveDate) = match self {
            Period::Day => (day, day + TimeDelta::days(1)),
            Period::Week => {
                let start = day - TimeDelta::days(i64::from(day.weekday().num_days_from_monday()));
                (start, start + TimeDelta::days(7))
            }
            Period::Month => {
                let start = day.with_day(1).unwrap_or(day);
                let end = if start.month() == 12 {
                    NaiveDate::from_ymd_opt(start.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(start.year(), start.month() + 1, 1)
                }
                .unwrap_or(start + TimeDelta::days(31));
                (start, end)
            }
        };
        let at = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc();
        (at(start), at(end))
    }
}

/// Parses a budget as a form gives it: an amount of US dollars (empty for none) and a period.
///
/// # Errors
/// A message naming the field and the rule.
pub fn parse(amount: &str, period: &str) -> Result<(Option<i64>, String), String> {
    let amount = amount.trim();
    let period = period.trim();
    let period = if period.is_empty() { "month" } else { period };
    if !PERIODS.contains(&period) {
        return Err(format!(
            "budget period: must be one of {}; got '{}'",
            PERIODS.join(", "),
            period.chars().take(40).collect::<String>()
        ));
    }
    if amount.is_empty() {
        return Ok((None, period.to_string()));
    }
    let micros = crate::providers::parse_usd_micros("budget", amount).map_err(|_| {
        format!(
            "budget: must be an amount of US dollars with at most 6 decimals, such as 25 or 12.50, or empty for no budget; got '{}'",
            amount.chars().take(40).collect::<String>()
        )
    })?;
    if micros == 0 {
        return Err("budget: must be more than 0; leave it empty for no budget".into());
    }
    Ok((Some(micros), period.to_string()))
}

/// What a budget limits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A route alias, with its policy's id (which names the shared counter).
    Route {
        policy_id: Uuid,
        alias: String,
    },
    Provider(Uuid),
    Token(Uuid),
}

impl Subject {
    fn key(&self, period: Period, start: DateTime<Utc>) -> String {
        let who = match self {
            Subject::Route { policy_id, .. } => format!("route:{policy_id}"),
            Subject::Provider(id) => format!("provider:{id}"),
            Subject::Token(id) => format!("token:{id}"),
        };
        format!("goblin:spend:{who}:{}:{}", period.as_str(), start.format("%Y-%m-%d"))
    }
}

/// A budget: the limit in micro-USD per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub micros: i64,
    pub period: Period,
}

/// A budget that is spent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spent {
    pub limit: Limit,
    pub spent: i64,
    pub resets_at: DateTime<Utc>,
}

impl Spent {
    /// "its monthly budget of $25 ($25.10 spent); it resets at 2026-12-01 00:00 UTC".
    pub fn describe(&self) -> String {
        let per = match self.limit.period {
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
        };
        format!(
            "its {per} budget of ${} (${} spent); it resets at {}",
            crate::providers::format_usd_micros(self.limit.micros),
            crate::providers::format_usd_micros(self.spent),
            self.resets_at.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

/// Spend counters, shared through Redis when it is configured.
pub struct Spend {
    db: DatabaseConnection,
    redis: Option<Arc<RedisHandle>>,
    local: Mutex<HashMap<String, i64>>,
}

/// Adds `ARGV[1]` to a counter only if some instance has already loaded it from the database; a
/// counter that does not exist yet is created by the next check, from the database's total.
const INCR_IF_EXISTS: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) else return false end";

/// How often the counters are re-read from Redis.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

impl Spend {
    pub fn new(db: DatabaseConnection, redis: Option<Arc<RedisHandle>>) -> Arc<Self> {
        Arc::new(Self { db, redis, local: Mutex::new(HashMap::new()) })
    }

    fn local(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `subject` has spent `limit` in the period holding `now`.
    pub async fn check(&self, subject: &Subject, limit: Limit, now: DateTime<Utc>) -> Option<Spent> {
        let (start, resets_at) = limit.period.bounds(now);
        let spent = self.spent(subject, limit.period, start).await;
        (spent >= limit.micros).then_some(Spent { limit, spent, resets_at })
    }

    async fn spent(&self, subject: &Subject, period: Period, start: DateTime<Utc>) -> i64 {
        let key = subject.key(period, start);
        if let Some(v) = self.local().get(&key) {
            return *v;
        }
        let total = self.load(subject, &key, start).await;
        *self.local().entry(key).or_insert(total)
    }

    /// The period's spend so far: Redis's counter, else the database's total (put into Redis).
    async fn load(&self, subject: &Subject, key: &str, start: DateTime<Utc>) -> i64 {
        if let Some(redis) = &self.redis {
            match redis.connection().await {
                Ok(mut conn) => {
                    let got: Result<Option<i64>, _> = redis::cmd("GET").arg(key).query_async(&mut conn).await;
                    if let Ok(Some(v)) = got {
                        return v;
                    }
                    let total = self.database_total(subject, start).await;
                    // Kept for two periods at most: old periods are never read again.
                    let ttl = 32 * 24 * 3600 * 2;
                    let _: Result<Option<String>, _> = redis::cmd("SET")
                        .arg(key)
                        .arg(total)
                        .arg("NX")
                        .arg("EX")
                        .arg(ttl)
                        .query_async(&mut conn)
                        .await;
                    let got: Result<Option<i64>, _> = redis::cmd("GET").arg(key).query_async(&mut conn).await;
                    return got.ok().flatten().unwrap_or(total);
                }
                Err(e) => tracing::warn!(error = %e, "budgets: Redis is unavailable; counting spend locally"),
            }
        }
        self.database_total(subject, start).await
    }

    async fn database_total(&self, subject: &Subject, start: DateTime<Utc>) -> i64 {
        // SUM of a bigint is a numeric on PostgreSQL: cast back so both databases give an integer.
        let total = Func::cast_as(
            Func::coalesce([
                Expr::from(Func::sum(Expr::col(routing_requests::Column::CostMicros))),
                Expr::val(0i64),
            ]),
            "BIGINT",
        );
        let q = routing_requests::Entity::find()
            .select_only()
            .column_as(Expr::expr(total), "spent")
            .filter(routing_requests::Column::CreatedAt.gte(start));
        let q = match subject {
            Subject::Route { alias, .. } => q.filter(routing_requests::Column::RouteAlias.eq(alias.as_str())),
            Subject::Provider(id) => q.filter(routing_requests::Column::ProviderId.eq(*id)),
            Subject::Token(id) => q.filter(routing_requests::Column::TokenId.eq(*id)),
        };
        match q.into_tuple::<i64>().one(&self.db).await {
            Ok(v) => v.unwrap_or(0),
            Err(e) => {
                tracing::warn!(error = %e, "budgets: could not add up the spend so far; counting from zero");
                0
            }
        }
    }

    /// Counts `cost` against `subject` for the period holding `now`.
    pub fn charge(&self, subject: &Subject, period: Period, cost: i64, now: DateTime<Utc>) {
        if cost <= 0 {
            return;
        }
        let (start, _) = period.bounds(now);
        let key = subject.key(period, start);
        if let Some(v) = self.local().get_mut(&key) {
            *v = v.saturating_add(cost);
        }
        if let Some(redis) = self.redis.clone() {
            tokio::spawn(async move {
                let Ok(mut conn) = redis.connection().await else { return };
                let done: Result<Option<i64>, _> = redis::cmd("EVAL")
                    .arg(INCR_IF_EXISTS)
                    .arg(1)
                    .arg(&key)
                    .arg(cost)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = done {
                    tracing::warn!(error = %e, "budgets: could not add to the shared spend");
                }
            });
        }
    }

    /// Re-reads every counter this instance holds from Redis, and forgets those of past periods.
    pub async fn sync(&self) {
        let keys: Vec<String> = self.local().keys().cloned().collect();
        if keys.is_empty() {
            return;
        }
        let Some(redis) = &self.redis else { return };
        let Ok(mut conn) = redis.connection().await else { return };
        let values: Result<Vec<Option<i64>>, _> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await;
        let Ok(values) = values else { return };
        let mut local = self.local();
        for (k, v) in keys.into_iter().zip(values) {
            match v {
                Some(v) => {
                    local.insert(k, v);
                }
                // Expired or flushed: load it again on the next check.
                None => {
                    local.remove(&k);
                }
            }
        }
    }

    /// Keeps the counters in step with the other instances (Redis only).
    pub fn spawn_sync(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        self.redis.as_ref()?;
        let weak = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(SYNC_EVERY);
            loop {
                tick.tick().await;
                let Some(spend) = weak.upgrade() else { return };
                spend.sync().await;
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_and_reset_in_utc() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T15:04:05Z").unwrap().with_timezone(&Utc);
        let (s, e) = Period::Day.bounds(now);
        assert_eq!(
            (s.to_rfc3339(), e.to_rfc3339()),
            ("2026-11-29T00:00:00+00:00".into(), "2026-11-30T00:00:00+00:00".into())
        );
        // 2026-11-29 is a Sunday: the ISO week began on Monday the 23rd.
        let (s, e) = Period::Week.bounds(now);
        assert_eq!(
            (s.to_rfc3339(), e.to_rfc3339()),
            ("2026-11-23T00:00:00+00:00".into(), "2026-11-30T00:00:00+00:00".into())
        );
        let (s, e) = Period::Month.bounds(now);
        assert_eq!(
            (s.to_rfc3339(), e.to_rfc3339()),
            ("2026-11-01T00:00:00+00:00".into(), "2026-12-01T00:00:00+00:00".into())
        );
        let dec = DateTime::parse_from_rfc3339("2026-12-31T23:59:59Z").unwrap().with_timezone(&Utc);
        assert_eq!(Period::Month.bounds(dec).1.to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }

    #[test]
    fn budgets_parse_with_clear_messages() {
        assert_eq!(parse("", ""), Ok((None, "month".into())));
        assert_eq!(parse("12.50", "day"), Ok((Some(12_500_000), "day".into())));
        assert_eq!(parse("$0.000001", "week"), Ok((Some(1), "week".into())));
        assert!(parse("ten", "day").unwrap_err().starts_with("budget: must be an amount of US dollars"));
        assert!(parse("0", "day").unwrap_err().starts_with("budget: must be more than 0"));
        assert!(
            parse("5", "year").unwrap_err().starts_with("budget period: must be one of day, week, month")
        );
    }
}
