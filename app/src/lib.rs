//! Goblin Assistant's dashboard: Leptos pages and components, the server functions they call, and the
//! types that cross the wire. Server-only code sits behind the `ssr` feature; the browser build uses
//! `hydrate`.

#[cfg(feature = "hydrate")]
pub mod chat_client;
pub mod components;
pub mod error;
pub mod markdown;
pub mod pages;
#[cfg(feature = "hydrate")]
pub mod search_client;
pub mod server_fns;
#[cfg(feature = "ssr")]
pub mod state;
#[cfg(feature = "hydrate")]
pub mod tasks_client;
#[cfg(feature = "hydrate")]
pub mod webauthn_client;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    ParamSegment, SsrMode, StaticSegment,
    components::{Route, Router, Routes},
};

use crate::{
    components::layout::Layout,
    pages::search::{SearchCollectionPage, SearchDocumentPage, SearchPage},
    pages::{
        account::AccountPage, admin::AdminPage, admin_monitoring::AdminMonitoringPage,
        admin_provider::AdminProviderPage, admin_providers::AdminProvidersPage,
        admin_routing::AdminRoutingPage, admin_settings::AdminSettingsPage, chat::ChatPage, home::HomePage,
        not_found::NotFound, setup::SetupPage, signin::SignInPage, task::TaskPage, tasks::TasksPage,
    },
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-900 antialiased">
                <App />
            </body>
        </html>
    }
}

/// The dashboard: layout, routes, and a 404 page for everything else.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/goblin.css" />
        <Title formatter=|page: String| {
            if page.is_empty() { "Goblin Assistant".to_string() } else { format!("{page} · Goblin Assistant") }
        } />
        <Router>
            <Layout>
                <Routes fallback=|| view! { <NotFound /> }>
                    // In order: the dashboard's cards and charts are in the HTML as sent, for browsers without JavaScript.
                    <Route path=StaticSegment("") ssr=SsrMode::InOrder view=HomePage />
                    <Route path=StaticSegment("account") ssr=SsrMode::InOrder view=AccountPage />
                    // Async: an unknown conversation is answered 404, which needs its data before the headers.
                    <Route path=StaticSegment("chat") ssr=SsrMode::Async view=ChatPage />
                    <Route path=(StaticSegment("chat"), ParamSegment("id")) ssr=SsrMode::Async view=ChatPage />
                    <Route path=StaticSegment("tasks") ssr=SsrMode::InOrder view=TasksPage />
                    // Async: an unknown task is answered 404, which needs its data before the headers.
                    <Route path=(StaticSegment("tasks"), ParamSegment("id")) ssr=SsrMode::Async view=TaskPage />
                    <Route path=StaticSegment("search") ssr=SsrMode::InOrder view=SearchPage />
                    // Async: an unknown collection or document is answered 404, which needs its data before the headers.
                    <Route path=(StaticSegment("search"), StaticSegment("collections"), ParamSegment("id")) ssr=SsrMode::Async view=SearchCollectionPage />
                    <Route
                        path=(StaticSegment("search"), StaticSegment("collections"), ParamSegment("id"), StaticSegment("documents"), ParamSegment("doc"))
                        ssr=SsrMode::Async
                        view=SearchDocumentPage
                    />
                    <Route path=StaticSegment("admin") ssr=SsrMode::InOrder view=AdminPage />
                    <Route path=(StaticSegment("admin"), StaticSegment("providers")) ssr=SsrMode::InOrder view=AdminProvidersPage />
                    <Route
                        path=(StaticSegment("admin"), StaticSegment("providers"), ParamSegment("id"))
                        ssr=SsrMode::InOrder
                        view=AdminProviderPage
                    />
                    <Route path=(StaticSegment("admin"), StaticSegment("routing")) ssr=SsrMode::InOrder view=AdminRoutingPage />
                    <Route path=(StaticSegment("admin"), StaticSegment("settings")) ssr=SsrMode::InOrder view=AdminSettingsPage />
                    <Route path=(StaticSegment("admin"), StaticSegment("monitoring")) ssr=SsrMode::InOrder view=AdminMonitoringPage />
                    <Route path=StaticSegment("invite") view=|| view! { <SetupPage invite=true /> } />
                    <Route path=StaticSegment("signin") view=SignInPage />
                    <Route path=StaticSegment("setup") view=|| view! { <SetupPage /> } />
                </Routes>
            </Layout>
        </Router>
    }
}
