//! The Raptor log: one JSON object per line, written by a thread of its own to a file rotated at a
//! size and at the start of each day (`raptor.log`, then `raptor.log.1`, `raptor.log.2`, …), and
//! read back from its end.
//!
//! Writers never wait: [`RaptorLog::write_line`] hands the line to a bounded channel and a full
//! channel drops it (counted). [`tail`] reads backwards from the end of the current file in 64 KiB
//! chunks and stops as soon as it has what was asked for, or after [`MAX_SCAN_BYTES`]: a 100 MB log
//! costs the same as a small one.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc::{self, SyncSender, TrySendError},
    },
    time::Duration,
};

use rolling_file::{BasicRollingFileAppender, RollingConditionBasic};
use serde::Serialize;

use crate::config::RaptorLevel;

/// Lines the channel to the writer thread holds.
const QUEUE: usize = 8_192;
/// Bytes read per step of a tail.
const CHUNK: usize = 64 * 1024;
/// The most bytes one tail reads from the file, however few lines matched.
pub const MAX_SCAN_BYTES: u64 = 8 * 1024 * 1024;
/// A line longer than this is cut in a tail: its end is kept, after `…`.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// Default and largest `lines` of a tail.
pub const DEFAULT_TAIL_LINES: usize = 200;
pub const MAX_TAIL_LINES: usize = 10_000;
/// Default and largest `max_chars` of a tail.
pub const DEFAULT_TAIL_CHARS: usize = 64 * 1024;
pub const MAX_TAIL_CHARS: usize = 1024 * 1024;

enum Msg {
    Line(String),
    Flush(mpsc::Sender<()>),
}

/// The writer side of the Raptor log. Shared as `Arc`; the thread stops when the last handle goes.
pub struct RaptorLog {
    path: PathBuf,
    tx: SyncSender<Msg>,
    written: Arc<AtomicU64>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for RaptorLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaptorLog").field("path", &self.path).finish_non_exhaustive()
    }
}

