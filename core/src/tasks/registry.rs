//! The goblin registry: guilds of command goblins (`toolbelt`) and agent goblins (`members`), read
//! from a YAML file in the GoblinOS format.
//!
//! A file is checked as a whole before it is used: YAML syntax, field types, unknown fields in
//! toolbelt entries (where a misspelt `safe` or `timeout_s` would silently change how a command
//! runs; elsewhere unknown fields are ignored, so a GoblinOS file's other metadata loads), ids,
//! duplicates, timeouts and environment names. Every problem is reported with its line, column and
//! field (`guilds[1].toolbelt[0].timeout_s`). A file with problems never replaces the registry in
//! force; [`RegistryStore`] keeps the last good one and says what is wrong with the newer file.
//!
//! ```text
//!  goblins.yaml ──poll mtime (2 s) / admin reload──► parse + check ──ok──► Arc<Loaded> (swapped whole)
//!                                                        └─problems──► status.error (previous stays)
//! ```

use std::{
    collections::HashSet,
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::clock::SharedClock;

/// The sample registry shipped with the program (`config/goblins.yaml`), used when no registry is
/// configured and that file is not found, so tasks work out of the box.
pub const SAMPLE: &str = include_str!("../../../config/goblins.yaml");

/// The goblin id of custom scripts; no registry entry may use it.
pub const CUSTOM_SCRIPT: &str = "custom-script";

/// The largest registry file read.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The longest timeout a goblin may set, in seconds (a day, like the default-timeout setting).
pub const MAX_TIMEOUT_S: u64 = 86_400;

/// The longest command, in bytes.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024;

/// Environment names a goblin cannot ask for: the runner sets them itself.
pub const RESERVED_ENV: &[&str] = &["GOBLIN_TASK", "GOBLIN_TASK_ID"];

// ---- the file as written ----

#[derive(Deserialize)]
struct FileDoc {
    #[serde(default)]
    guilds: Vec<GuildDoc>,
}

#[derive(Deserialize)]
struct GuildDoc {
    id: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    toolbelt: Vec<ToolDoc>,
    #[serde(default)]
    members: Vec<MemberDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolDoc {
    id: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    command: Spanned<String>,
    #[serde(default = "yes")]
    safe: bool,
    #[serde(default)]
    required_env: Vec<Spanned<String>>,
    #[serde(default)]
    timeout_s: Option<Spanned<u64>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct MemberDoc {
    id: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    brain: Option<Spanned<String>>,
    #[serde(default)]
    prompt: PromptDoc,
    #[serde(default)]
    responsibilities: Vec<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptDoc {
    #[serde(default)]
    system: String,
    #[serde(default)]
    style: Vec<String>,
    #[serde(default)]
    examples: Vec<Example>,
}

// ---- the registry as used ----

/// A checked registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub guilds: Vec<Guild>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guild {
    pub id: String,
    /// The id when the file gives no name.
    pub name: String,
    pub summary: Option<String>,
    pub toolbelt: Vec<CommandGoblin>,
    pub members: Vec<AgentGoblin>,
}

/// A goblin that runs a shell command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandGoblin {
    pub id: String,
    /// The id when the file gives no name.
    pub name: String,
    pub summary: Option<String>,
    pub owner: Option<String>,
    /// Run as `/bin/sh -c <command>`; the task text is in `$GOBLIN_TASK`.
    pub command: String,
    /// `false`: only admins may run it, and only after confirming.
    pub safe: bool,
    /// Names taken from the worker's environment and given to the command.
    pub required_env: Vec<String>,
    /// Overrides the `tasks.default_timeout_seconds` setting.
    pub timeout_s: Option<u32>,
}

/// A goblin that answers through a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentGoblin {
    pub id: String,
    /// The id when the file gives no title.
    pub title: String,
    /// The model asked for; when the gateway serves no model of that name, the first chat model.
    pub brain: Option<String>,
    pub prompt: Prompt,
    pub responsibilities: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub system: String,
    pub style: Vec<String>,
    pub examples: Vec<Example>,
}

/// An example for the model: a text shown in the system prompt, or an exchange sent as an earlier
/// question and answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Example {
    Text(String),
    Exchange { user: String, assistant: String },
}

