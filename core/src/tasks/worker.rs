//! A worker: claims queued tasks up to the `tasks.max_concurrent_per_worker` setting, runs each, keeps
//! their leases alive, notices cancellations made anywhere, and records how each run ended.
//!
//! ```text
//! loop: claim while below the limit ──► execute (own tokio task)
//!       wake (a task queued here) | poll tick | a run ended
//!       heartbeat (lease / 3): renew the leases of this worker's runs
//!       check (≤ 0.5 s): rows no longer `running` for this worker ──► stop those runs
//! shutdown: stop claiming, stop every run (recorded as failed), wait for them
//! ```

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    CANCELLED, FAILED, SUCCEEDED, TIMED_OUT, TaskService, agent, is_final,
    output::{Live, Output, Stop, Stream},
    process::{self, Ending, Spec},
    queue,
    registry::{Goblin, Registry},
};
use crate::{entities::tasks, settings::keys};

/// How a run ended, to be recorded; `status: None` when the row is no longer this worker's.
pub(crate) struct Outcome {
    pub status: Option<&'static str>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

impl Outcome {
    pub(crate) fn failed(error: impl Into<String>) -> Self {
        Self { status: Some(FAILED), exit_code: None, error: Some(error.into()) }
    }
}

/// A command's whole environment, name and value.
type Env = Vec<(String, String)>;

/// What a claimed task will do.
enum Plan {
    Command(Spec, Vec<String>),
    Agent(super::registry::AgentGoblin, Duration),
    /// It cannot run here; the message says why.
    Refuse(String),
}

/// A running worker. Dropping it leaves the worker running; [`WorkerHandle::shutdown`] stops it.
pub struct WorkerHandle {
    id: String,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// The id recorded on the tasks this worker runs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops claiming, stops the runs in progress (their process groups are killed and they are
    /// recorded as failed: "the worker stopped"), and waits for that.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if tokio::time::timeout(Duration::from_secs(60), self.join).await.is_err() {
            tracing::warn!(worker = %self.id, "the worker did not stop within a minute");
        }
    }
}

impl TaskService {
    /// Starts this process's worker under `id`. Tasks an earlier run of the same worker id left
    /// marked as running are failed first ("worker lost"), never run again.
    ///
    /// # Errors
    /// When the working directory cannot be created, or a database error.
    pub async fn start_worker(self: &Arc<Self>, id: String) -> anyhow::Result<WorkerHandle> {
        use anyhow::Context;
        std::fs::create_dir_all(&self.config.workdir).with_context(|| {
            format!("Failed to create the tasks working directory {}", self.config.workdir.display())
        })?;
        let orphans = queue::reconcile(&self.db, &id, self.clock.now())
            .await
            .context("Failed to check for tasks left running by this worker")?;
        if orphans > 0 {
            tracing::warn!(worker = %id, orphans, "tasks left running by an earlier run of this worker were marked failed");
        }
        let (stop, stopped) = watch::channel(false);
        let svc = self.clone();
        let worker: Arc<str> = Arc::from(id.as_str());
        let join = tokio::spawn(async move { svc.work(worker, stopped).await });
        tracing::info!(worker = %id, "task worker started");
        Ok(WorkerHandle { id, stop, join })
    }