impl RaptorLog {
    /// Opens (creating the directory and the file when missing) and starts the writer thread.
    ///
    /// # Errors
    /// When the directory or the file cannot be created or opened.
    pub fn open(path: &Path, max_file_bytes: u64, max_files: u32) -> io::Result<Arc<Self>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let condition = RollingConditionBasic::new().daily().max_size(max_file_bytes.max(1024));
        let mut file = BasicRollingFileAppender::new(path, condition, max_files.max(1) as usize)?;
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
        let written = Arc::new(AtomicU64::new(0));
        let counter = written.clone();
        std::thread::Builder::new().name("raptor-log".into()).spawn(move || {
            // Ends when every sender is gone.
            while let Ok(first) = rx.recv() {
                let mut next = Some(first);
                let mut acks = Vec::new();
                while let Some(msg) = next.take() {
                    match msg {
                        Msg::Line(line) => {
                            if file.write_all(line.as_bytes()).and_then(|()| file.write_all(b"\n")).is_ok() {
                                counter.fetch_add(1, Relaxed);
                            }
                        }
                        Msg::Flush(ack) => acks.push(ack),
                    }
                    next = rx.try_recv().ok();
                }
                // Readers see every line once the queue is empty.
                let _ = file.flush();
                for ack in acks {
                    let _ = ack.send(());
                }
            }
        })?;
        Ok(Arc::new(Self { path: path.to_path_buf(), tx, written, dropped: AtomicU64::new(0) }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one line (without its newline). Never waits: a full queue drops the line.
    pub fn write_line(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(Msg::Line(line))
        {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Lines written so far, and lines dropped because the queue was full.
    pub fn counts(&self) -> (u64, u64) {
        (self.written.load(Relaxed), self.dropped.load(Relaxed))
    }

    /// Waits (blocking, up to `timeout`) until every line queued before the call is in the file.
    pub fn flush_blocking(&self, timeout: Duration) -> bool {
        let (ack, done) = mpsc::channel();
        if self.tx.send(Msg::Flush(ack)).is_err() {
            return false;
        }
        done.recv_timeout(timeout).is_ok()
    }
}

/// What to read back from the end of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailRequest {
    /// At most this many lines (1 to [`MAX_TAIL_LINES`]).
    pub lines: usize,
    /// At most this many characters in all (1 to [`MAX_TAIL_CHARS`]); the oldest lines go first.
    pub max_chars: usize,
    /// Only lines at least this severe (samples count as `info`); `None` for every line.
    pub level: Option<RaptorLevel>,
}

impl Default for TailRequest {
    fn default() -> Self {
        Self { lines: DEFAULT_TAIL_LINES, max_chars: DEFAULT_TAIL_CHARS, level: None }
    }
}

/// The end of the log, oldest line first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tail {
    pub lines: Vec<String>,
    /// Bytes read from the file to find them.
    pub bytes_read: u64,
    /// The size of the file.
    pub file_bytes: u64,
    /// Whether the file holds earlier lines than those returned (that matched, or were not looked at).
    pub more_before: bool,
}

/// Reads the last lines of the file at `path`, reading backwards and never more than
/// [`MAX_SCAN_BYTES`]. A missing file is an empty tail.
///
/// # Errors
/// When the file exists but cannot be read.
pub fn tail(path: &Path, req: TailRequest) -> io::Result<Tail> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tail::default()),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let want_lines = req.lines.clamp(1, MAX_TAIL_LINES);
    let want_chars = req.max_chars.clamp(1, MAX_TAIL_CHARS);
    let mut out: Vec<String> = Vec::new();
    let mut chars = 0usize;
    let mut pos = size;
    let mut read = 0u64;
    // The start of the earliest line seen so far, whose beginning lies before `pos`.
    let mut partial: Vec<u8> = Vec::new();
    // True while skipping the rest of a line already cut and returned.
    let mut skipping = false;
    let mut buf = vec![0u8; CHUNK];
    let mut full = false;
    'outer: while pos > 0 && read < MAX_SCAN_BYTES {
        let n = CHUNK.min(pos as usize);
        pos -= n as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..n])?;
        read += n as u64;
        let mut chunk = buf[..n].to_vec();
        chunk.extend_from_slice(&partial);
        partial.clear();
        // Complete lines are those after a newline in the chunk (and the first one at offset 0).
        let mut end = chunk.len();
        while let Some(nl) = chunk[..end].iter().rposition(|&b| b == b'\n') {
            let line = &chunk[nl + 1..end];
            end = nl;
            if std::mem::take(&mut skipping) {
                continue;
            }
            if take_line(line, &req, &mut out, &mut chars, want_lines, want_chars) {
                full = true;
                break 'outer;
            }
        }
        partial.extend_from_slice(&chunk[..end]);
        if partial.len() > MAX_LINE_BYTES && !skipping {
            // A very long line: return its end and skip back to its start without keeping it.
            let line = std::mem::take(&mut partial);
            skipping = true;
            if take_line(&line, &req, &mut out, &mut chars, want_lines, want_chars) {
                full = true;
                break;
            }
        } else if skipping {
            partial.clear();
        }
    }
    if !full && pos == 0 && !skipping && !partial.is_empty() {
        take_line(&partial, &req, &mut out, &mut chars, want_lines, want_chars);
    }
    out.reverse();
    Ok(Tail { lines: out, bytes_read: read, file_bytes: size, more_before: pos > 0 || full })
}

/// Adds a line (read backwards) when it matches; true once the tail is full.
fn take_line(
    raw: &[u8],
    req: &TailRequest,
    out: &mut Vec<String>,
    chars: &mut usize,
    want_lines: usize,
    want_chars: usize,
) -> bool {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.is_empty() {
        return false;
    }
    let line = if raw.len() > MAX_LINE_BYTES {
        format!("…{}", String::from_utf8_lossy(&raw[raw.len() - MAX_LINE_BYTES..]))
    } else {
        String::from_utf8_lossy(raw).into_owned()
    };
    if let Some(min) = req.level
        && line_level(&line).is_none_or(|l| l > min)
    {
        return false;
    }
    let n = line.chars().count();
    if *chars + n > want_chars && !out.is_empty() {
        return true;
    }
    *chars += n;
    out.push(line);
    out.len() >= want_lines || *chars >= want_chars
}

