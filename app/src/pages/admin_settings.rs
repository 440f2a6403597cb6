//! Admin → Settings: every runtime setting, grouped, with its description, rule and default. Each
//! setting is its own form, so a refusal shows beside the field it is about. Changes apply on every
//! instance without a restart and go to the audit log.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    components::ui::{BUTTON, CARD, INPUT},
    pages::admin::AdminNav,
    server_fns::settings::{ResetSetting, SetSetting, SettingRow, list_settings},
};

#[component]
pub fn AdminSettingsPage() -> impl IntoView {
    // Each setting's form has its own action (so a refusal shows beside its own field); a success
    // anywhere reloads the list.
    let changed = RwSignal::new(0u32);
    let settings = Resource::new(move || changed.get(), |_| list_settings());

    view! {
        <Title text="Settings" />
        <div class="space-y-8">
            <h1 class="text-2xl font-bold">"Settings"</h1>
            <AdminNav current="/admin/settings" />
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    settings.await.map(|rows| {
                        let mut groups: Vec<(String, Vec<SettingRow>)> = Vec::new();
                        for row in rows {
                            match groups.iter_mut().find(|(g, _)| *g == row.group) {
                                Some((_, list)) => list.push(row),
                                None => groups.push((row.group.clone(), vec![row])),
                            }
                        }
                        groups.into_iter().map(|(group, rows)| {
                            let heading = format!("group-{}", group.to_lowercase().replace(' ', "-"));
                            let labelled = heading.clone();
                            view! {
                                <section aria-labelledby=labelled class=CARD>
                                    <h2 id=heading class="text-lg font-semibold">{group}</h2>
                                    <ul class="divide-y divide-slate-200">
                                        {rows.into_iter().map(|s| view! { <SettingItem s=s changed=changed /> }).collect_view()}
                                    </ul>
                                </section>
                            }
                        }).collect_view()
                    })
                })}
            </Transition>
        </div>
    }
}

#[component]
fn SettingItem(s: SettingRow, changed: RwSignal<u32>) -> impl IntoView {
    let set = ServerAction::<SetSetting>::new();
    let reset = ServerAction::<ResetSetting>::new();
    Effect::new(move |_| {
        if matches!(set.value().get(), Some(Ok(()))) || matches!(reset.value().get(), Some(Ok(()))) {
            changed.update(|n| *n += 1);
        }
    });
    let field = format!("setting-{}", s.key.replace('.', "-"));
    let (key, key_reset) = (s.key.clone(), s.key.clone());
    let (field_li, field_label) = (field.clone(), field.clone());
    let rule = match s.kind.as_str() {
        "int" => format!(
            "a whole number from {} to {}{}",
            s.min.unwrap_or_default(),
            s.max.unwrap_or_default(),
            if s.unit.is_empty() { String::new() } else { format!(" ({})", s.unit) }
        ),
        "bool" => "on or off".to_string(),
        _ => format!("one of {}", s.choices.join(", ")),
    };
    let input = match s.kind.as_str() {
        "bool" => view! {
            <select id=field.clone() name="value" class=INPUT>
                <option value="true" selected=s.value == "true">"on"</option>
                <option value="false" selected=s.value != "true">"off"</option>
            </select>
        }
        .into_any(),
        "choice" => view! {
            <select id=field.clone() name="value" class=INPUT>
                {s.choices.iter().map(|c| view! { <option value=c.clone() selected=*c == s.value>{c.clone()}</option> }).collect_view()}
            </select>
        }
        .into_any(),
        _ => view! {
            <input
                id=field.clone() name="value" type="number" required class=INPUT value=s.value.clone()
                min=s.min.map(|m| m.to_string()) max=s.max.map(|m| m.to_string())
            />
        }
        .into_any(),
    };
    let error = move || match set.value().get() {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    view! {
        <li class="space-y-1 py-3" data-testid=field_li>
            <ActionForm action=set attr:class="flex flex-wrap items-center gap-2">
                <input type="hidden" name="key" value=key />
                <label for=field_label class="w-64 font-medium">{s.label.clone()}</label>
                {input}
                <button type="submit" class=BUTTON>"Save"</button>
                <span class="text-xs text-slate-600">
                    {if s.is_default { "default".to_string() } else { format!("changed {} · default {}", s.updated_at.clone().unwrap_or_default(), s.default) }}
                </span>
            </ActionForm>
            <p class="text-sm text-slate-700">{s.description.clone()} " Allowed: " {rule} "."</p>
            <p role="alert" class="text-sm text-rose-800">{error}</p>
            {(!s.is_default).then(|| view! {
                <ActionForm action=reset>
                    <input type="hidden" name="key" value=key_reset />
                    <button type="submit" class="text-xs underline">"Reset to default"</button>
                </ActionForm>
            })}
        </li>
    }
}
