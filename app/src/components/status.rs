//! A small up/down badge.

use leptos::prelude::*;

/// Green "up" or red "down", with the word spelled out (colour is never the only signal).
#[component]
pub fn StatusBadge(up: bool) -> impl IntoView {
    let (class, text) = if up {
        ("bg-emerald-100 text-emerald-900 ring-emerald-600/30", "up")
    } else {
        ("bg-rose-100 text-rose-900 ring-rose-600/30", "down")
    };
    view! {
        <span class=format!(
            "inline-flex items-center rounded-full px-2 py-0.5 text-xs font-semibold ring-1 ring-inset {class}",
        )>{text}</span>
    }
}
