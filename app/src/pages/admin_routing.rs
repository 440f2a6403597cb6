//! Admin → Routing: route aliases with their targets and policies (add, edit, delete; a box must be
//! ticked before a delete), the live health of every target, and the request log with filters and
//! older/newer paging. Every form works without JavaScript: the editors are plain form posts, and the
//! log's filters and pages are a GET form and links whose query the page reads.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{hooks::use_query_map, params::ParamsMap};

use crate::{
    components::ui::{BUTTON, CARD, DANGER, INPUT, LABEL},
    error::AppError,
    pages::admin::AdminNav,
    server_fns::routing::{
        AddRouteTarget, AliasRow, Choice, DeleteRouteAlias, DeleteRouteTarget, HealthRow, LogPageView,
        PolicyForm, SaveRoutePolicy, UpdateRouteTarget, routing_health, routing_log, routing_overview,
    },
};

const STRATEGIES: [(&str, &str); 5] = [
    ("priority", "priority: in position order"),
    ("weighted", "weighted: shuffled in proportion to weight"),
    ("latency", "latency: fastest recent first"),
    ("cost", "cost: cheapest model price first"),
    ("score", "score: weighted mix of latency, cost, reliability, bandwidth"),
];
const PERIODS: [&str; 3] = ["day", "week", "month"];
const BUDGET_ACTIONS: [(&str, &str); 2] = [("refuse", "refuse requests"), ("cheaper", "use cheaper targets")];
const STATUSES: [&str; 3] = ["ok", "error", "cancelled"];
const SMALL_INPUT: &str = "w-24 rounded border border-slate-400 px-2 py-1 text-sm";

fn failure<T>(v: Option<Result<T, AppError>>) -> Option<String> {
    match v {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

/// Percent-encodes a query component (everything but unreserved characters).
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

/// The request log's filter and page, as the URL's query holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LogQuery {
    from: String,
    to: String,
    provider: String,
    model: String,
    status: String,
    user: String,
    after: String,
}

impl LogQuery {
    fn read(q: &ParamsMap) -> Self {
        let get = |k: &str| q.get(k).unwrap_or_default();
        Self {
            from: get("from"),
            to: get("to"),
            provider: get("provider"),
            model: get("model"),
            status: get("status"),
            user: get("user"),
            after: get("after"),
        }
    }

    fn filtered(&self) -> bool {
        [&self.from, &self.to, &self.provider, &self.model, &self.status, &self.user]
            .iter()
            .any(|v| !v.is_empty())
    }

    /// The page's URL with this filter, starting after `after` (or at the newest row).
    fn href(&self, after: Option<&str>) -> String {
        let pairs = [
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("provider", self.provider.as_str()),
            ("model", self.model.as_str()),
            ("status", self.status.as_str()),
            ("user", self.user.as_str()),
            ("after", after.unwrap_or_default()),
        ];
        let query: Vec<String> =
            pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", enc(v))).collect();
        if query.is_empty() {
            "/admin/routing".to_string()
        } else {
            format!("/admin/routing?{}", query.join("&"))
        }
    }
}

fn some_text(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".to_string())
}

fn ms(v: Option<impl std::fmt::Display>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v} ms"))
}