/// The `"level"` of a line this module wrote, without parsing the whole line.
fn line_level(line: &str) -> Option<RaptorLevel> {
    let at = line.find("\"level\":\"")? + 9;
    let rest = &line[at..];
    RaptorLevel::parse(&rest[..rest.find('"')?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize, level: &str) -> String {
        format!(r#"{{"ts":"t","level":"{level}","message":"line {i}"}}"#)
    }

    #[test]
    fn tail_returns_the_last_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raptor.log");
        let text: String =
            (0..1000).map(|i| line(i, if i % 10 == 0 { "ERROR" } else { "INFO" }) + "\n").collect();
        std::fs::write(&path, text).unwrap();

        let t = tail(&path, TailRequest { lines: 3, ..Default::default() }).unwrap();
        assert_eq!(t.lines, vec![line(997, "INFO"), line(998, "INFO"), line(999, "INFO")]);
        assert!(t.more_before);

        let t = tail(&path, TailRequest { lines: 2, level: Some(RaptorLevel::Warn), ..Default::default() })
            .unwrap();
        assert_eq!(t.lines, vec![line(980, "ERROR"), line(990, "ERROR")]);

        let all = tail(&path, TailRequest { lines: 5000, max_chars: MAX_TAIL_CHARS, level: None }).unwrap();
        assert_eq!(all.lines.len(), 1000);
        assert_eq!(all.lines[0], line(0, "ERROR"));
        assert!(!all.more_before);

        let few = tail(&path, TailRequest { lines: 100, max_chars: 50, level: None }).unwrap();
        assert_eq!(few.lines, vec![line(999, "INFO")], "at least one line, within the character budget");
    }

    #[test]
    fn a_huge_log_is_read_from_its_end_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raptor.log");
        {
            let mut f = std::io::BufWriter::new(File::create(&path).unwrap());
            let block: String = (0..10_000).map(|i| line(i, "INFO") + "\n").collect();
            let mut written = 0;
            while written < 100 * 1024 * 1024 {
                f.write_all(block.as_bytes()).unwrap();
                written += block.len();
            }
            f.write_all(line(424242, "ERROR").as_bytes()).unwrap();
            f.write_all(b"\n").unwrap();
        }
        let t = tail(&path, TailRequest { lines: 10, ..Default::default() }).unwrap();
        assert_eq!(t.lines.len(), 10);
        assert_eq!(t.lines[9], line(424242, "ERROR"));
        assert!(t.file_bytes >= 100 * 1024 * 1024);
        assert_eq!(t.bytes_read, CHUNK as u64, "ten lines sit in the last chunk");

        // Nothing but one error in 100 MB: the scan stops at its budget.
        let t = tail(&path, TailRequest { lines: 10, level: Some(RaptorLevel::Error), ..Default::default() })
            .unwrap();
        assert_eq!(t.lines, vec![line(424242, "ERROR")]);
        assert!(t.bytes_read <= MAX_SCAN_BYTES + CHUNK as u64, "{}", t.bytes_read);
        assert!(t.more_before);
    }

    #[test]
    fn an_endless_line_is_cut_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raptor.log");
        let mut text = vec![b'x'; 3 * 1024 * 1024];
        text.push(b'\n');
        text.extend_from_slice(line(1, "WARN").as_bytes());
        std::fs::write(&path, &text).unwrap();
        let t = tail(&path, TailRequest { lines: 5, max_chars: MAX_TAIL_CHARS, level: None }).unwrap();
        assert_eq!(t.lines.len(), 2);
        assert_eq!(t.lines[1], line(1, "WARN"));
        assert!(t.lines[0].starts_with('…') && t.lines[0].len() <= MAX_LINE_BYTES + 3);
        assert!(tail(&dir.path().join("missing.log"), TailRequest::default()).unwrap().lines.is_empty());
    }

    #[test]
    fn written_lines_can_be_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("raptor.log");
        let log = RaptorLog::open(&path, 1024 * 1024, 3).unwrap();
        for i in 0..5 {
            log.write_line(line(i, "WARN"));
        }
        assert!(log.flush_blocking(Duration::from_secs(5)));
        assert_eq!(log.counts(), (5, 0));
        let t = tail(&path, TailRequest::default()).unwrap();
        assert_eq!(t.lines.len(), 5);
        assert_eq!(t.lines[4], line(4, "WARN"));
    }
}