/// One goblin found by id, with its guild.
#[derive(Clone, Copy, Debug)]
pub enum Goblin<'a> {
    Command { guild: &'a Guild, goblin: &'a CommandGoblin },
    Agent { guild: &'a Guild, goblin: &'a AgentGoblin },
}

impl Goblin<'_> {
    pub fn guild(&self) -> &Guild {
        match self {
            Goblin::Command { guild, .. } | Goblin::Agent { guild, .. } => guild,
        }
    }

    /// A command goblin's name or an agent's title.
    pub fn name(&self) -> &str {
        match self {
            Goblin::Command { goblin, .. } => &goblin.name,
            Goblin::Agent { goblin, .. } => &goblin.title,
        }
    }

    /// `command` or `agent`.
    pub fn kind(&self) -> &'static str {
        match self {
            Goblin::Command { .. } => "command",
            Goblin::Agent { .. } => "agent",
        }
    }

    /// Agents only talk to a model; a command goblin says whether it is safe.
    pub fn safe(&self) -> bool {
        match self {
            Goblin::Command { goblin, .. } => goblin.safe,
            Goblin::Agent { .. } => true,
        }
    }
}

impl Registry {
    /// Parses and checks a registry file's text.
    ///
    /// # Errors
    /// Every problem found, each with its line, column and field; a YAML syntax or type error stops
    /// the reading, so it is reported alone.
    pub fn parse(text: &str) -> Result<Self, Vec<Problem>> {
        let options = serde_saphyr::options! { with_snippet: false };
        let doc: FileDoc = if text.trim().is_empty() {
            FileDoc { guilds: Vec::new() }
        } else {
            serde_saphyr::from_str_with_options(text, options)
                .map_err(|e| vec![problem_from_yaml(text, &e)])?
        };
        check(doc)
    }

    /// The goblin with this id.
    pub fn find(&self, id: &str) -> Option<Goblin<'_>> {
        self.guilds.iter().find_map(|guild| {
            guild
                .toolbelt
                .iter()
                .find(|g| g.id == id)
                .map(|goblin| Goblin::Command { guild, goblin })
                .or_else(|| {
                    guild.members.iter().find(|g| g.id == id).map(|goblin| Goblin::Agent { guild, goblin })
                })
        })
    }

    /// How many goblins there are.
    pub fn len(&self) -> usize {
        self.guilds.iter().map(|g| g.toolbelt.len() + g.members.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The guilds with the goblins that match `query` (case-insensitive, in ids, names, summaries,
    /// owners and responsibilities). A guild whose own id or name matches keeps all its goblins;
    /// guilds left without goblins are left out. An empty query matches everything.
    pub fn search(&self, query: &str) -> Vec<Guild> {
        let q = query.trim().to_lowercase();
        if q.is_empty() {
            return self.guilds.clone();
        }
        let hit = |texts: &[Option<&str>]| texts.iter().flatten().any(|t| t.to_lowercase().contains(&q));
        self.guilds
            .iter()
            .filter_map(|guild| {
                if hit(&[Some(&guild.id), Some(&guild.name), guild.summary.as_deref()]) {
                    return Some(guild.clone());
                }
                let toolbelt: Vec<CommandGoblin> = guild
                    .toolbelt
                    .iter()
                    .filter(|g| hit(&[Some(&g.id), Some(&g.name), g.summary.as_deref(), g.owner.as_deref()]))
                    .cloned()
                    .collect();
                let members: Vec<AgentGoblin> = guild
                    .members
                    .iter()
                    .filter(|g| {
                        hit(&[Some(&g.id), Some(&g.title)])
                            || g.responsibilities.iter().any(|r| r.to_lowercase().contains(&q))
                    })
                    .cloned()
                    .collect();
                (!toolbelt.is_empty() || !members.is_empty()).then(|| Guild {
                    toolbelt,
                    members,
                    ..guild.clone()
                })
            })
            .collect()
    }
}

// ---- problems ----

/// One thing wrong with a registry file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// 1-based; 0 when the problem is with the file as a whole (it cannot be read).
    pub line: usize,
    pub column: usize,
    /// Where in the document: `guilds[1].toolbelt[0].timeout_s`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}, column {}: ", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a registry file was not loaded: where it is, and every problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct LoadError {
    pub path: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match self.problems.split_first() {
            Some((first, rest)) => {
                write!(f, "{first}")?;
                if !rest.is_empty() {
                    write!(
                        f,
                        " (and {} more: {})",
                        rest.len(),
                        rest.iter().map(Problem::to_string).collect::<Vec<_>>().join("; ")
                    )?;
                }
                Ok(())
            }
            None => f.write_str("invalid"),
        }
    }
}