#[component]
pub fn AdminRoutingPage() -> impl IntoView {
    // A success in any editor reloads the aliases and the health table.
    let changed = RwSignal::new(0u32);
    let overview = Resource::new(move || changed.get(), |_| routing_overview());
    let health = Resource::new(move || changed.get(), |_| routing_health());
    let query = use_query_map();
    let log_query = Memo::new(move |_| query.with(LogQuery::read));
    let log = Resource::new(
        move || log_query.get(),
        |q| {
            let opt = |s: String| (!s.is_empty()).then_some(s);
            routing_log(
                opt(q.from),
                opt(q.to),
                opt(q.provider),
                opt(q.model),
                opt(q.status),
                opt(q.user),
                opt(q.after),
                None,
            )
        },
    );
    let create = ServerAction::<AddRouteTarget>::new();
    Effect::new(move |_| {
        if matches!(create.value().get(), Some(Ok(()))) {
            changed.update(|n| *n += 1);
        }
    });

    view! {
        <Title text="Routing" />
        <div class="space-y-8">
            <h1 class="text-2xl font-bold">"Routing"</h1>
            <AdminNav current="/admin/routing" />

            <section aria-labelledby="aliases-heading" class=CARD>
                <h2 id="aliases-heading" class="text-lg font-semibold">"Route aliases"</h2>
                <p class="text-sm text-slate-700">
                    "An alias is a model name callers use, such as chat-fast. The gateway tries the alias's enabled targets "
                    "in the order its policy's strategy gives, with retries and failover. Changes apply at once."
                </p>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        overview.await.map(|o| {
                            if o.aliases.is_empty() {
                                return view! { <p data-testid="no-aliases">"No aliases yet. Add one below."</p> }.into_any();
                            }
                            let providers = o.providers.clone();
                            o.aliases.into_iter().map(|a| view! { <AliasCard alias=a providers=providers.clone() changed=changed /> }).collect_view().into_any()
                        })
                    })}
                </Transition>
            </section>

            <section aria-labelledby="add-alias-heading" class=CARD>
                <h2 id="add-alias-heading" class="text-lg font-semibold">"Add a route alias"</h2>
                <p class="text-sm text-slate-700">
                    "1 to 64 characters: lowercase letters, digits, '.', '_' and '-'; no '/', and not a provider's name. "
                    "More targets and the policy can be added once it exists."
                </p>
                <ActionForm action=create attr:class="flex flex-wrap items-end gap-3" attr:data-testid="add-alias-form">
                    <label class="flex flex-col"><span class=LABEL>"Alias"</span>
                        <input name="alias" required maxlength="64" pattern="[a-z0-9._\\-]+" class=INPUT placeholder="chat-fast" />
                    </label>
                    <label class="flex flex-col"><span class=LABEL>"First target: provider"</span>
                        <select name="provider_id" required class=INPUT>
                            <Transition fallback=|| ()>
                                {move || Suspend::new(async move {
                                    overview.await.map(|o| o.providers.into_iter().map(|p| view! { <option value=p.value>{p.label}</option> }).collect_view())
                                })}
                            </Transition>
                        </select>
                    </label>
                    <label class="flex flex-col"><span class=LABEL>"Model"</span>
                        <input name="model" required maxlength="128" class=INPUT placeholder="gpt-4o-mini" />
                    </label>
                    <label class="flex flex-col"><span class=LABEL>"Weight"</span>
                        <input name="weight" type="number" min="1" max="1000" value="1" class=SMALL_INPUT />
                    </label>
                    <label class="flex flex-col"><span class=LABEL>"Position"</span>
                        <input name="position" type="number" min="0" max="10000" value="0" class=SMALL_INPUT />
                    </label>
                    <button type="submit" class=BUTTON data-testid="add-alias">"Add alias"</button>
                </ActionForm>
                {move || match create.value().get() {
                    Some(Ok(())) => view! { <p role="status" class="text-sm text-emerald-800">"Alias saved."</p> }.into_any(),
                    Some(Err(e)) => view! { <p role="alert" class="text-sm text-rose-800" data-testid="add-alias-error">{e.to_string()}</p> }.into_any(),
                    None => ().into_any(),
                }}
            </section>

            <section aria-labelledby="health-heading" class=CARD>
                <h2 id="health-heading" class="text-lg font-semibold">"Live health"</h2>
                <p class="text-sm text-slate-700">
                    "Every provider and model an alias targets. Breaker state, requests, error rate and p50 times are this "
                    "instance's last five minutes; p95 latency is the newest stored minute of the last five."
                </p>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        health.await.map(|rows| {
                            if rows.is_empty() {
                                return view! { <p data-testid="no-health">"No targets yet."</p> }.into_any();
                            }
                            view! { <HealthTable rows=rows /> }.into_any()
                        })
                    })}
                </Transition>
            </section>

            <section aria-labelledby="log-heading" class=CARD id="log">
                <h2 id="log-heading" class="text-lg font-semibold">"Request log"</h2>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let q = log_query.get();
                        overview.await.map(|o| view! { <LogFilterForm q=q providers=o.providers users=o.users /> })
                    })}
                </Transition>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let q = log_query.get();
                        match log.await {
                            Ok(page) => view! { <LogTable page=page q=q /> }.into_any(),
                            Err(e) => view! {
                                <p role="alert" class="text-sm text-rose-800" data-testid="log-error">
                                    {e.to_string()} " " <a class="underline" href="/admin/routing">"Show the newest requests"</a>
                                </p>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </div>
    }
}