    /// Marks tasks whose lease ran out as failed ("worker lost"), every half lease. Every instance
    /// runs one, workers or not. Holds no strong reference: it ends once the service is dropped.
    pub fn spawn_reaper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = (self.config.lease / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(svc) = weak.upgrade() else { return };
                match queue::reap(&svc.db, svc.clock.now()).await {
                    Ok(lost) => {
                        for id in lost {
                            tracing::warn!(task = %id, "a task's worker stopped renewing its lease; the task was marked failed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not check for tasks whose worker was lost"),
                }
            }
        })
    }

    async fn work(self: Arc<Self>, worker: Arc<str>, mut stopped: watch::Receiver<bool>) {
        let lease = self.config.lease;
        let mut runs = tokio::task::JoinSet::new();
        let mut mine: HashMap<tokio::task::Id, Uuid> = HashMap::new();
        let mut poll = tokio::time::interval(self.config.poll);
        let mut beat = tokio::time::interval((lease / 3).max(Duration::from_millis(50)));
        let mut check =
            tokio::time::interval((lease / 4).clamp(Duration::from_millis(50), Duration::from_millis(500)));
        for t in [&mut poll, &mut beat, &mut check] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut stopping = false;
        let mut claim_failing = false;
        loop {
            if !stopping {
                let limit = usize::try_from(self.settings.int(keys::TASK_MAX_CONCURRENT_PER_WORKER))
                    .unwrap_or(1)
                    .max(1);
                while mine.len() < limit {
                    let now = self.clock.now();
                    match queue::claim(&self.db, &worker, now, queue::lease_until(now, lease)).await {
                        Ok(Some(task)) => {
                            claim_failing = false;
                            let id = task.id;
                            let live = Arc::new(Live::new());
                            self.hub.insert(id, live.clone());
                            let svc = self.clone();
                            let w = worker.clone();
                            let span = run_span(&task, &w);
                            let handle =
                                runs.spawn(async move { svc.execute(w, task, live).await }.instrument(span));
                            mine.insert(handle.id(), id);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            if !claim_failing {
                                tracing::warn!(worker = %worker, error = %e, "could not take a task from the queue; will retry");
                            }
                            claim_failing = true;
                            break;
                        }
                    }
                }
            }
            if stopping && runs.is_empty() {
                break;
            }
            tokio::select! {
                changed = stopped.changed(), if !stopping => {
                    if changed.is_err() || *stopped.borrow() {
                        stopping = true;
                        for id in mine.values() {
                            if let Some(live) = self.hub.get(*id) {
                                live.stop.send_replace(Some(Stop::Shutdown));
                            }
                        }
                    }
                }
                Some(done) = runs.join_next_with_id() => {
                    let (tid, failed) = match done {
                        Ok((tid, ())) => (tid, false),
                        Err(e) => (e.id(), true),
                    };
                    if let Some(id) = mine.remove(&tid)
                        && failed
                    {
                        // A run that panicked has recorded nothing: it ends here, not by its lease.
                        tracing::info_span!("task_run", task_id = %id, worker = %worker)
                            .in_scope(|| tracing::error!(task = %id, "a task run failed unexpectedly"));
                        self.hub.remove(id);
                        let f = queue::Final {
                            status: FAILED,
                            exit_code: None,
                            error: Some("the runner failed unexpectedly; see the worker's log".into()),
                            finished_at: self.clock.now(),
                            duration_ms: 0,
                        };
                        let _ = queue::finish(&self.db, &worker, id, &f).await;
                    }
                }
                () = self.wake.notified(), if !stopping => {}
                _ = poll.tick() => {}
                _ = beat.tick() => {
                    let ids: Vec<Uuid> = mine.values().copied().collect();
                    let now = self.clock.now();
                    if let Err(e) = queue::renew(&self.db, &worker, &ids, queue::lease_until(now, lease)).await {
                        tracing::warn!(worker = %worker, error = %e, "could not renew task leases");
                    }
                }
                _ = check.tick(), if !mine.is_empty() => {
                    let ids: Vec<Uuid> = mine.values().copied().collect();
                    match queue::no_longer_running(&self.db, &worker, &ids).await {
                        Ok(gone) => {
                            for (id, status, error) in gone {
                                let Some(live) = self.hub.get(id) else { continue };
                                if live.stop.borrow().is_some() {
                                    continue;
                                }
                                let stop = if status == CANCELLED {
                                    Stop::Cancelled(error.unwrap_or_else(|| "cancelled".into()))
                                } else {
                                    Stop::Lost
                                };
                                live.stop.send_replace(Some(stop));
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "could not check for cancelled tasks"),
                    }
                }
            }
        }
        tracing::info!(worker = %worker, "task worker stopped");
    }

    /// Runs one claimed task to its end and records it.
    async fn execute(self: Arc<Self>, worker: Arc<str>, task: tasks::Model, live: Arc<Live>) {
        let started = Instant::now();
        let cap = u64::try_from(self.settings.int(keys::TASK_MAX_OUTPUT_BYTES)).unwrap_or(1 << 20);
        let plan = self.plan(&task, &self.registry.current().registry, &worker);
        let secrets = match &plan {
            Plan::Command(_, secrets) => secrets.clone(),
            _ => Vec::new(),
        };
        let out = Arc::new(Output::new(task.id, self.clock.clone(), live.clone(), cap, secrets));
        let (done, done_rx) = watch::channel(false);
        let flusher = {
            let out = out.clone();
            let db = self.db.clone();
            tokio::spawn(async move { out.keep_flushing(&db, done_rx).await }.in_current_span())
        };
        let stop = live.stop.subscribe();
        let outcome = match plan {
            Plan::Command(spec, _) => outcome(process::run(&spec, &out, stop).await, &spec),
            Plan::Agent(goblin, timeout) => agent::run(&self, &task, &goblin, &out, stop, timeout).await,
            Plan::Refuse(message) => {
                out.line(Stream::System, &format!("[{message}]"));
                Outcome::failed(message)
            }
        };
        done.send_replace(true);
        let _ = flusher.await;
        out.finish(&self.db).await;

        if let Some(status) = outcome.status {
            let f = queue::Final {
                status,
                exit_code: outcome.exit_code,
                error: outcome.error,
                finished_at: self.clock.now(),
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            };
            for attempt in 1..=3u32 {
                match queue::finish(&self.db, &worker, task.id, &f).await {
                    Ok(_) => break,
                    Err(e) if attempt == 3 => {
                        tracing::error!(task = %task.id, error = %e, "could not record how a task ended; its lease will run out");
                    }
                    Err(e) => {
                        tracing::warn!(task = %task.id, error = %e, "could not record how a task ended; retrying");
                        tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                    }
                }
            }
        }
        let view = match self.view(task.id).await {
            Ok(v) => v,
            Err(_) => {
                let mut v = self.views(vec![task.clone()]).await.ok().and_then(|mut v| v.pop());
                if let Some(v) = v.as_mut() {
                    v.status = outcome.status.unwrap_or(FAILED).to_string();
                    v.finished = is_final(&v.status, Some(self.clock.now()));
                }
                match v {
                    Some(v) => v,
                    None => {
                        self.hub.remove(task.id);
                        return;
                    }
                }
            }
        };
        live.end(view);
        self.hub.remove(task.id);
    }

    fn plan(&self, task: &tasks::Model, registry: &Registry, worker: &str) -> Plan {
        let default_timeout = self.default_timeout();
        if let Some(code) = &task.code {
            let env = match self.command_env(task, &[], worker) {
                Ok((env, _)) => env,
                Err(m) => return Plan::Refuse(m),
            };
            let spec = Spec {
                program: "bash".into(),
                args: ["--noprofile", "--norc", "-euo", "pipefail", "-c", code.as_str()]
                    .map(String::from)
                    .to_vec(),
                env,
                workdir: self.config.workdir.clone(),
                timeout: default_timeout,
                grace: self.config.kill_grace,
            };
            return Plan::Command(spec, Vec::new());
        }
        match registry.find(&task.goblin_id) {
            None => Plan::Refuse(format!(
                "the goblin '{}' is not in the registry of worker '{worker}'; was it removed or renamed?",
                task.goblin_id
            )),
            Some(Goblin::Command { goblin, .. }) => {
                match self.command_env(task, &goblin.required_env, worker) {
                    Ok((env, secrets)) => Plan::Command(
                        Spec {
                            program: "/bin/sh".into(),
                            args: vec!["-c".into(), goblin.command.clone()],
                            env,
                            workdir: self.config.workdir.clone(),
                            timeout: goblin
                                .timeout_s
                                .map_or(default_timeout, |s| Duration::from_secs(u64::from(s))),
                            grace: self.config.kill_grace,
                        },
                        secrets,
                    ),
                    Err(m) => Plan::Refuse(m),
                }
            }
            Some(Goblin::Agent { goblin, .. }) => Plan::Agent(goblin.clone(), default_timeout),
        }
    }

    /// A command's whole environment: the allowlist, the goblin's `required_env` and the task; and
    /// the values to keep out of its output.
    fn command_env(
        &self,
        task: &tasks::Model,
        required: &[String],
        worker: &str,
    ) -> Result<(Env, Vec<String>), String> {
        let from = self.config.environment.expose();
        let mut env: Vec<(String, String)> = super::ENV_ALLOWLIST
            .iter()
            .filter_map(|name| from.get(*name).map(|v| ((*name).to_string(), v.clone())))
            .collect();
        if !from.contains_key("PATH") {
            env.push(("PATH".into(), super::DEFAULT_PATH.into()));
        }
        let missing: Vec<&str> =
            required.iter().filter(|n| !from.contains_key(n.as_str())).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(format!(
                "worker '{worker}' does not have the environment variables this goblin needs: {}",
                missing.join(", ")
            ));
        }
        let mut secrets = Vec::new();
        for name in required {
            if let Some(v) = from.get(name) {
                env.retain(|(k, _)| k != name);
                env.push((name.clone(), v.clone()));
                secrets.push(v.clone());
            }
        }
        env.push(("GOBLIN_TASK".into(), task.task.clone()));
        env.push(("GOBLIN_TASK_ID".into(), task.id.to_string()));
        Ok((env, secrets))
    }
}

