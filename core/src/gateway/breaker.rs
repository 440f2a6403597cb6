//! Circuit breakers per provider and model: a target that keeps failing is skipped for a cooldown,
//! then one probe request decides whether it is back.
//!
//! State is per instance (in memory). Opens after `threshold` consecutive failures, or when at least
//! 10 requests in the window failed at `error_rate` or more; half-opens after `cooldown`, letting one
//! probe through; the probe's success closes it, its failure opens it again.

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

    pub fn success(&self, provider: Uuid, model: &str, now: DateTime<Utc>, rules: &Rules) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry((provider, model.to_string())).or_default();
        e.consecutive = 0;
        e.open_until = None;
        e.probing = false;
        push(e, now, true, rules);
    }

    pub fn failure(&self, provider: Uuid, model: &str, now: DateTime<Utc>, rules: &Rules) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = map.entry((provider, model.to_string())).or_default();
        e.consecutive += 1;
        push(e, now, false, rules);
        let failed = e.recent.iter().filter(|(_, ok)| !ok).count();
        let rate_tripped = e.recent.len() >= 10 && failed as f64 / e.recent.len() as f64 >= rules.error_rate;
        if e.probing || e.consecutive >= rules.threshold.max(1) || rate_tripped {
            e.open_until = Some(now + rules.cooldown);
            e.probing = false;
            e.recent.clear();
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