#[component]
fn AliasCard(alias: AliasRow, providers: Vec<Choice>, changed: RwSignal<u32>) -> impl IntoView {
    let add = ServerAction::<AddRouteTarget>::new();
    let update = ServerAction::<UpdateRouteTarget>::new();
    let delete_target = ServerAction::<DeleteRouteTarget>::new();
    let save_policy = ServerAction::<SaveRoutePolicy>::new();
    let delete_alias = ServerAction::<DeleteRouteAlias>::new();
    Effect::new(move |_| {
        let ok = matches!(add.value().get(), Some(Ok(())))
            || matches!(update.value().get(), Some(Ok(())))
            || matches!(delete_target.value().get(), Some(Ok(())))
            || matches!(save_policy.value().get(), Some(Ok(())))
            || matches!(delete_alias.value().get(), Some(Ok(())));
        if ok {
            changed.update(|n| *n += 1);
        }
    });
    let error = move || {
        [
            failure(add.value().get()),
            failure(update.value().get()),
            failure(delete_target.value().get()),
            failure(save_policy.value().get()),
            failure(delete_alias.value().get()),
        ]
        .into_iter()
        .flatten()
        .next()
    };
    let name = alias.alias.clone();
    let (alias_add, alias_policy, alias_delete) = (name.clone(), name.clone(), name.clone());
    let strategy = alias.policy.strategy.clone();
    let summary = format!(
        "{} target{} · strategy {} · {}",
        alias.targets.len(),
        if alias.targets.len() == 1 { "" } else { "s" },
        strategy,
        if alias.has_policy { "policy saved" } else { "no policy saved: the gateway's defaults apply" }
    );
    let budget = (!alias.policy.budget.is_empty()).then(|| {
        format!(
            "Budget: ${} per {}, then {}.",
            alias.policy.budget,
            alias.policy.budget_period,
            if alias.policy.budget_action == "cheaper" { "cheaper targets" } else { "refuse" }
        )
    });
    view! {
        <article class="space-y-3 rounded border border-slate-200 p-3" data-testid=format!("alias-{name}")>
            <h3 class="font-mono text-base font-semibold">{name.clone()}</h3>
            <p class="text-sm text-slate-700" data-testid="alias-summary">{summary}</p>
            {budget.map(|b| view! { <p class="text-sm text-slate-700" data-testid="alias-budget">{b}</p> })}
            <p role="alert" class="text-sm text-rose-800" data-testid="alias-error">{error}</p>
            {if alias.targets.is_empty() {
                view! { <p class="text-sm">"No targets: callers using this name get 'model not found'."</p> }.into_any()
            } else {
                view! {
                    <ol class="divide-y divide-slate-200 text-sm" data-testid="target-list">
                        {alias.targets.into_iter().map(|t| {
                            let (id_update, id_delete) = (t.id.clone(), t.id.clone());
                            let testid = format!("target-{}-{}", t.provider, t.model);
                            view! {
                                <li class="flex flex-wrap items-end gap-3 py-2" data-testid=testid>
                                    <span class="min-w-48">
                                        <span class="font-medium">{t.provider.clone()}</span> " / " <span class="font-mono">{t.model.clone()}</span>
                                        {(!t.provider_enabled).then_some(" (provider disabled)")}
                                        {(!t.enabled).then_some(" (disabled)")}
                                    </span>
                                    <ActionForm action=update attr:class="flex flex-wrap items-end gap-2">
                                        <input type="hidden" name="id" value=id_update />
                                        <label class="flex flex-col text-xs">"Weight"<input name="weight" type="number" min="1" max="1000" value=t.weight.to_string() class=SMALL_INPUT /></label>
                                        <label class="flex flex-col text-xs">"Position"<input name="position" type="number" min="0" max="10000" value=t.position.to_string() class=SMALL_INPUT /></label>
                                        <label class="text-xs"><input type="checkbox" name="enabled" value="on" checked=t.enabled />" enabled"</label>
                                        <button type="submit" class=BUTTON>"Save target"</button>
                                    </ActionForm>
                                    <ActionForm action=delete_target attr:class="flex items-center gap-2">
                                        <input type="hidden" name="id" value=id_delete />
                                        <label class="text-xs"><input type="checkbox" name="confirm" value="yes" required />" yes, remove"</label>
                                        <button type="submit" class=DANGER>"Remove target"</button>
                                    </ActionForm>
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
            <details>
                <summary class="cursor-pointer text-sm font-medium">"Add a target"</summary>
                <ActionForm action=add attr:class="mt-2 flex flex-wrap items-end gap-3">
                    <input type="hidden" name="alias" value=alias_add />
                    <label class="flex flex-col text-xs">"Provider"
                        <select name="provider_id" required class=INPUT>
                            {providers.into_iter().map(|p| view! { <option value=p.value>{p.label}</option> }).collect_view()}
                        </select>
                    </label>
                    <label class="flex flex-col text-xs">"Model"<input name="model" required maxlength="128" class=INPUT /></label>
                    <label class="flex flex-col text-xs">"Weight"<input name="weight" type="number" min="1" max="1000" value="1" class=SMALL_INPUT /></label>
                    <label class="flex flex-col text-xs">"Position (empty: last)"<input name="position" type="number" min="0" max="10000" class=SMALL_INPUT /></label>
                    <button type="submit" class=BUTTON>"Add target"</button>
                </ActionForm>
            </details>
            <details>
                <summary class="cursor-pointer text-sm font-medium">"Policy"</summary>
                <PolicyEditor action=save_policy alias=alias_policy policy=alias.policy />
            </details>
            <ActionForm action=delete_alias attr:class="flex items-center gap-2">
                <input type="hidden" name="alias" value=alias_delete />
                <label class="text-sm"><input type="checkbox" name="confirm" value="yes" required />" yes, delete this alias with its targets and policy"</label>
                <button type="submit" class=DANGER>"Delete alias"</button>
            </ActionForm>
        </article>
    }
}

#[component]
fn PolicyEditor(action: ServerAction<SaveRoutePolicy>, alias: String, policy: PolicyForm) -> impl IntoView {
    let p = policy;
    view! {
        <ActionForm action=action attr:class="mt-2 space-y-3 text-sm" attr:data-testid="policy-form">
            <input type="hidden" name="alias" value=alias />
            <label class="flex flex-col"><span class=LABEL>"Strategy"</span>
                <select name="strategy" class=INPUT>
                    {STRATEGIES.into_iter().map(|(v, label)| view! { <option value=v selected=p.strategy == v>{label}</option> }).collect_view()}
                </select>
            </label>
            <fieldset class="flex flex-wrap gap-3">
                <legend class=LABEL>"Score weights (strategy score; each 0 to 1, together 1)"</legend>
                <label class="flex flex-col text-xs">"Latency"<input name="weight_latency" type="number" step="0.01" min="0" max="1" value=p.weight_latency.clone() class=SMALL_INPUT /></label>
                <label class="flex flex-col text-xs">"Cost"<input name="weight_cost" type="number" step="0.01" min="0" max="1" value=p.weight_cost.clone() class=SMALL_INPUT /></label>
                <label class="flex flex-col text-xs">"Reliability"<input name="weight_reliability" type="number" step="0.01" min="0" max="1" value=p.weight_reliability.clone() class=SMALL_INPUT /></label>
                <label class="flex flex-col text-xs">"Bandwidth"<input name="weight_bandwidth" type="number" step="0.01" min="0" max="1" value=p.weight_bandwidth.clone() class=SMALL_INPUT /></label>
            </fieldset>
            <fieldset class="flex flex-wrap gap-3">
                <legend class=LABEL>"Retries and time limits"</legend>
                <label class="flex flex-col text-xs">"Retries per target (0–10)"<input name="max_retries" type="number" min="0" max="10" value=p.max_retries.clone() class=SMALL_INPUT /></label>
                <label class="flex flex-col text-xs">"Backoff (ms, 0–60000)"<input name="retry_backoff_ms" type="number" min="0" max="60000" value=p.retry_backoff_ms.clone() class=SMALL_INPUT /></label>
                <label class="flex flex-col text-xs">"Attempt timeout (ms, 100–600000)"<input name="attempt_timeout_ms" type="number" min="100" max="600000" value=p.attempt_timeout_ms.clone() class=SMALL_INPUT /></label>
                <label class="flex flex-col text-xs">"Deadline (ms, ≥ timeout, ≤ 3600000)"<input name="deadline_ms" type="number" min="100" max="3600000" value=p.deadline_ms.clone() class=SMALL_INPUT /></label>
                <label class="self-end text-xs"><input type="checkbox" name="fallback_enabled" value="on" checked=p.fallback_enabled />" fall back to the next target"</label>
            </fieldset>
            <fieldset class="flex flex-wrap gap-3">
                <legend class=LABEL>"Circuit breaker"</legend>
                <label class="flex flex-col text-xs">"Failures in a row (1–1000)"<input name="breaker_failure_threshold" type="number" min="1" max="1000" value=p.breaker_failure_threshold.clone() class=SMALL_INPUT /></label>
                <label class="flex flex-col text-xs">"Error rate (0.01–1)"<input name="breaker_error_rate" type="number" step="0.01" min="0.01" max="1" value=p.breaker_error_rate.clone() class=SMALL_INPUT /></label>
                <label class="flex flex-col text-xs">"Window (s, 1–3600)"<input name="breaker_window_s" type="number" min="1" max="3600" value=p.breaker_window_s.clone() class=SMALL_INPUT /></label>
                <label class="flex flex-col text-xs">"Cooldown (s, 1–3600)"<input name="breaker_cooldown_s" type="number" min="1" max="3600" value=p.breaker_cooldown_s.clone() class=SMALL_INPUT /></label>
            </fieldset>
            <fieldset class="flex flex-wrap gap-3">
                <legend class=LABEL>"Budget"</legend>
                <label class="flex flex-col text-xs">"US dollars (empty: none)"<input name="budget" inputmode="decimal" value=p.budget.clone() class=SMALL_INPUT placeholder="25.00" /></label>
                <label class="flex flex-col text-xs">"Per"
                    <select name="budget_period" class=INPUT>
                        {PERIODS.into_iter().map(|v| view! { <option value=v selected=p.budget_period == v>{v}</option> }).collect_view()}
                    </select>
                </label>
                <label class="flex flex-col text-xs">"When spent"
                    <select name="budget_action" class=INPUT>
                        {BUDGET_ACTIONS.into_iter().map(|(v, label)| view! { <option value=v selected=p.budget_action == v>{label}</option> }).collect_view()}
                    </select>
                </label>
                <p class="basis-full text-xs text-slate-600" data-testid="budget-note">
                    "Spend is counted per day, ISO week or calendar month in UTC. A request that starts under the budget may end over it; the next one is refused (429) or sent to the cheapest targets."
                </p>
            </fieldset>
            <button type="submit" class=BUTTON>"Save policy"</button>
        </ActionForm>
    }
}

#[component]
fn HealthTable(rows: Vec<HealthRow>) -> impl IntoView {
    view! {
        <table class="w-full text-left text-sm" data-testid="health-table">
            <thead>
                <tr>
                    <th>"Provider / model"</th><th>"Aliases"</th><th>"Breaker"</th><th>"Requests"</th>
                    <th>"Errors"</th><th>"p50 latency"</th><th>"p50 TTFT"</th><th>"p95 latency"</th>
                </tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|h| {
                    let (label, class) = match h.breaker.as_str() {
                        "open" => ("open: skipped", "text-rose-800 font-medium"),
                        "half_open" => ("half-open: probing", "text-amber-800 font-medium"),
                        _ => ("closed", "text-emerald-800"),
                    };
                    view! {
                        <tr class="border-t border-slate-200" data-testid=format!("health-{}-{}", h.provider, h.model)>
                            <td class="py-1"><span class="font-medium">{h.provider.clone()}</span> " / " <span class="font-mono">{h.model.clone()}</span></td>
                            <td class="font-mono text-xs">{h.aliases.join(", ")}</td>
                            <td class=class data-testid="breaker" data-state=h.breaker.clone()>{label}</td>
                            <td>{h.requests}</td>
                            <td>{format!("{:.1}%", h.error_rate * 100.0)}</td>
                            <td>{ms(h.latency_p50_ms)}</td>
                            <td>{ms(h.ttft_p50_ms)}</td>
                            <td>{ms(h.latency_p95_ms)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn LogFilterForm(q: LogQuery, providers: Vec<Choice>, users: Vec<Choice>) -> impl IntoView {
    let filtered = q.filtered();
    view! {
        <form method="get" action="/admin/routing" class="flex flex-wrap items-end gap-3 text-sm" data-testid="log-filter">
            <label class="flex flex-col"><span class=LABEL>"From (UTC)"</span><input name="from" type="datetime-local" step="1" value=q.from.clone() class=INPUT /></label>
            <label class="flex flex-col"><span class=LABEL>"Until (UTC, not included)"</span><input name="to" type="datetime-local" step="1" value=q.to.clone() class=INPUT /></label>
            <label class="flex flex-col"><span class=LABEL>"Provider"</span>
                <select name="provider" class=INPUT>
                    <option value="" selected=q.provider.is_empty()>"any"</option>
                    {providers.into_iter().map(|p| {
                        let selected = p.value == q.provider;
                        view! { <option value=p.value selected=selected>{p.label}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label class="flex flex-col"><span class=LABEL>"Model (exact)"</span><input name="model" maxlength="128" value=q.model.clone() class=INPUT /></label>
            <label class="flex flex-col"><span class=LABEL>"Status"</span>
                <select name="status" class=INPUT>
                    <option value="" selected=q.status.is_empty()>"any"</option>
                    {STATUSES.into_iter().map(|s| view! { <option value=s selected=q.status == s>{s}</option> }).collect_view()}
                </select>
            </label>
            <label class="flex flex-col"><span class=LABEL>"Caller"</span>
                <select name="user" class=INPUT>
                    <option value="" selected=q.user.is_empty()>"anyone"</option>
                    {users.into_iter().map(|u| {
                        let selected = u.value == q.user;
                        view! { <option value=u.value selected=selected>{u.label}</option> }
                    }).collect_view()}
                </select>
            </label>
            <button type="submit" class=BUTTON data-testid="log-filter-submit">"Show"</button>
            {filtered.then(|| view! { <a class="underline" href="/admin/routing">"Clear filters"</a> })}
        </form>
    }
}

#[component]
fn LogTable(page: LogPageView, q: LogQuery) -> impl IntoView {
    let newest = (!q.after.is_empty()).then(|| q.href(None));
    let older = page.next.as_deref().map(|n| q.href(Some(n)));
    let empty = page.rows.is_empty();
    view! {
        {empty.then(|| view! { <p data-testid="log-empty">"No requests match."</p> })}
        {(!empty).then(|| view! {
            <div class="overflow-x-auto">
                <table class="w-full text-left text-xs" data-testid="log-table">
                    <thead>
                        <tr>
                            <th>"Time (UTC)"</th><th>"Caller"</th><th>"Requested"</th><th>"Alias"</th><th>"Provider"</th>
                            <th>"Model"</th><th>"Status"</th><th>"HTTP"</th><th>"Attempts"</th><th>"Latency"</th>
                            <th>"TTFT"</th><th>"Tokens in / out"</th><th>"Cost"</th><th>"Error"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {page.rows.into_iter().map(|r| {
                            let status_class = match r.status.as_str() {
                                "ok" => "text-emerald-800",
                                "error" => "text-rose-800",
                                _ => "text-amber-800",
                            };
                            view! {
                                <tr class="border-t border-slate-200 align-top" data-testid="log-row" data-id=r.id.clone()>
                                    <td class="whitespace-nowrap py-1">{r.time.clone()}</td>
                                    <td>{if r.caller.is_empty() { "—".to_string() } else { r.caller.clone() }}</td>
                                    <td class="font-mono">{r.requested_model.clone()}{r.stream.then_some(" (stream)")}</td>
                                    <td class="font-mono">{some_text(r.alias.clone())}</td>
                                    <td>{some_text(r.provider.clone())}</td>
                                    <td class="font-mono">{some_text(r.model.clone())}</td>
                                    <td class=status_class>{r.status.clone()}</td>
                                    <td>{r.http_status}</td>
                                    <td>{r.attempts}</td>
                                    <td class="whitespace-nowrap">{format!("{} ms", r.latency_ms)}</td>
                                    <td class="whitespace-nowrap">{ms(r.ttft_ms)}</td>
                                    <td class="whitespace-nowrap">{format!("{} / {}", r.tokens_in, r.tokens_out)}</td>
                                    <td class="whitespace-nowrap">{format!("${}", r.cost)}</td>
                                    <td class="max-w-xs break-words text-rose-800">{r.error.clone().unwrap_or_default()}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        })}
        <nav aria-label="Request log pages" class="flex gap-4 text-sm">
            {newest.map(|href| view! { <a class="underline" href=href data-testid="log-newest">"← Newest"</a> })}
            {older.map(|href| view! { <a class="underline" href=href data-testid="log-older">"Older →"</a> })}
        </nav>
    }
}
