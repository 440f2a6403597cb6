//! Tasks: the goblin registry by guild (searchable), with Run and Dry run for operators and admins,
//! the tasks queued and running, and the history with filters and older/newer paging. Each task
//! links to its own page (`crate::pages::task`), where its output streams in.
//!
//! Unsafe goblins (`safe: false`) offer their Run button to admins only, behind a confirmation box;
//! custom scripts appear for admins while the `tasks.allow_custom_scripts` setting allows them;
//! viewers see everything and run nothing. Every form works without JavaScript: starting is a plain
//! form post redirected to the task's page, and the search, the filters and the pages are GET forms
//! and links whose query the page reads. Once hydrated, starting happens in place and opens the
//! task's page, and the queue and history refresh themselves while anything is queued or running.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{
    hooks::{use_navigate, use_query_map},
    params::ParamsMap,
};

use crate::{
    components::ui::{BUTTON, CARD, INPUT, LABEL},
    error::AppError,
    server_fns::tasks::{
        CatalogView, GoblinChoice, GoblinRow, GuildRow, HistoryView, ReloadGoblinRegistry, StartTask,
        TaskRow, task_catalog, task_history, task_queue,
    },
};

/// Matches the server's limit (`goblin_core::tasks::MAX_TASK_CHARS`).
const MAX_TASK_CHARS: usize = 16_000;
/// Matches the server's limit (`goblin_core::tasks::MAX_SCRIPT_BYTES`).
const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// How often, once hydrated, the queue and history are read again while anything is queued or running.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const QUEUE_REFRESH_MS: u64 = 2_000;
/// Every status, with how the page names it.
pub(crate) const STATUSES: [(&str, &str); 7] = [
    ("queued", "queued"),
    ("running", "running"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("timed_out", "timed out"),
    ("cancelled", "cancelled"),
    ("dry_run", "dry run"),
];
const SMALL_BUTTON: &str = "rounded border border-slate-500 px-3 py-1 text-sm font-medium hover:bg-slate-100";

/// How the page names a status; a cancellation whose worker is still stopping the task is
/// "cancelling…".
pub(crate) fn status_label(status: &str, finished: bool) -> &'static str {
    if status == "cancelled" && !finished {
        return "cancelling…";
    }
    STATUSES.iter().find(|(s, _)| *s == status).map_or("unknown", |(_, label)| label)
}