fn at<T>(s: &Spanned<T>, field: String, message: impl Into<String>) -> Problem {
    Problem {
        line: s.referenced.line() as usize,
        column: s.referenced.column() as usize,
        field,
        message: message.into(),
    }
}

/// Letters, digits, '-', '_' and '.', starting with a letter or digit, at most `max` characters.
fn valid_id(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A portable environment name: a letter or '_', then letters, digits and '_'.
pub fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn text(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The checks beyond YAML types, collecting every problem.
fn check(doc: FileDoc) -> Result<Registry, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut guild_ids = HashSet::new();
    let mut goblin_ids = HashSet::new();
    let mut guilds = Vec::with_capacity(doc.guilds.len());
    for (gi, g) in doc.guilds.into_iter().enumerate() {
        let base = format!("guilds[{gi}]");
        let id = g.id.value.trim().to_string();
        if !valid_id(&id, 64) {
            problems.push(at(
                &g.id,
                format!("{base}.id"),
                "must be 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit",
            ));
        } else if !guild_ids.insert(id.clone()) {
            problems.push(at(
                &g.id,
                format!("{base}.id"),
                format!("another guild already has the id '{id}'"),
            ));
        }
        let mut goblin_id = |s: &Spanned<String>, field: String, problems: &mut Vec<Problem>| -> String {
            let id = s.value.trim().to_string();
            if !valid_id(&id, 128) {
                problems.push(at(
                    s,
                    field,
                    "must be 1 to 128 letters, digits, '-', '_' or '.', starting with a letter or digit",
                ));
            } else if id == CUSTOM_SCRIPT {
                problems.push(at(s, field, format!("'{CUSTOM_SCRIPT}' is reserved for custom scripts")));
            } else if !goblin_ids.insert(id.clone()) {
                problems.push(at(
                    s,
                    field,
                    format!("another goblin already has the id '{id}'; goblin ids are unique across guilds"),
                ));
            }
            id
        };

        let mut toolbelt = Vec::with_capacity(g.toolbelt.len());
        for (ti, t) in g.toolbelt.into_iter().enumerate() {
            let base = format!("{base}.toolbelt[{ti}]");
            let id = goblin_id(&t.id, format!("{base}.id"), &mut problems);
            let command = t.command.value.trim().to_string();
            if command.is_empty() {
                problems.push(at(
                    &t.command,
                    format!("{base}.command"),
                    "is empty; give the shell command to run",
                ));
            } else if command.contains('\0') {
                problems.push(at(&t.command, format!("{base}.command"), "contains a NUL character"));
            } else if command.len() > MAX_COMMAND_BYTES {
                problems.push(at(
                    &t.command,
                    format!("{base}.command"),
                    format!("is longer than {MAX_COMMAND_BYTES} bytes"),
                ));
            }
            let mut required_env = Vec::with_capacity(t.required_env.len());
            for (ei, e) in t.required_env.iter().enumerate() {
                let name = e.value.trim();
                let field = format!("{base}.required_env[{ei}]");
                if !valid_env_name(name) {
                    problems.push(at(e, field, format!("'{name}' is not an environment variable name (letters, digits and '_', not starting with a digit)")));
                } else if RESERVED_ENV.contains(&name) {
                    problems.push(at(e, field, format!("{name} is set by the runner itself")));
                } else if !required_env.iter().any(|n: &String| n == name) {
                    required_env.push(name.to_string());
                }
            }
            let timeout_s = match &t.timeout_s {
                Some(s) if !(1..=MAX_TIMEOUT_S).contains(&s.value) => {
                    problems.push(at(
                        s,
                        format!("{base}.timeout_s"),
                        format!(
                            "must be a whole number of seconds from 1 to {MAX_TIMEOUT_S}; got {}",
                            s.value
                        ),
                    ));
                    None
                }
                Some(s) => u32::try_from(s.value).ok(),
                None => None,
            };
            toolbelt.push(CommandGoblin {
                name: text(t.name).unwrap_or_else(|| id.clone()),
                id,
                summary: text(t.summary),
                owner: text(t.owner),
                command,
                safe: t.safe,
                required_env,
                timeout_s,
            });
        }

        let mut members = Vec::with_capacity(g.members.len());
        for (mi, m) in g.members.into_iter().enumerate() {
            let base = format!("{base}.members[{mi}]");
            let id = goblin_id(&m.id, format!("{base}.id"), &mut problems);
            let brain = match &m.brain {
                Some(b) if b.value.trim().is_empty() => None,
                Some(b) if b.value.trim().chars().count() > 192 => {
                    problems.push(at(
                        b,
                        format!("{base}.brain"),
                        "is longer than 192 characters; give a model name",
                    ));
                    None
                }
                Some(b) => Some(b.value.trim().to_string()),
                None => None,
            };
            members.push(AgentGoblin {
                title: text(m.title).unwrap_or_else(|| id.clone()),
                id,
                brain,
                prompt: Prompt {
                    system: m.prompt.system.trim().to_string(),
                    style: m.prompt.style.into_iter().filter_map(|s| text(Some(s))).collect(),
                    examples: m.prompt.examples,
                },
                responsibilities: m.responsibilities.into_iter().filter_map(|s| text(Some(s))).collect(),
            });
        }
        guilds.push(Guild {
            name: text(g.name).unwrap_or_else(|| id.clone()),
            id,
            summary: text(g.summary),
            toolbelt,
            members,
        });
    }
    if problems.is_empty() { Ok(Registry { guilds }) } else { Err(problems) }
}

/// A YAML syntax or type error as a [`Problem`], with the field found from its location.
fn problem_from_yaml(text: &str, e: &serde_saphyr::Error) -> Problem {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line() as usize, l.column() as usize));
    let raw = e.to_string();
    // The location is reported in the problem's own fields.
    let mut message = match raw.rfind(" at line ") {
        Some(i) => raw[..i].to_string(),
        None => raw,
    };
    message = message.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    // Errors about a mapping's fields point at one of its keys; the field is the mapping.
    let about_mapping =
        ["missing field", "unknown field", "duplicate mapping key"].iter().any(|p| message.starts_with(p));
    let mut segments = path_at(text, line, column);
    if about_mapping && matches!(segments.last(), Some((l, Segment::Key(_))) if *l == line) {
        segments.pop();
    }
    let field = render(&segments);
    if let Some(hint) = hint(&field, &message) {
        message = format!("{message} ({hint})");
    }
    Problem { line, column, field, message }
}

