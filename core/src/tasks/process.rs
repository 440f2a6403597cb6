//! Runs one command in a process group of its own and stops the whole group when it times out, is
//! cancelled, or leaves processes behind.
//!
//! ```text
//! spawn (env cleared, stdin closed, own process group) ──► stdout/stderr readers ──► Output
//!   ├─ exits ─────────────────────────────────┐
//!   ├─ timeout / stop ─► SIGTERM to the group ─► grace ─► SIGKILL to the group
//!   └───────────────────────────────────────────┴─► leftovers in the group: SIGTERM, grace, SIGKILL
//! ```
//!
//! The group is the command's process group: a process that leaves it on purpose (`setsid`,
//! daemonising) is beyond the runner's reach. When the worker itself is killed with SIGKILL, its
//! commands go on running on their own; the task is then marked "worker lost" by the lease.

use std::{os::unix::process::ExitStatusExt, path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::{io::AsyncReadExt, sync::watch};

use super::output::{Lines, Output, Stop, Stream, stopped};

/// How often a group is checked for leftover processes while it is being stopped.
const GROUP_CHECK_EVERY: Duration = Duration::from_millis(50);
/// How long the output readers get to finish once the group is gone.
const READERS_DRAIN: Duration = Duration::from_secs(2);

/// What to run, and how.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub program: String,
    pub args: Vec<String>,
    /// The whole environment of the command (nothing else is inherited).
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    pub timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    Exited(i32),
    /// Ended by a signal it did not expect (not one the runner sent).
    Signalled(i32),
    TimedOut,
    Stopped(Stop),
    /// It could not be started; the message says why.
    NotStarted(String),
}

/// A process group that is killed with SIGKILL if the run is abandoned (its future dropped).
struct Group {
    pgid: Option<Pid>,
}

impl Group {
    fn signal(&self, sig: Signal) -> bool {
        match self.pgid {
            Some(pgid) => killpg(pgid, sig).is_ok(),
            None => false,
        }
    }

    /// Whether any process of the group is still running. A member that has exited but was not
    /// reaped (orphans go to an init process, and some container inits never reap them) does not
    /// count: on Linux the group's members are read from /proc.
    fn exists(&self) -> bool {
        let Some(pgid) = self.pgid else { return false };
        if killpg(pgid, None).is_err() {
            return false;
        }
        running_members(pgid.as_raw()).unwrap_or(true)
    }

    /// SIGTERM to every process left in the group, and SIGKILL to those still there after `grace`.
    async fn stop(&self, grace: Duration) {
        if !self.signal(Signal::SIGTERM) {
            return;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.exists() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(GROUP_CHECK_EVERY).await;
        }
        self.signal(Signal::SIGKILL);
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
}

/// Whether a process that is not a zombie has process group `pgid`; `None` when /proc cannot say.
fn running_members(pgid: i32) -> Option<bool> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "pid (comm) state ppid pgrp …"; the command name may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("X");
        let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        if group == Some(pgid) && state != "Z" && state != "X" {
            return Some(true);
        }
    }
    Some(false)
}