/// Badge colours per status (the word is always spelled out as well).
pub(crate) fn status_class(status: &str) -> &'static str {
    match status {
        "succeeded" => "bg-emerald-100 text-emerald-900 ring-emerald-600/30",
        "failed" | "timed_out" => "bg-rose-100 text-rose-900 ring-rose-600/30",
        "running" => "bg-sky-100 text-sky-900 ring-sky-600/30",
        "cancelled" => "bg-amber-100 text-amber-900 ring-amber-600/30",
        "dry_run" => "bg-violet-100 text-violet-900 ring-violet-600/30",
        _ => "bg-slate-100 text-slate-900 ring-slate-600/30",
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` of an RFC 3339 time in UTC.
pub(crate) fn when(rfc3339: &str) -> String {
    match (rfc3339.get(0..10), rfc3339.get(11..19)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => rfc3339.to_string(),
    }
}

/// A duration as a person reads it: `850 ms`, `2.4 s`, `3 min 5 s`, `1 h 2 min`.
pub(crate) fn duration(ms: i64) -> String {
    let s = ms / 1_000;
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1_000.0)
    } else if s < 3_600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3_600, (s % 3_600) / 60)
    }
}

/// At most `n` characters of a task text, on one line.
fn short(text: &str, n: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n).collect::<String>())
    }
}

/// Percent-encodes a query component (everything but unreserved characters), the same on the
/// server and in the browser.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn failure<T>(v: Option<Result<T, AppError>>) -> Option<String> {
    match v {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

/// The page's query: the registry search, and the history's filters and page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct PageQuery {
    q: String,
    goblin: String,
    status: String,
    user: String,
    from: String,
    to: String,
    cursor: String,
}

impl PageQuery {
    fn read(q: &ParamsMap) -> Self {
        let get = |k: &str| q.get(k).unwrap_or_default();
        Self {
            q: get("q"),
            goblin: get("goblin"),
            status: get("status"),
            user: get("user"),
            from: get("from"),
            to: get("to"),
            cursor: get("cursor"),
        }
    }

    /// The history's part: what its list depends on.
    fn history(&self) -> Self {
        Self { q: String::new(), ..self.clone() }
    }

    fn filtered(&self) -> bool {
        [&self.goblin, &self.status, &self.user, &self.from, &self.to].iter().any(|v| !v.is_empty())
    }

    /// The page's URL with this search and filter, at the history page after `cursor` (or the newest).
    fn href(&self, cursor: Option<&str>) -> String {
        let pairs = [
            ("q", self.q.as_str()),
            ("goblin", self.goblin.as_str()),
            ("status", self.status.as_str()),
            ("user", self.user.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("cursor", cursor.unwrap_or_default()),
        ];
        let query: Vec<String> =
            pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", enc(v))).collect();
        if query.is_empty() { "/tasks".to_string() } else { format!("/tasks?{}", query.join("&")) }
    }
}

#[component]
pub fn TasksPage() -> impl IntoView {
    let query = use_query_map();
    let page_query = Memo::new(move |_| query.with(PageQuery::read));
    let search = Memo::new(move |_| page_query.with(|q| q.q.clone()));
    let history_query = Memo::new(move |_| page_query.with(PageQuery::history));
    let start = ServerAction::<StartTask>::new();
    let reload = ServerAction::<ReloadGoblinRegistry>::new();
    let catalog = Resource::new(move || (search.get(), reload.version().get()), |(q, _)| task_catalog(q));
    let queue = Resource::new(|| (), |_| task_queue());
    let history = Resource::new(
        move || history_query.get(),
        |h| {
            let opt = |s: String| (!s.is_empty()).then_some(s);
            task_history(opt(h.goblin), opt(h.status), opt(h.user), opt(h.from), opt(h.to), opt(h.cursor))
        },
    );
    // Which goblin's form was sent in place, so its card shows a refusal. A plain form post comes
    // back with none, and the refusal shows above the guilds.
    let submitted = RwSignal::new(None::<String>);

    // Started in place: open the task's page, where its output streams in.
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(started)) = start.value().get() {
            navigate(&format!("/tasks/{}", started.id), Default::default());
        }
    });

    #[cfg(feature = "hydrate")]
    {
        let busy = StoredValue::new(false);
        if let Ok(handle) = set_interval_with_handle(
            move || {
                let now = queue.get_untracked().and_then(Result::ok).is_some_and(|q| !q.is_empty());
                // Once more after the last task ends, so the history shows how it ended.
                if now || busy.get_value() {
                    queue.refetch();
                    history.refetch();
                }
                busy.set_value(now);
            },
            std::time::Duration::from_millis(QUEUE_REFRESH_MS),
        ) {
            on_cleanup(move || handle.clear());
        }
    }

    view! {
        <Title text="Tasks" />
        <div class="space-y-8">
            <h1 class="text-2xl font-bold">"Tasks"</h1>

            <section aria-labelledby="goblins-heading" class=CARD>
                <h2 id="goblins-heading" class="text-lg font-semibold">"Goblins"</h2>
                <p class="text-sm text-slate-700">
                    "Command goblins run a shell command on a worker; the task text reaches it only as the "
                    "environment variable GOBLIN_TASK. Agent goblins give the task to a model. A dry run shows "
                    "exactly what would run, and runs nothing."
                </p>
                {move || view! { <SearchForm q=page_query.get() /> }}
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let q = search.get();
                        catalog.await.map(|c| view! { <Catalog catalog=c q=q start=start reload=reload submitted=submitted /> })
                    })}
                </Transition>
            </section>

            <section aria-labelledby="queue-heading" class=CARD>
                <h2 id="queue-heading" class="text-lg font-semibold">"Queued and running"</h2>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        queue.await.map(|rows| {
                            if rows.is_empty() {
                                return view! { <p class="text-sm text-slate-700" data-testid="queue-empty">"Nothing is queued or running."</p> }.into_any();
                            }
                            view! { <TaskTable rows=rows testid="queue-table" /> }.into_any()
                        })
                    })}
                </Transition>
            </section>

            <section aria-labelledby="history-heading" class=CARD id="history">
                <h2 id="history-heading" class="text-lg font-semibold">"History"</h2>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let q = page_query.get();
                        catalog.await.map(|c| view! { <HistoryFilterForm q=q choices=c.choices /> })
                    })}
                </Transition>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let q = page_query.get();
                        match history.await {
                            Ok(page) => view! { <HistoryList page=page q=q /> }.into_any(),
                            Err(e) => view! {
                                <p role="alert" class="text-sm text-rose-800" data-testid="history-error">
                                    {e.to_string()} " " <a class="underline" href="/tasks">"Show the newest tasks"</a>
                                </p>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </div>
    }
}

/// The registry search: a GET form that keeps the history's filters.
#[component]
fn SearchForm(q: PageQuery) -> impl IntoView {
    let searching = !q.q.is_empty();
    let keep = [
        ("goblin", q.goblin.clone()),
        ("status", q.status.clone()),
        ("user", q.user.clone()),
        ("from", q.from.clone()),
        ("to", q.to.clone()),
    ];
    view! {
        <form method="get" action="/tasks" role="search" class="flex flex-wrap items-end gap-3" data-testid="goblin-search">
            {keep.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| view! { <input type="hidden" name=k value=v /> }).collect_view()}
            <label class="flex flex-col"><span class=LABEL>"Search goblins"</span>
                <input type="search" name="q" value=q.q.clone() maxlength="200" class=INPUT placeholder="id, name, summary, owner" />
            </label>
            <button type="submit" class=BUTTON data-testid="goblin-search-submit">"Search"</button>
            {searching.then(|| view! { <a class="text-sm underline" href=PageQuery { q: String::new(), ..q.clone() }.href(None)>"Show every goblin"</a> })}
        </form>
    }
}

#[component]
fn Catalog(
    catalog: CatalogView,
    q: String,
    start: ServerAction<StartTask>,
    reload: ServerAction<ReloadGoblinRegistry>,
    submitted: RwSignal<Option<String>>,
) -> impl IntoView {
    let c = catalog;
    let admin = c.role == "admin";
    let r = c.registry.clone();
    let summary = format!(
        "{} goblin{} in {} guild{}, from {}, loaded {}.",
        r.goblins,
        if r.goblins == 1 { "" } else { "s" },
        r.guilds,
        if r.guilds == 1 { "" } else { "s" },
        r.source,
        r.loaded_at
    );
    let body = if r.goblins == 0 {
        view! {
            <p class="text-sm text-slate-700" data-testid="no-goblins">
                "The registry has no goblins yet. An admin adds them to " <code class="font-mono">{r.path.clone()}</code>
                "; the file is read again within seconds of a change."
            </p>
        }
        .into_any()
    } else if c.guilds.is_empty() {
        view! { <p class="text-sm text-slate-700" data-testid="no-match">{format!("No goblin matches '{q}'.")}</p> }.into_any()
    } else {
        let (can_run, guilds) = (c.can_run, c.guilds);
        guilds
            .into_iter()
            .map(|g| view! { <GuildView guild=g can_run=can_run admin=admin start=start submitted=submitted /> })
            .collect_view()
            .into_any()
    };
    view! {
        <p class="text-xs text-slate-600" data-testid="registry-status">{summary}</p>
        {(!r.problems.is_empty()).then(|| view! {
            <div role="alert" class="rounded border border-rose-300 bg-rose-50 p-3 text-sm text-rose-900" data-testid="registry-problems">
                <p>{format!("The newest version of {} was refused; the registry shown stays in force until it is fixed:", r.path)}</p>
                <ul class="list-disc pl-6">{r.problems.iter().map(|p| view! { <li>{p.clone()}</li> }).collect_view()}</ul>
            </div>
        })}
        {admin.then(|| view! {
            <ActionForm action=reload attr:class="flex items-center gap-3" attr:data-testid="reload-form">
                <button type="submit" class=SMALL_BUTTON data-testid="reload">"Read the registry file again"</button>
                <span role="status" class="text-sm">
                    {move || match reload.value().get() {
                        Some(Ok(_)) => Some(view! { <span class="text-emerald-800">"Registry read again."</span> }.into_any()),
                        Some(Err(e)) => Some(view! { <span class="text-rose-800" data-testid="reload-error">{e.to_string()}</span> }.into_any()),
                        None => None,
                    }}
                </span>
            </ActionForm>
        })}
        {(!c.can_run).then(|| view! {
            <p class="rounded bg-slate-100 p-2 text-sm" data-testid="viewer-note">
                "You can look at goblins and tasks; running them needs an operator or an admin."
            </p>
        })}
        <p role="alert" class="text-sm text-rose-800" data-testid="start-error">
            {move || if submitted.get().is_none() { failure(start.value().get()) } else { None }}
        </p>
        {body}
        {c.custom_scripts.then(|| view! { <CustomScriptForm start=start submitted=submitted /> })}
    }
}

#[component]
fn GuildView(
    guild: GuildRow,
    can_run: bool,
    admin: bool,
    start: ServerAction<StartTask>,
    submitted: RwSignal<Option<String>>,
) -> impl IntoView {
    let GuildRow { id, name, summary, goblins } = guild;
    let heading = format!("guild-{id}-heading");
    let labelled_by = heading.clone();
    view! {
        <section aria-labelledby=labelled_by class="space-y-2" data-testid=format!("guild-{id}")>
            <h3 id=heading class="text-base font-semibold">{name}</h3>
            {summary.map(|s| view! { <p class="text-sm text-slate-700">{s}</p> })}
            <ul class="grid gap-3 md:grid-cols-2">
                {goblins.into_iter().map(|g| view! {
                    <li><GoblinCard goblin=g can_run=can_run admin=admin start=start submitted=submitted /></li>
                }).collect_view()}
            </ul>
        </section>
    }
}

#[component]
fn GoblinCard(
    goblin: GoblinRow,
    can_run: bool,
    admin: bool,
    start: ServerAction<StartTask>,
    submitted: RwSignal<Option<String>>,
) -> impl IntoView {
    let g = goblin;
    let id = g.id.clone();
    let runnable = can_run && (g.safe || admin);
    let what = match (&g.command, &g.brain) {
        (Some(c), _) => Some(("command", c.clone())),
        (None, Some(b)) => Some(("model", b.clone())),
        (None, None) if g.kind == "agent" => Some(("model", "the first chat model".to_string())),
        _ => None,
    };
    let mut facts = Vec::new();
    if let Some(t) = g.timeout_s {
        facts.push(format!("timeout {t} s"));
    }
    if let Some(o) = &g.owner {
        facts.push(format!("owner {o}"));
    }
    if !g.required_env.is_empty() {
        facts.push(format!("needs {}", g.required_env.join(", ")));
    }
    if !g.responsibilities.is_empty() {
        facts.push(g.responsibilities.join(", "));
    }
    let pending = start.pending();
    let mine = id.clone();
    let card_error = move || {
        if submitted.get().as_deref() == Some(mine.as_str()) { failure(start.value().get()) } else { None }
    };
    let submit_id = id.clone();
    let testid = format!("goblin-{id}");
    view! {
        <article class="h-full space-y-2 rounded border border-slate-200 p-3" data-testid=testid>
            <h4 class="flex flex-wrap items-center gap-2">
                <span class="font-semibold">{g.name.clone()}</span>
                <span class="font-mono text-xs text-slate-600">{id.clone()}</span>
                <span class="rounded bg-slate-100 px-1.5 py-0.5 text-xs">{g.kind.clone()}</span>
                {(!g.safe).then(|| view! {
                    <span class="rounded bg-rose-100 px-1.5 py-0.5 text-xs font-semibold text-rose-900" data-testid="unsafe">"unsafe"</span>
                })}
            </h4>
            {g.summary.clone().map(|s| view! { <p class="text-sm text-slate-700">{s}</p> })}
            {what.map(|(label, text)| view! {
                <p class="text-xs text-slate-700">{label} ": " <code class="break-all font-mono">{text}</code></p>
            })}
            {(!facts.is_empty()).then(|| view! { <p class="text-xs text-slate-600">{facts.join(" · ")}</p> })}
            {if runnable {
                view! {
                    <ActionForm
                        action=start
                        on:submit=move |_: leptos::ev::SubmitEvent| submitted.set(Some(submit_id.clone()))
                        attr:class="space-y-2"
                        attr:data-testid="run-form"
                    >
                        <input type="hidden" name="goblin" value=id.clone() />
                        <label class="flex flex-col gap-1"><span class=LABEL>"Task"</span>
                            <textarea
                                name="task"
                                rows="2"
                                maxlength=MAX_TASK_CHARS.to_string()
                                class=INPUT
                                data-testid="task-text"
                                placeholder=if g.kind == "agent" { "What should it answer?" } else { "Given to the command as $GOBLIN_TASK (may be empty)" }
                            ></textarea>
                        </label>
                        {(!g.safe).then(|| view! {
                            <label class="block text-sm">
                                <input type="checkbox" name="confirm" value="yes" required data-testid="confirm" />
                                " I confirm: run this unsafe goblin (a dry run needs no confirmation)"
                            </label>
                        })}
                        <div class="flex gap-2">
                            <button type="submit" class=BUTTON data-testid="run" disabled=move || pending.get()>"Run"</button>
                            <button type="submit" name="dry_run" value="yes" formnovalidate class=SMALL_BUTTON data-testid="dry-run" disabled=move || pending.get()>
                                "Dry run"
                            </button>
                        </div>
                        <p role="alert" class="text-sm text-rose-800" data-testid="run-error">{card_error}</p>
                    </ActionForm>
                }
                .into_any()
            } else if can_run {
                view! { <p class="text-xs text-slate-700" data-testid="admins-only">"Unsafe: only an admin can run it, after confirming."</p> }.into_any()
            } else {
                ().into_any()
            }}
        </article>
    }
}

/// A custom script, for admins while the setting allows it.
#[component]
fn CustomScriptForm(start: ServerAction<StartTask>, submitted: RwSignal<Option<String>>) -> impl IntoView {
    const KEY: &str = "custom-script";
    let pending = start.pending();
    view! {
        <section aria-labelledby="script-heading" class="space-y-2 rounded border border-amber-300 bg-amber-50 p-3" data-testid="custom-script">
            <h3 id="script-heading" class="text-base font-semibold">"Custom script"</h3>
            <p class="text-sm text-slate-700">
                "Runs with bash -euo pipefail on a worker, like a command goblin, in the same working directory and "
                "with the same small environment. Admins only, while the tasks.allow_custom_scripts setting allows it."
            </p>
            <ActionForm
                action=start
                on:submit=move |_: leptos::ev::SubmitEvent| submitted.set(Some(KEY.to_string()))
                attr:class="space-y-2"
            >
                <input type="hidden" name="goblin" value="" />
                <label class="flex flex-col gap-1"><span class=LABEL>"Script"</span>
                    <textarea name="code" rows="5" required maxlength=MAX_SCRIPT_BYTES.to_string() class=format!("{INPUT} font-mono") data-testid="script-code"></textarea>
                </label>
                <label class="flex flex-col gap-1"><span class=LABEL>"Task (as $GOBLIN_TASK)"</span>
                    <textarea name="task" rows="2" maxlength=MAX_TASK_CHARS.to_string() class=INPUT></textarea>
                </label>
                <div class="flex gap-2">
                    <button type="submit" class=BUTTON data-testid="script-run" disabled=move || pending.get()>"Run script"</button>
                    <button type="submit" name="dry_run" value="yes" class=SMALL_BUTTON disabled=move || pending.get()>"Dry run"</button>
                </div>
                <p role="alert" class="text-sm text-rose-800">
                    {move || if submitted.get().as_deref() == Some(KEY) { failure(start.value().get()) } else { None }}
                </p>
            </ActionForm>
        </section>
    }
}

/// The history's filters: a GET form that keeps the registry search.
#[component]
fn HistoryFilterForm(q: PageQuery, choices: Vec<GoblinChoice>) -> impl IntoView {
    let filtered = q.filtered();
    let mut choices = choices;
    if !q.goblin.is_empty() && !choices.iter().any(|c| c.value == q.goblin) {
        choices.push(GoblinChoice {
            value: q.goblin.clone(),
            label: format!("{} (not in the registry)", q.goblin),
        });
    }
    let clear = PageQuery { q: q.q.clone(), ..Default::default() }.href(None);
    view! {
        <form method="get" action="/tasks#history" class="flex flex-wrap items-end gap-3 text-sm" data-testid="history-filter">
            {(!q.q.is_empty()).then(|| view! { <input type="hidden" name="q" value=q.q.clone() /> })}
            <label class="flex flex-col"><span class=LABEL>"Goblin"</span>
                <select name="goblin" class=INPUT>
                    <option value="" selected=q.goblin.is_empty()>"any"</option>
                    {choices.into_iter().map(|c| {
                        let selected = c.value == q.goblin;
                        view! { <option value=c.value selected=selected>{c.label}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label class="flex flex-col"><span class=LABEL>"Status"</span>
                <select name="status" class=INPUT>
                    <option value="" selected=q.status.is_empty()>"any"</option>
                    {STATUSES.into_iter().map(|(v, label)| view! { <option value=v selected=q.status == v>{label}</option> }).collect_view()}
                </select>
            </label>
            <label class="flex flex-col"><span class=LABEL>"Started by (username)"</span>
                <input name="user" maxlength="64" value=q.user.clone() class=INPUT />
            </label>
            <label class="flex flex-col"><span class=LABEL>"From (UTC)"</span>
                <input name="from" type="datetime-local" step="1" value=q.from.clone() class=INPUT />
            </label>
            <label class="flex flex-col"><span class=LABEL>"Until (UTC, not included)"</span>
                <input name="to" type="datetime-local" step="1" value=q.to.clone() class=INPUT />
            </label>
            <button type="submit" class=BUTTON data-testid="history-filter-submit">"Show"</button>
            {filtered.then(|| view! { <a class="underline" href=clear>"Clear filters"</a> })}
        </form>
    }
}

#[component]
fn HistoryList(page: HistoryView, q: PageQuery) -> impl IntoView {
    let newest = (!q.cursor.is_empty()).then(|| q.href(None));
    let older = page.next.as_deref().map(|n| q.href(Some(n)));
    let empty = page.tasks.is_empty();
    let none = if q.filtered() || !q.cursor.is_empty() { "No tasks match." } else { "No tasks yet." };
    view! {
        {if empty {
            view! { <p class="text-sm text-slate-700" data-testid="history-empty">{none}</p> }.into_any()
        } else {
            view! { <TaskTable rows=page.tasks testid="history-table" /> }.into_any()
        }}
        <nav aria-label="History pages" class="flex gap-4 text-sm">
            {newest.map(|href| view! { <a class="underline" href=href data-testid="history-newest">"← Newest"</a> })}
            {older.map(|href| view! { <a class="underline" href=href data-testid="history-older">"Older →"</a> })}
        </nav>
    }
}

/// Tasks as a table, each linking to its page.
#[component]
fn TaskTable(rows: Vec<TaskRow>, testid: &'static str) -> impl IntoView {
    view! {
        <div class="overflow-x-auto">
            <table class="w-full text-left text-sm" data-testid=testid>
                <thead>
                    <tr>
                        <th>"Queued (UTC)"</th><th>"Goblin"</th><th>"Task"</th><th>"Status"</th>
                        <th>"Exit code"</th><th>"Duration"</th><th>"By"</th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|t| {
                        let href = format!("/tasks/{}", t.id);
                        let name = t.goblin_name.clone().unwrap_or_else(|| t.goblin_id.clone());
                        // A running task's latest lines, read again with the queue.
                        let tail = (!t.tail.is_empty()).then(|| view! {
                            <tr data-testid="task-tail" data-id=t.id.clone()>
                                <td colspan="7" class="pb-2">
                                    <pre class="max-h-32 overflow-auto rounded bg-slate-900 p-2 font-mono text-xs text-slate-100">
                                        {t.tail.iter().map(|l| view! {
                                            <span class=if l.stream == "stderr" { "block text-amber-300" } else { "block" } data-stream=l.stream.clone()>{l.line.clone()}</span>
                                        }).collect_view()}
                                    </pre>
                                </td>
                            </tr>
                        });
                        view! {
                            <tr class="border-t border-slate-200 align-top" data-testid="task-row" data-id=t.id.clone() data-status=t.status.clone()>
                                <td class="whitespace-nowrap py-1">{when(&t.created_at)}</td>
                                <td>
                                    <a class="font-medium text-sky-800 underline" href=href data-testid="task-link">{name}</a>
                                    " " <span class="font-mono text-xs text-slate-600">{t.goblin_id.clone()}</span>
                                </td>
                                <td class="max-w-xs break-words">{short(&t.task, 80)}</td>
                                <td>
                                    <span class=format!("inline-flex rounded-full px-2 py-0.5 text-xs font-semibold ring-1 ring-inset {}", status_class(&t.status))>
                                        {status_label(&t.status, t.finished)}
                                    </span>
                                </td>
                                <td>{t.exit_code.map_or_else(|| "—".to_string(), |c| c.to_string())}</td>
                                <td class="whitespace-nowrap">{t.duration_ms.map_or_else(|| "—".to_string(), duration)}</td>
                                <td>{t.created_by_name.clone().unwrap_or_else(|| "—".to_string())}</td>
                            </tr>
                            {tail}
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_plainly() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(2_400), "2.4 s");
        assert_eq!(duration(185_000), "3 min 5 s");
        assert_eq!(duration(3_720_000), "1 h 2 min");
        assert_eq!(when("2026-11-29T10:00:03.123Z"), "2026-11-29 10:00:03 UTC");
        assert_eq!(status_label("cancelled", false), "cancelling…");
        assert_eq!(status_label("timed_out", true), "timed out");
    }

    #[test]
    fn page_links_keep_the_filters() {
        let q = PageQuery { q: "a b".into(), status: "failed".into(), ..Default::default() };
        assert_eq!(q.href(Some("xyz")), "/tasks?q=a%20b&status=failed&cursor=xyz");
        assert_eq!(PageQuery::default().href(None), "/tasks");
    }
}