/// What a field should hold, for type errors that only name the Rust type.
fn hint(field: &str, message: &str) -> Option<&'static str> {
    if !(message.starts_with("invalid") || message.starts_with("expected")) {
        return None;
    }
    let last = field.rsplit('.').next().unwrap_or("");
    let last = last.split('[').next().unwrap_or(last);
    Some(match last {
        "timeout_s" => "a whole number of seconds",
        "safe" => "true or false",
        "required_env" => "a list of environment variable names",
        "guilds" | "toolbelt" | "members" | "style" | "examples" | "responsibilities" => "a list",
        "prompt" => "a mapping with system, style and examples",
        "" => "the file must be a mapping with a list of guilds",
        _ => "text",
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn render(segments: &[(usize, Segment)]) -> String {
    let mut out = String::new();
    for (_, s) in segments {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The key of a `key: value` (or `key:`) line, and what follows the colon.
fn split_key(s: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"')?;
        (q[..end].to_string(), &q[end + 1..])
    } else if let Some(q) = s.strip_prefix('\'') {
        let end = q.find('\'')?;
        (q[..end].to_string(), &q[end + 1..])
    } else {
        let end = s.find(": ").or_else(|| s.ends_with(':').then(|| s.len() - 1))?;
        let key = &s[..end];
        if key.is_empty() || key.starts_with(['{', '[', '#', '&', '*', '!', '|', '>']) {
            return None;
        }
        (key.trim().to_string(), &s[end..])
    };
    let value = rest.strip_prefix(':')?;
    (value.is_empty() || value.starts_with(' ')).then_some((key, value))
}

/// The path of keys and list positions leading to `line` (1-based) in a block-style YAML text, each
/// with the line it was read on: `guilds`, `[1]`, `toolbelt`, `[0]`, `timeout_s`. Flow-style
/// collections (`[a, b]`, `{a: 1}`) are not entered; a path into one stops at its key.
fn path_at(text: &str, line: usize, _column: usize) -> Vec<(usize, Segment)> {
    // (indent, line, segment); the indent is the column the key or dash starts at.
    let mut stack: Vec<(usize, usize, Segment)> = Vec::new();
    // Lines indented deeper than this belong to a block scalar (`|`, `>`).
    let mut scalar_above: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if n > line {
            break;
        }
        let content = raw.trim_start_matches(' ');
        let indent = raw.len() - content.len();
        if let Some(b) = scalar_above {
            if content.is_empty() || indent > b {
                continue;
            }
            scalar_above = None;
        }
        if content.is_empty()
            || content.starts_with('#')
            || content.starts_with("---")
            || content.starts_with("...")
        {
            continue;
        }
        let mut col = indent;
        let mut rest = content;
        loop {
            if rest == "-" || rest.starts_with("- ") {
                let mut next = 0;
                while let Some((ind, _, seg)) = stack.last() {
                    if *ind > col {
                        stack.pop();
                    } else if *ind == col && matches!(seg, Segment::Index(_)) {
                        if let Segment::Index(k) = seg {
                            next = k + 1;
                        }
                        stack.pop();
                    } else {
                        break;
                    }
                }
                stack.push((col, n, Segment::Index(next)));
                let after = &rest[1..];
                let trimmed = after.trim_start_matches(' ');
                col += 1 + (after.len() - trimmed.len());
                rest = trimmed;
                if rest.is_empty() {
                    break;
                }
                continue;
            }
            if let Some((key, value)) = split_key(rest) {
                while stack.last().is_some_and(|(ind, _, _)| *ind >= col) {
                    stack.pop();
                }
                stack.push((col, n, Segment::Key(key)));
                let v = value.trim_start();
                if v.starts_with('|') || v.starts_with('>') {
                    scalar_above = Some(col);
                }
            }
            break;
        }
    }
    stack.into_iter().map(|(_, n, s)| (n, s)).collect()
}

// ---- the store ----

/// A registry in force, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loaded {
    pub registry: Registry,
    /// The file's path, or "built-in sample".
    pub source: String,
    pub loaded_at: DateTime<Utc>,
}

/// What the registry page and API show about the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStatus {
    /// The file watched.
    pub path: String,
    /// Where the registry in force came from.
    pub source: String,
    pub loaded_at: DateTime<Utc>,
    pub guilds: usize,
    pub goblins: usize,
    /// Why the newest version of the file was refused, while the previous registry stays in force.
    pub error: Option<LoadError>,
    pub failed_at: Option<DateTime<Utc>>,
}