/// Runs `spec` to its end, its output going to `out` line by line. `stop` ends it early: the group
/// gets SIGTERM, then SIGKILL after the grace period.
pub(crate) async fn run(spec: &Spec, out: &Arc<Output>, mut stop: watch::Receiver<Option<Stop>>) -> Ending {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&spec.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own: signals reach the command and everything it starts, and a terminal's
        // Ctrl-C aimed at the worker does not.
        .process_group(0)
        .kill_on_drop(false);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ending::NotStarted(format!("could not start {}: {e}", spec.program)),
    };
    let mut group = Group { pgid: child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw) };

    let mut readers = tokio::task::JoinSet::new();
    if let Some(stdout) = child.stdout.take() {
        readers.spawn(read(stdout, Stream::Stdout, out.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.spawn(read(stderr, Stream::Stderr, out.clone()));
    }

    let timeout = tokio::time::sleep(spec.timeout);
    tokio::pin!(timeout);
    let ending = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => match (s.code(), s.signal()) {
                (Some(code), _) => Ending::Exited(code),
                (None, Some(sig)) => Ending::Signalled(sig),
                (None, None) => Ending::Exited(-1),
            },
            Err(e) => Ending::NotStarted(format!("lost track of the command: {e}")),
        },
        () = &mut timeout => {
            out.line(Stream::System, &format!(
                "[timed out after {}: stopping the command (SIGTERM, then SIGKILL after {})]",
                human(spec.timeout),
                human(spec.grace)
            ));
            Ending::TimedOut
        }
        reason = stopped(&mut stop) => {
            let note = match &reason {
                Stop::Cancelled(reason) => format!("[{reason}: stopping the command]"),
                Stop::Lost => "[this worker lost the task to another instance: stopping the command]".to_string(),
                Stop::Shutdown => "[the worker is shutting down: stopping the command]".to_string(),
            };
            out.line(Stream::System, &note);
            Ending::Stopped(reason)
        }
    };
    if matches!(ending, Ending::TimedOut | Ending::Stopped(_)) {
        // The whole group is asked, then made, to stop.
        group.signal(Signal::SIGTERM);
        if tokio::time::timeout(spec.grace, child.wait()).await.is_err() {
            group.signal(Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
    // Anything the command left running in its group is stopped too.
    group.stop(spec.grace).await;
    group.disarm();

    // The pipes close once every process holding them is gone; one that escaped the group could
    // hold them open, so the readers get a little while and are then abandoned.
    let drained =
        tokio::time::timeout(READERS_DRAIN, async { while readers.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        readers.abort_all();
        out.line(
            Stream::System,
            "[output after the command ended was not kept: a process outside its group held the output open]",
        );
    }
    ending
}

async fn read(mut from: impl tokio::io::AsyncRead + Unpin, stream: Stream, out: Arc<Output>) {
    let mut lines = Lines::default();
    let mut buf = vec![0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                for line in lines.push(&buf[..n]) {
                    out.line(stream, &line);
                }
            }
        }
    }
    if let Some(rest) = lines.rest() {
        out.line(stream, &rest);
    }
}

/// `1.5 s`, `300 ms`, `10 s`.
pub(crate) fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::output::{Live, LogLine};
    use uuid::Uuid;

    fn spec(script: &str, timeout_ms: u64, env: &[(&str, &str)]) -> Spec {
        Spec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: env.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect(),
            workdir: std::env::temp_dir(),
            timeout: Duration::from_millis(timeout_ms),
            grace: Duration::from_millis(300),
        }
    }

    async fn go(spec: &Spec, cap: u64) -> (Ending, Vec<LogLine>) {
        let live = Arc::new(Live::new());
        let out = Arc::new(Output::new(Uuid::nil(), crate::clock::system(), live.clone(), cap, Vec::new()));
        let (_tx, rx) = watch::channel(None);
        let ending = run(spec, &out, rx).await;
        (ending, live.after(0, usize::MAX).0)
    }

    fn text(lines: &[LogLine], stream: &str) -> Vec<String> {
        lines.iter().filter(|l| l.stream == stream).map(|l| l.line.clone()).collect()
    }

    /// Running (a zombie left to an init that does not reap counts as gone).
    fn alive(pid: i32) -> bool {
        if nix::sys::signal::kill(Pid::from_raw(pid), None).is_err() {
            return false;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()).unwrap_or("X");
        state != "Z" && state != "X"
    }

    #[tokio::test]
    async fn output_streams_and_exit_codes() {
        let (ending, lines) =
            go(&spec("echo out; echo err >&2; printf 'no newline'; exit 3", 5000, &[]), 1 << 20).await;
        assert_eq!(ending, Ending::Exited(3));
        assert_eq!(text(&lines, "stdout"), ["out", "no newline"]);
        assert_eq!(text(&lines, "stderr"), ["err"]);
    }

    #[tokio::test]
    async fn only_the_given_environment_is_seen() {
        let (ending, lines) = go(&spec("env", 5000, &[("ONLY", "this")]), 1 << 20).await;
        assert_eq!(ending, Ending::Exited(0));
        let env = text(&lines, "stdout");
        assert!(env.contains(&"ONLY=this".to_string()), "{env:?}");
        assert!(!env.iter().any(|l| l.starts_with("CARGO") || l.starts_with("HOME=")), "{env:?}");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group_even_when_sigterm_is_ignored() {
        let script =
            "trap '' TERM; sh -c 'trap \"\" TERM; echo grandchild $$; exec sleep 30' & echo child $$; wait";
        let started = std::time::Instant::now();
        let (ending, lines) = go(&spec(script, 500, &[("PATH", "/usr/bin:/bin")]), 1 << 20).await;
        assert_eq!(ending, Ending::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        let pids: Vec<i32> = text(&lines, "stdout")
            .iter()
            .filter_map(|l| l.split_whitespace().nth(1).and_then(|p| p.parse().ok()))
            .collect();
        assert_eq!(pids.len(), 2, "{lines:?}");
        for pid in pids {
            assert!(!alive(pid), "process {pid} survived the timeout");
        }
        assert!(text(&lines, "system")[0].starts_with("[timed out after 500 ms"), "{lines:?}");
    }

    #[tokio::test]
    async fn processes_left_behind_by_a_finished_command_are_stopped() {
        let (ending, lines) =
            go(&spec("sleep 30 & echo $!", 5000, &[("PATH", "/usr/bin:/bin")]), 1 << 20).await;
        assert_eq!(ending, Ending::Exited(0));
        let pid: i32 = text(&lines, "stdout")[0].parse().unwrap();
        assert!(!alive(pid), "the background process outlived its command");
    }

    #[tokio::test]
    async fn a_stop_ends_the_run() {
        let live = Arc::new(Live::new());
        let out =
            Arc::new(Output::new(Uuid::nil(), crate::clock::system(), live.clone(), 1 << 20, Vec::new()));
        let (tx, rx) = watch::channel(None);
        let s = spec("echo started; exec sleep 30", 60_000, &[("PATH", "/usr/bin:/bin")]);
        let run = tokio::spawn(async move { run(&s, &out, rx).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send_replace(Some(Stop::Cancelled("cancelled by ada".into())));
        let ending = tokio::time::timeout(Duration::from_secs(5), run).await.unwrap().unwrap();
        assert_eq!(ending, Ending::Stopped(Stop::Cancelled("cancelled by ada".into())));
        assert!(live.after(0, 10).0.iter().any(|l| l.line == "[cancelled by ada: stopping the command]"));
    }

    #[tokio::test]
    async fn a_program_that_cannot_start_says_so() {
        let mut s = spec("true", 1000, &[]);
        s.program = "/nonexistent/shell".into();
        let (ending, _) = go(&s, 1024).await;
        assert!(matches!(ending, Ending::NotStarted(m) if m.contains("/nonexistent/shell")));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(300)), "300 ms");
        assert_eq!(human(Duration::from_secs(10)), "10 s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
    }
}
