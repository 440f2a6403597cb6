//! Sign-in with passkeys, first-run setup, sign-out, and who is signed in.
//!
//! The ceremony functions take and return the WebAuthn JSON types as they are; the browser side
//! (`crate::webauthn_client`) turns them into `navigator.credentials` calls.

use leptos::{prelude::*, server_fn::codec::Json};
use serde::{Deserialize, Serialize};
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse,
};

use crate::error::AppError;

/// The signed-in person, as pages show them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: String,
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use goblin_core::{
        entities::users,
        passkeys::AuthError,
        sessions::{SIGNED_IN_AT_KEY, USER_ID_KEY},
    };
    use leptos::prelude::*;
    use sea_orm::EntityTrait;
    use tower_sessions::Session;

    use crate::{error::AppError, state::AppState};

    pub fn state() -> Result<AppState, AppError> {
        use_context::<AppState>().ok_or_else(|| AppError::internal("AppState missing from context"))
    }

    pub async fn session() -> Result<Session, AppError> {
        leptos_axum::extract::<Session>()
            .await
            .map_err(|e| AppError::internal(format!("no session layer: {e}")))
    }

    /// The signed-in, active user of this request, if any. Ends a session past its absolute lifetime.
    pub async fn signed_in_user(
        state: &AppState,
        session: &Session,
    ) -> Result<Option<users::Model>, AppError> {
        let Some(id) = session.get::<String>(USER_ID_KEY).await.map_err(AppError::internal)? else {
            return Ok(None);
        };
        let signed_in_at =
            session.get::<i64>(SIGNED_IN_AT_KEY).await.map_err(AppError::internal)?.unwrap_or(0);
        let limit = state.settings.u32(goblin_core::settings::keys::SESSION_ABSOLUTE_HOURS);
        if !goblin_core::sessions::within_absolute_lifetime(signed_in_at, state.clock.now(), limit) {
            session.flush().await.map_err(AppError::internal)?;
            return Ok(None);
        }
        let Ok(id) = uuid::Uuid::parse_str(&id) else { return Ok(None) };
        let user = users::Entity::find_by_id(id).one(&state.db).await.map_err(AppError::internal)?;
        let user = user.filter(|u| u.status == "active");
        if user.is_some() {
            goblin_core::sessions::touch(
                session,
                state.settings.u32(goblin_core::settings::keys::SESSION_IDLE_MINUTES),
            );
        }
        Ok(user)
    }

    /// Starts a signed-in session for `user` under a new session id.
    pub async fn sign_in(state: &AppState, session: &Session, user: &users::Model) -> Result<(), AppError> {
        session.cycle_id().await.map_err(AppError::internal)?;
        session.insert(USER_ID_KEY, user.id.to_string()).await.map_err(AppError::internal)?;
        session.insert(SIGNED_IN_AT_KEY, state.clock.now().timestamp()).await.map_err(AppError::internal)?;
        Ok(())
    }

    /// The signed-in user, or [`AppError::Unauthorized`] (with status 401).
    pub async fn require_user() -> Result<(AppState, Session, users::Model), AppError> {
        let state = state()?;
        let session = session().await?;
        match signed_in_user(&state, &session).await? {
            Some(u) => Ok((state, session, u)),
            None => Err(AppError::Unauthorized.respond()),
        }
    }

    /// The signed-in admin, [`AppError::Unauthorized`] (401) or [`AppError::Forbidden`] (403).
    pub async fn require_admin() -> Result<(AppState, users::Model), AppError> {
        let (state, _, user) = require_user().await?;
        if user.role != "admin" {
            return Err(AppError::Forbidden.respond());
        }
        Ok((state, user))
    }

    /// The client's address, for the audit log.
    pub async fn client_ip() -> Option<String> {
        use axum::extract::ConnectInfo;
        leptos_axum::extract::<ConnectInfo<std::net::SocketAddr>>().await.ok().map(|c| c.0.ip().to_string())
    }

    pub fn map_auth(e: AuthError) -> AppError {
        match e {
            AuthError::Db(e) => AppError::internal(e),
            AuthError::Config(e) => AppError::internal(e),
            AuthError::Unavailable(e) => AppError::Unavailable(e.to_string()),
            other => AppError::Refused(other.to_string()),
        }
        .respond()
    }
}