/// The file's modification time and length when it was last read.
type Stamp = Option<(SystemTime, u64)>;

/// The registry of this process: the last good version of the file, reloaded when it changes.
/// Share one as `Arc<RegistryStore>`.
pub struct RegistryStore {
    path: PathBuf,
    configured: bool,
    clock: SharedClock,
    current: RwLock<Arc<Loaded>>,
    failure: RwLock<Option<(LoadError, DateTime<Utc>)>>,
    seen: Mutex<Stamp>,
    /// Serialises reloads, so two at once cannot put an older file back.
    reloading: tokio::sync::Mutex<()>,
}

impl fmt::Debug for RegistryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryStore").field("path", &self.path).finish_non_exhaustive()
    }
}

async fn stamp(path: &Path) -> Stamp {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl RegistryStore {
    /// Loads the registry at `path`. When `configured` is false and the file does not exist, the
    /// built-in sample is used until it appears. A file that cannot be loaded leaves an empty
    /// registry in force, and the problems in [`RegistryStore::status`] (and the log).
    pub async fn open(path: PathBuf, configured: bool, clock: SharedClock) -> Arc<Self> {
        let empty = Loaded {
            registry: Registry::default(),
            source: path.display().to_string(),
            loaded_at: clock.now(),
        };
        let store = Arc::new(Self {
            path,
            configured,
            clock,
            current: RwLock::new(Arc::new(empty)),
            failure: RwLock::new(None),
            seen: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
        });
        match store.reload().await {
            Ok(loaded) => {
                tracing::info!(source = %loaded.source, goblins = loaded.registry.len(), "loaded the goblin registry");
            }
            Err(e) => {
                tracing::error!(error = %e, "the goblin registry could not be loaded; no goblins can run until it is fixed")
            }
        }
        store
    }

    /// The registry in force.
    pub fn current(&self) -> Arc<Loaded> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The path watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn status(&self) -> RegistryStatus {
        let current = self.current();
        let failure = self.failure.read().unwrap_or_else(|e| e.into_inner()).clone();
        RegistryStatus {
            path: self.path.display().to_string(),
            source: current.source.clone(),
            loaded_at: current.loaded_at,
            guilds: current.registry.guilds.len(),
            goblins: current.registry.len(),
            failed_at: failure.as_ref().map(|f| f.1),
            error: failure.map(|f| f.0),
        }
    }

    /// Reads the file again now. A good file replaces the registry in force; otherwise it stays and
    /// the problems are kept for [`RegistryStore::status`].
    ///
    /// # Errors
    /// The file's problems (or why it could not be read).
    pub async fn reload(&self) -> Result<Arc<Loaded>, LoadError> {
        let _one = self.reloading.lock().await;
        let before = stamp(&self.path).await;
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = before;
        let path = self.path.display().to_string();
        let whole = |message: String| LoadError {
            path: path.clone(),
            problems: vec![Problem { line: 0, column: 0, field: String::new(), message }],
        };
        let outcome = match before {
            None if !self.configured => Registry::parse(SAMPLE)
                .map(|r| (r, "built-in sample".to_string()))
                .map_err(|problems| LoadError { path: "built-in sample".into(), problems }),
            None => Err(whole(
                "the file does not exist or cannot be read (tasks.registry, GOBLIN_REGISTRY)".into(),
            )),
            Some((_, len)) if len > MAX_FILE_BYTES => {
                Err(whole(format!("the file is larger than {MAX_FILE_BYTES} bytes")))
            }
            Some(_) => match tokio::fs::read(&self.path).await {
                Err(e) => Err(whole(format!("the file cannot be read: {e}"))),
                Ok(bytes) => match String::from_utf8(bytes) {
                    Err(_) => Err(whole("the file is not UTF-8 text".into())),
                    Ok(text) => Registry::parse(&text)
                        .map(|r| (r, path.clone()))
                        .map_err(|problems| LoadError { path: path.clone(), problems }),
                },
            },
        };
        match outcome {
            Ok((registry, source)) => {
                let loaded = Arc::new(Loaded { registry, source, loaded_at: self.clock.now() });
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded.clone();
                *self.failure.write().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(loaded)
            }
            Err(e) => {
                *self.failure.write().unwrap_or_else(|e| e.into_inner()) =
                    Some((e.clone(), self.clock.now()));
                Err(e)
            }
        }
    }

    /// Reloads when the file's modification time or length changed since it was last read.
    /// `None` when it did not change.
    pub async fn reload_if_changed(&self) -> Option<Result<Arc<Loaded>, LoadError>> {
        let now = stamp(&self.path).await;
        if *self.seen.lock().unwrap_or_else(|e| e.into_inner()) == now {
            return None;
        }
        Some(self.reload().await)
    }

    /// Checks the file every `every` and reloads it when it changed. Holds no strong reference: the
    /// task ends once the store is dropped.
    pub fn spawn_watcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { return };
                match store.reload_if_changed().await {
                    Some(Ok(loaded)) => {
                        tracing::info!(source = %loaded.source, goblins = loaded.registry.len(), "reloaded the goblin registry");
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "the changed goblin registry was refused; the previous one stays in force");
                    }
                    None => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
guilds:
  - id: forge
    name: Forge
    toolbelt:
      - id: hello
        command: echo hi
        timeout_s: 5
      - id: wipe
        name: Wipe
        command: |
          rm -rf ./scratch
          echo done
        safe: false
        required_env: [WIPE_TOKEN]
    members:
      - id: scribe
        title: Scribe
        brain: gpt-4o-mini
        prompt:
          system: You write notes.
          style: [short]
          examples:
            - A plain example.
            - user: hi
              assistant: hello
        responsibilities: [notes]
        kpis: [ignored]
  - id: keepers
    toolbelt:
      - id: keep
        command: 'true'
";

    #[test]
    fn the_sample_registry_is_valid() {
        let r = Registry::parse(SAMPLE).unwrap();
        assert!(r.len() >= 4);
        assert!(
            r.guilds.iter().flat_map(|g| &g.toolbelt).any(|t| !t.safe),
            "the sample has an unsafe goblin"
        );
        assert!(r.guilds.iter().any(|g| !g.members.is_empty()), "the sample has an agent goblin");
    }

    #[test]
    fn a_good_file_reads_with_defaults() {
        let r = Registry::parse(GOOD).unwrap();
        assert_eq!(r.guilds.len(), 2);
        assert_eq!(r.len(), 4);
        let Some(Goblin::Command { guild, goblin }) = r.find("hello") else {
            panic!("hello is a command goblin")
        };
        assert_eq!(
            (guild.id.as_str(), goblin.name.as_str(), goblin.safe, goblin.timeout_s),
            ("forge", "hello", true, Some(5))
        );
        let Some(Goblin::Command { goblin: wipe, .. }) = r.find("wipe") else { panic!() };
        assert!(!wipe.safe);
        assert_eq!(wipe.command, "rm -rf ./scratch\necho done");
        assert_eq!(wipe.required_env, ["WIPE_TOKEN"]);
        let Some(Goblin::Agent { goblin: scribe, .. }) = r.find("scribe") else { panic!() };
        assert_eq!(scribe.brain.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(
            scribe.prompt.examples,
            [
                Example::Text("A plain example.".into()),
                Example::Exchange { user: "hi".into(), assistant: "hello".into() }
            ]
        );
        assert_eq!(r.guilds[1].name, "keepers", "the id stands in for a missing name");
        assert!(r.find("nope").is_none());
        assert!(Registry::parse("").unwrap().is_empty());
        assert!(Registry::parse("# nothing yet\n").unwrap().is_empty());
    }

    #[test]
    fn search_matches_goblins_and_guilds() {
        let r = Registry::parse(GOOD).unwrap();
        let found = r.search("WIPE");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].toolbelt.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["wipe"]);
        assert!(found[0].members.is_empty());
        assert_eq!(r.search("notes")[0].members[0].id, "scribe", "responsibilities match");
        let keepers = r.search("keepers");
        assert_eq!((keepers.len(), keepers[0].toolbelt.len()), (1, 1), "a guild match keeps its goblins");
        assert!(r.search("zzz").is_empty());
        assert_eq!(r.search("  ").len(), 2);
    }

    fn problems(text: &str) -> Vec<Problem> {
        Registry::parse(text).unwrap_err()
    }

    #[test]
    fn yaml_and_type_errors_name_the_line_and_field() {
        let p = problems(
            "guilds:\n  - id: a\n    toolbelt:\n      - id: x\n        command: echo\n        timeout_s: five\n",
        );
        assert_eq!((p[0].line, p[0].column), (6, 20));
        assert_eq!(p[0].field, "guilds[0].toolbelt[0].timeout_s");
        assert!(p[0].message.contains("whole number of seconds"), "{}", p[0]);

        let p = problems(
            "guilds:\n  - id: a\n    toolbelt:\n      - id: x\n        command: ls\n      - id: y\n        timeout_s: 5\n",
        );
        assert_eq!(p[0].field, "guilds[0].toolbelt[1]");
        assert!(p[0].message.contains("missing field `command`"), "{}", p[0]);

        let p = problems(
            "guilds:\n  - id: a\n    toolbelt:\n      - id: x\n        command: echo\n        saf: false\n",
        );
        assert_eq!((p[0].line, p[0].field.as_str()), (6, "guilds[0].toolbelt[0]"));
        assert!(p[0].message.contains("unknown field `saf`"), "{}", p[0]);

        let p = problems("guilds:\n  - id: a\n    toolbelt:\n      - id: x\n        command: [echo\n");
        assert_eq!(p[0].line, 5);
        assert!(p[0].to_string().starts_with("line 5, column"), "{}", p[0]);

        let p = problems("guilds: 5\n");
        assert_eq!((p[0].line, p[0].field.as_str()), (1, "guilds"));

        let p = problems(
            "guilds:\n  - id: a\n    toolbelt:\n      - id: x\n        command: echo\n        safe: maybe\n",
        );
        assert_eq!(p[0].field, "guilds[0].toolbelt[0].safe");
        assert!(p[0].message.contains("true or false"), "{}", p[0]);
    }

    #[test]
    fn checks_collect_every_problem_with_its_place() {
        let text = "\
guilds:
  - id: a
    toolbelt:
      - id: x
        command: '  '
        timeout_s: 0
        required_env: [GOOD_NAME, 9bad, GOBLIN_TASK]
      - id: x
        command: echo
  - id: a
    members:
      - id: custom-script
      - id: 'bad id'
";
        let p = problems(text);
        let got: Vec<(usize, &str)> = p.iter().map(|p| (p.line, p.field.as_str())).collect();
        assert_eq!(
            got,
            [
                (5, "guilds[0].toolbelt[0].command"),
                (7, "guilds[0].toolbelt[0].required_env[1]"),
                (7, "guilds[0].toolbelt[0].required_env[2]"),
                (6, "guilds[0].toolbelt[0].timeout_s"),
                (8, "guilds[0].toolbelt[1].id"),
                (10, "guilds[1].id"),
                (12, "guilds[1].members[0].id"),
                (13, "guilds[1].members[1].id"),
            ]
        );
        assert!(p[3].message.contains("from 1 to 86400; got 0"), "{}", p[3]);
        assert!(p[4].message.contains("already has the id 'x'"), "{}", p[4]);
        let e = LoadError { path: "goblins.yaml".into(), problems: p };
        assert!(
            e.to_string()
                .starts_with("goblins.yaml: line 5, column 18: guilds[0].toolbelt[0].command: is empty"),
            "{e}"
        );
    }

    #[test]
    fn paths_follow_indentation_lists_and_block_scalars() {
        let text =
            "guilds:\n- id: a\n  toolbelt:\n  - id: x\n    command: |\n      key: not a key\n    safe: no\n";
        let path = |line| render(&path_at(text, line, 1));
        assert_eq!(path(2), "guilds[0].id");
        assert_eq!(path(4), "guilds[0].toolbelt[0].id");
        assert_eq!(path(6), "guilds[0].toolbelt[0].command");
        assert_eq!(path(7), "guilds[0].toolbelt[0].safe");
    }

    #[tokio::test]
    async fn a_bad_file_keeps_the_previous_registry_until_it_is_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("goblins.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let store = RegistryStore::open(path.clone(), true, crate::clock::system()).await;
        assert_eq!(store.current().registry.len(), 4);
        assert!(store.reload_if_changed().await.is_none(), "unchanged");

        std::fs::write(&path, "guilds:\n  - id: a\n    toolbelt:\n      - id: x\n        timeout_s: 5\n")
            .unwrap();
        let e = store.reload().await.unwrap_err();
        assert!(e.to_string().contains("line 5") && e.to_string().contains("missing field `command`"), "{e}");
        assert_eq!(store.current().registry.len(), 4, "the previous registry stays");
        let status = store.status();
        assert_eq!(status.error.as_ref(), Some(&e));
        assert_eq!(status.goblins, 4);

        std::fs::write(&path, "guilds:\n  - id: b\n    toolbelt:\n      - id: y\n        command: echo\n")
            .unwrap();
        let loaded = store.reload_if_changed().await.expect("changed").unwrap();
        assert!(loaded.registry.find("y").is_some() && loaded.registry.find("hello").is_none());
        assert!(store.status().error.is_none());

        // A configured file that goes away is an error; the registry in force stays.
        std::fs::remove_file(&path).unwrap();
        assert!(store.reload().await.unwrap_err().to_string().contains("does not exist"));
        assert!(store.current().registry.find("y").is_some());

        // An unconfigured default path that does not exist means the built-in sample.
        let sample =
            RegistryStore::open(dir.path().join("missing.yaml"), false, crate::clock::system()).await;
        assert_eq!(sample.current().source, "built-in sample");
        assert!(sample.current().registry.find("hello").is_some());
    }
}
