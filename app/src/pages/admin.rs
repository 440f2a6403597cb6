//! Admin: accounts and roles, invites, and the audit log; and the Admin section's navigation.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::server_fns::admin::{CreateInvite, SetUserRole, SetUserStatus, audit_log, list_users};

use crate::components::ui::{BUTTON, CARD, INPUT};

/// The Admin section's own navigation, on every admin page.
#[component]
pub fn AdminNav(current: &'static str) -> impl IntoView {
    let links = [
        ("/admin", "Accounts and audit"),
        ("/admin/providers", "Providers"),
        ("/admin/routing", "Routing"),
        ("/admin/settings", "Settings"),
        ("/admin/monitoring", "Monitoring"),
        ("/account", "Your API tokens"),
    ];
    view! {
        <nav aria-label="Admin" class="flex flex-wrap gap-2 border-b border-slate-200 pb-2 text-sm">
            {links.into_iter().map(|(href, label)| {
                let here = href == current;
                view! {
                    <a
                        href=href
                        aria-current=here.then_some("page")
                        class=if here { "rounded bg-slate-900 px-3 py-1 font-medium text-white" } else { "rounded px-3 py-1 font-medium text-slate-800 hover:bg-slate-200" }
                    >{label}</a>
                }
            }).collect_view()}
        </nav>
    }
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let role = ServerAction::<SetUserRole>::new();
    let status = ServerAction::<SetUserStatus>::new();
    let invite = ServerAction::<CreateInvite>::new();
    let users = Resource::new(
        move || (role.version().get(), status.version().get(), invite.version().get()),
        |_| list_users(),
    );
    let audit = Resource::new(
        move || (role.version().get(), status.version().get(), invite.version().get()),
        |_| audit_log(),
    );

    view! {
        <Title text="Admin" />
        <div class="space-y-8">
            <h1 class="text-2xl font-bold">"Admin"</h1>
            <AdminNav current="/admin" />
            <section aria-labelledby="users-heading" class=CARD>
                <h2 id="users-heading" class="text-lg font-semibold">"Accounts"</h2>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        users.await.map(|rows| view! {
                            <table class="w-full text-left text-sm" data-testid="user-table">
                                <thead><tr><th>"User"</th><th>"Role"</th><th>"Status"</th></tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|u| {
                                        let id_role = u.id.clone();
                                        let id_status = u.id.clone();
                                        let next_status = if u.status == "active" { "disabled" } else { "active" };
                                        let status_label = if u.status == "active" { "Disable" } else { "Enable" };
                                        let current_role = u.role.clone();
                                        view! {
                                            <tr class="border-t border-slate-200" data-testid=format!("user-{}", u.username)>
                                                <td class="py-2">
                                                    {u.display_name.clone()} " "
                                                    <span class="text-slate-600">"(" {u.username.clone()} ")"</span>
                                                    {u.is_service.then_some(" · service account")}
                                                </td>
                                                <td>
                                                    <ActionForm action=role attr:class="flex gap-2">
                                                        <input type="hidden" name="id" value=id_role />
                                                        <label class="sr-only" for=format!("role-{}", u.id)>"Role"</label>
                                                        <select id=format!("role-{}", u.id) name="role" class=INPUT>
                                                            {["admin", "operator", "viewer"].into_iter().map(|r| {
                                                                view! { <option value=r selected=current_role == r>{r}</option> }
                                                            }).collect_view()}
                                                        </select>
                                                        <button type="submit" class=BUTTON>"Set role"</button>
                                                    </ActionForm>
                                                </td>
                                                <td>
                                                    <ActionForm action=status attr:class="flex items-center gap-2">
                                                        <input type="hidden" name="id" value=id_status />
                                                        <input type="hidden" name="status" value=next_status />
                                                        <span>{u.status.clone()}</span>
                                                        <button type="submit" class=BUTTON>{status_label}</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        })
                    })}
                </Transition>
                <p role="alert" class="text-sm text-rose-800">
                    {move || match (role.value().get(), status.value().get()) {
                        (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e.to_string()),
                        _ => None,
                    }}
                </p>
            </section>

            <section aria-labelledby="invites-heading" class=CARD>
                <h2 id="invites-heading" class="text-lg font-semibold">"Invite someone"</h2>
                <ActionForm action=invite attr:class="flex flex-wrap items-end gap-3">
                    <div class="flex flex-col">
                        <label for="invite-role" class="text-sm font-medium">"Role"</label>
                        <select id="invite-role" name="role" class=INPUT>
                            <option value="viewer" selected>"viewer"</option>
                            <option value="operator">"operator"</option>
                            <option value="admin">"admin"</option>
                        </select>
                    </div>
                    <div class="flex flex-col">
                        <label for="invite-days" class="text-sm font-medium">"Days valid"</label>
                        <input id="invite-days" name="days" type="number" min="1" max="30" value="7" class=INPUT />
                    </div>
                    <button type="submit" data-testid="create-invite" class=BUTTON>"Create invite link"</button>
                </ActionForm>
                {move || match invite.value().get() {
                    Some(Ok(link)) => view! {
                        <div role="status" class="rounded border border-emerald-300 bg-emerald-50 p-3 text-sm">
                            <p>"Send this one-time link to the person; it is shown only now."</p>
                            <code data-testid="invite-link" class="block break-all">{link}</code>
                        </div>
                    }.into_any(),
                    Some(Err(e)) => view! { <p role="alert" class="text-sm text-rose-800">{e.to_string()}</p> }.into_any(),
                    None => ().into_any(),
                }}
            </section>

            <section aria-labelledby="audit-heading" class=CARD>
                <h2 id="audit-heading" class="text-lg font-semibold">"Audit log"</h2>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        audit.await.map(|rows| view! {
                            <table class="w-full text-left text-sm" data-testid="audit-table">
                                <thead><tr><th>"When"</th><th>"Event"</th><th>"Outcome"</th><th>"Detail"</th></tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|a| view! {
                                        <tr class="border-t border-slate-200">
                                            <td class="py-1 whitespace-nowrap">{a.at}</td>
                                            <td class="font-mono">{a.action}</td>
                                            <td>{a.outcome}</td>
                                            <td class="text-slate-700">{a.reason.or(a.target).unwrap_or_default()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        })
                    })}
                </Transition>
            </section>
        </div>
    }
}