/// Who is signed in on this browser, if anyone.
///
/// # Errors
/// [`AppError::Internal`] when the session or database cannot be read.
#[server(prefix = "/fn", endpoint = "auth/me")]
pub async fn current_user() -> Result<Option<UserView>, AppError> {
    let state = ssr::state()?;
    let session = ssr::session().await?;
    Ok(ssr::signed_in_user(&state, &session).await?.map(|u| UserView {
        id: u.id.to_string(),
        username: u.username,
        display_name: u.display_name,
        role: u.role,
    }))
}

/// Setup step 1: checks the one-time link and returns the ceremony id and the browser's options.
///
/// # Errors
/// A bad link or names ([`AppError::Refused`]), or an unavailable ceremony store.
#[server(prefix = "/fn", endpoint = "auth/setup-start", input = Json)]
pub async fn setup_start(
    token: String,
    username: String,
    display_name: String,
) -> Result<(String, CreationChallengeResponse), AppError> {
    let state = ssr::state()?;
    state.passkeys.setup_start(&token, &username, &display_name).await.map_err(ssr::map_auth)
}

/// Setup step 2: registers the passkey, creates the first admin, and signs them in.
///
/// # Errors
/// A used or expired ceremony, or a credential that does not verify.
#[server(prefix = "/fn", endpoint = "auth/setup-finish", input = Json)]
pub async fn setup_finish(
    ceremony: String,
    credential: RegisterPublicKeyCredential,
    passkey_name: String,
) -> Result<(), AppError> {
    let state = ssr::state()?;
    let session = ssr::session().await?;
    let ip = ssr::client_ip().await;
    let user = state
        .passkeys
        .setup_finish(&ceremony, &credential, &passkey_name, ip.as_deref())
        .await
        .map_err(ssr::map_auth)?;
    ssr::sign_in(&state, &session, &user).await
}

/// Sign-in step 1. Without a username the person picks any of their passkeys for this site.
///
/// # Errors
/// No passkeys for that username, or an unavailable ceremony store.
#[server(prefix = "/fn", endpoint = "auth/signin-start", input = Json)]
pub async fn signin_start(username: Option<String>) -> Result<(String, RequestChallengeResponse), AppError> {
    let state = ssr::state()?;
    if let Some(name) = username.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        let key = format!("auth-user:{}", name.to_lowercase());
        match state
            .rate_limiter
            .hit(&key, state.settings.u32(goblin_core::settings::keys::RATE_LIMIT_PER_USER))
            .await
        {
            Ok(goblin_core::rate_limit::Decision::Allowed) => {}
            Ok(goblin_core::rate_limit::Decision::Limited { retry_after_s }) => {
                return Err(AppError::RateLimited(retry_after_s).respond());
            }
            Err(e) => return Err(AppError::Unavailable(e.to_string()).respond()),
        }
    }
    state.passkeys.signin_start(username.as_deref()).await.map_err(ssr::map_auth)
}

/// Sign-in step 2: verifies the passkey and signs in under a new session id.
///
/// # Errors
/// Any verification failure, with its reason.
#[server(prefix = "/fn", endpoint = "auth/signin-finish", input = Json)]
pub async fn signin_finish(ceremony: String, credential: PublicKeyCredential) -> Result<(), AppError> {
    let state = ssr::state()?;
    let session = ssr::session().await?;
    let ip = ssr::client_ip().await;
    let user =
        state.passkeys.signin_finish(&ceremony, &credential, ip.as_deref()).await.map_err(ssr::map_auth)?;
    ssr::sign_in(&state, &session, &user).await
}

/// Ends this browser's session on the server and goes to the sign-in page. Works as a plain form.
///
/// # Errors
/// When the session store cannot be written.
#[server(prefix = "/fn", endpoint = "auth/signout")]
pub async fn sign_out() -> Result<(), AppError> {
    let session = ssr::session().await?;
    session.flush().await.map_err(AppError::internal)?;
    leptos_axum::redirect("/signin");
    Ok(())
}
