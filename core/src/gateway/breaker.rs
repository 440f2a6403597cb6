//! Circuit breakers per provider and model: a target that keeps failing is skipped for a cooldown,
//! then one probe request decides whether it is back.
//!
//! Each instance keeps the state in memory. Opens after `threshold` consecutive failures, or when at
//! least 10 requests in the window failed at `error_rate` or more; half-opens after `cooldown`,
//! letting one probe through; the probe's success closes it, its failure opens it again.
//!
//! With Redis ([`Shared`]), instances share what matters: an instance whose breaker opens writes the
//! time it may half-open into the hash `goblin:breakers`; every instance reads that hash every
//! [`SYNC_EVERY`] and opens its own breaker until then. Half-open, the probe is one request across
//! all instances (`SET NX` on a probe lock), and the probe's success removes the shared entry. Error
//! rates stay per instance. When Redis is unreachable each instance goes on with its own state.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// What a breaker allows for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Half-open: this request is the probe.
    Probe,
    No,
}

/// A breaker's state, as the routing page shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub threshold: u32,
    pub error_rate: f64,
    pub window: Duration,
    pub cooldown: Duration,
}

#[derive(Debug, Default)]
struct Entry {
    consecutive: u32,
    /// (time, ok) of recent results within the window.
    recent: VecDeque<(DateTime<Utc>, bool)>,
    open_until: Option<DateTime<Utc>>,
    probing: bool,
    /// When a probe last closed it: a shared "open until" from before then is stale.
    closed_at: Option<DateTime<Utc>>,
}

/// What a result changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// It opened (again) until this time.
    Opened(DateTime<Utc>),
    /// A probe succeeded: it closed.
    Closed,
}

#[derive(Debug, Default)]
pub struct Breakers {
    entries: Mutex<HashMap<(Uuid, String), Entry>>,
}

impl Breakers {
    pub fn admit(&self, provider: Uuid, model: &str, now: DateTime<Utc>) -> Admit {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(e) = map.get_mut(&(provider, model.to_string())) else { return Admit::Yes };
        match e.open_until {
            None => Admit::Yes,
            Some(until) if now < until => Admit::No,
            Some(_) if e.probing => Admit::No,
            Some(_) => {
                e.probing = true;
                Admit::Probe
            }
        }
    }

    pub fn state(&self, provider: Uuid, model: &str, now: DateTime<Utc>) -> State {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&(provider, model.to_string())).and_then(|e| e.open_until.map(|u| (u, e.probing))) {
            None => State::Closed,
            Some((until, _)) if now < until => State::Open,
            Some(_) => State::HalfOpen,
        }
    }

    pub fn success(&self, provider: Uuid, model: &str, now: DateTime<Utc>, rules: &Rules) -> Change {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry((provider, model.to_string())).or_default();
        let was_open = e.open_until.is_some();
        e.consecutive = 0;
        e.open_until = None;
        e.probing = false;
        push(e, now, true, rules);
        if was_open {
            e.closed_at = Some(now);
            Change::Closed
        } else {
            Change::None
        }
    }

    pub fn failure(&self, provider: Uuid, model: &str, now: DateTime<Utc>, rules: &Rules) -> Change {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry((provider, model.to_string())).or_default();
        e.consecutive += 1;
        push(e, now, false, rules);
        let failed = e.recent.iter().filter(|(_, ok)| !ok).count();
        let rate_tripped = e.recent.len() >= 10 && failed as f64 / e.recent.len() as f64 >= rules.error_rate;
        if e.probing || e.consecutive >= rules.threshold.max(1) || rate_tripped {
            let until = now + rules.cooldown;
            e.open_until = Some(until);
            e.probing = false;
            e.recent.clear();
            return Change::Opened(until);
        }
        Change::None
    }

    /// A probe this instance was given could not run (another instance holds the probe): it is not
    /// this instance's to send, so the next request may ask again.
    pub fn release_probe(&self, provider: Uuid, model: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = map.get_mut(&(provider, model.to_string())) {
            e.probing = false;
        }
    }

    /// Another instance's breaker for this target opened until `until`: open this one too, unless it
    /// already knows better (open for longer, or closed by a probe after that time).
    pub fn merge_shared(&self, provider: Uuid, model: &str, until: DateTime<Utc>) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry((provider, model.to_string())).or_default();
        if e.closed_at.is_some_and(|c| c >= until) || e.open_until.is_some_and(|u| u >= until) {
            return;
        }
        e.open_until = Some(until);
        e.probing = false;
        e.consecutive = 0;
        e.recent.clear();
    }
}

/// How often the shared breaker states are read from Redis.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
const HASH: &str = "goblin:breakers";

fn field(provider: Uuid, model: &str) -> String {
    format!("{provider}|{model}")
}

/// Breaker states shared through Redis.
pub struct Shared {
    redis: std::sync::Arc<crate::redis_store::RedisHandle>,
}

impl Shared {
    pub fn new(redis: std::sync::Arc<crate::redis_store::RedisHandle>) -> Self {
        Self { redis }
    }

    /// Tells the other instances this target is open until `until` (best effort).
    pub async fn opened(&self, provider: Uuid, model: &str, until: DateTime<Utc>) {
        let Ok(mut conn) = self.redis.connection().await else { return };
        let _: Result<i64, _> = redis::cmd("HSET")
            .arg(HASH)
            .arg(field(provider, model))
            .arg(until.timestamp_millis())
            .query_async(&mut conn)
            .await;
    }