/// The span a run's work happens in: every event of the run (and a panic in it) carries the task
/// and goblin ids, which the Raptor layer copies into a traced exception's context.
fn run_span(task: &tasks::Model, worker: &str) -> tracing::Span {
    tracing::info_span!("task_run", task_id = %task.id, goblin_id = %task.goblin_id, worker = %worker)
}

/// How a command's ending is recorded.
fn outcome(ending: Ending, spec: &Spec) -> Outcome {
    match ending {
        Ending::Exited(0) => Outcome { status: Some(SUCCEEDED), exit_code: Some(0), error: None },
        Ending::Exited(code) => Outcome {
            status: Some(FAILED),
            exit_code: Some(code),
            error: Some(format!("exited with code {code}")),
        },
        Ending::Signalled(sig) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map_or_else(|_| sig.to_string(), |s| s.as_str().to_string());
            Outcome { status: Some(FAILED), exit_code: None, error: Some(format!("ended by signal {name}")) }
        }
        Ending::TimedOut => Outcome {
            status: Some(TIMED_OUT),
            exit_code: None,
            error: Some(format!("timed out after {}", process::human(spec.timeout))),
        },
        Ending::Stopped(Stop::Cancelled(reason)) => {
            Outcome { status: Some(CANCELLED), exit_code: None, error: Some(reason) }
        }
        Ending::Stopped(Stop::Lost) => Outcome { status: None, exit_code: None, error: None },
        Ending::Stopped(Stop::Shutdown) => {
            Outcome::failed("the worker stopped while the task ran; start it again with re-run")
        }
        Ending::NotStarted(message) => Outcome::failed(message),
    }
}