    /// A probe succeeded: the target is back for everyone (best effort).
    pub async fn closed(&self, provider: Uuid, model: &str) {
        let Ok(mut conn) = self.redis.connection().await else { return };
        let _: Result<i64, _> =
            redis::cmd("HDEL").arg(HASH).arg(field(provider, model)).query_async(&mut conn).await;
    }

    /// Whether this instance may send the one probe of a half-open target. The lock lasts `hold`
    /// (the probe's timeout); when Redis cannot answer, the instance probes on its own judgement.
    pub async fn take_probe(&self, provider: Uuid, model: &str, hold: std::time::Duration) -> bool {
        let Ok(mut conn) = self.redis.connection().await else { return true };
        let got: Result<Option<String>, _> = redis::cmd("SET")
            .arg(format!("goblin:breaker-probe:{}", field(provider, model)))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(&mut conn)
            .await;
        !matches!(got, Ok(None))
    }

    /// Reads every shared state into `local`, and removes entries that ended long ago.
    pub async fn sync(&self, local: &Breakers, now: DateTime<Utc>) {
        let Ok(mut conn) = self.redis.connection().await else { return };
        let all: Result<HashMap<String, i64>, _> =
            redis::cmd("HGETALL").arg(HASH).query_async(&mut conn).await;
        let Ok(all) = all else { return };
        for (f, until_ms) in all {
            let Some(until) = DateTime::from_timestamp_millis(until_ms) else { continue };
            let Some((provider, model)) = f.split_once('|') else { continue };
            let Ok(provider) = Uuid::parse_str(provider) else { continue };
            if now - until > Duration::hours(1) {
                let _: Result<i64, _> = redis::cmd("HDEL").arg(HASH).arg(&f).query_async(&mut conn).await;
                continue;
            }
            local.merge_shared(provider, model, until);
        }
    }
}

/// Results arrive in time order, so the old ones are at the front: dropping them is cheap on the
/// request path.
fn push(e: &mut Entry, now: DateTime<Utc>, ok: bool, rules: &Rules) {
    while e.recent.front().is_some_and(|(t, _)| now - *t >= rules.window) || e.recent.len() >= 1000 {
        e.recent.pop_front();
    }
    e.recent.push_back((now, ok));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            threshold: 3,
            error_rate: 0.5,
            window: Duration::seconds(60),
            cooldown: Duration::seconds(30),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_half_opens_with_one_probe() {
        let b = Breakers::default();
        let p = Uuid::new_v4();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let r = rules();
        b.failure(p, "m", t0, &r);
        b.failure(p, "m", t0, &r);
        assert_eq!(b.admit(p, "m", t0), Admit::Yes);
        b.failure(p, "m", t0, &r);
        assert_eq!(b.state(p, "m", t0), State::Open);
        assert_eq!(b.admit(p, "m", t0 + Duration::seconds(29)), Admit::No);
        let later = t0 + Duration::seconds(30);
        assert_eq!(b.state(p, "m", later), State::HalfOpen);
        assert_eq!(b.admit(p, "m", later), Admit::Probe);
        assert_eq!(b.admit(p, "m", later), Admit::No, "only one probe at a time");
        b.failure(p, "m", later, &r);
        assert_eq!(b.state(p, "m", later), State::Open, "a failed probe opens it again");
        let again = later + Duration::seconds(30);
        assert_eq!(b.admit(p, "m", again), Admit::Probe);
        b.success(p, "m", again, &r);
        assert_eq!(b.state(p, "m", again), State::Closed);
        assert_eq!(b.admit(p, "m", again), Admit::Yes);
        assert_eq!(b.admit(p, "other", again), Admit::Yes, "per model");
    }

    #[test]
    fn a_shared_open_state_opens_this_instance_until_then_unless_a_later_probe_closed_it() {
        let b = Breakers::default();
        let p = Uuid::new_v4();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let until = t0 + Duration::seconds(30);
        b.merge_shared(p, "m", until);
        assert_eq!(b.admit(p, "m", t0), Admit::No);
        assert_eq!(b.admit(p, "m", until), Admit::Probe);
        b.release_probe(p, "m");
        assert_eq!(b.admit(p, "m", until), Admit::Probe, "a released probe can be asked for again");
        assert_eq!(b.success(p, "m", until, &rules()), Change::Closed);
        b.merge_shared(p, "m", until);
        assert_eq!(b.admit(p, "m", until), Admit::Yes, "the entry it closed is stale");
        let r = rules();
        b.failure(p, "m", until, &r);
        b.failure(p, "m", until, &r);
        assert_eq!(b.failure(p, "m", until, &r), Change::Opened(until + r.cooldown));
    }

    #[test]
    fn opens_on_error_rate_over_the_window() {
        let b = Breakers::default();
        let p = Uuid::new_v4();
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let r = Rules { threshold: 100, ..rules() };
        for i in 0..9 {
            if i % 2 == 0 {
                b.failure(p, "m", t0, &r);
            } else {
                b.success(p, "m", t0, &r);
            }
        }
        assert_eq!(b.state(p, "m", t0), State::Closed);
        b.failure(p, "m", t0, &r);
        assert_eq!(b.state(p, "m", t0), State::Open, "6 of 10 failed");
    }
}
