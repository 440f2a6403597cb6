//! The one error type that crosses the wire from server functions to the browser. It carries a message
//! fit for a person and never internal detail: under `ssr`, conversions log the detail and keep it on
//! the server.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// The request was malformed or failed in transport (decoding, network, ...).
    #[error("request failed: {0}")]
    Request(String),
    /// Something went wrong on the server; the detail is in the server's log.
    #[error("something went wrong on the server; the details are in its log")]
    Internal,
    /// A dependency (database, Redis, ...) is down.
    #[error("{0} is unavailable right now")]
    Unavailable(String),
    /// The caller must sign in first.
    #[error("sign in first")]
    Unauthorized,
    /// The thing asked for does not exist (an unknown id).
    #[error("{0}")]
    NotFound(String),
    /// Signed in, but the role does not allow it.
    #[error("your role does not allow this")]
    Forbidden,
    /// The request was understood and refused; the message says why.
    #[error("{0}")]
    Refused(String),
    /// Too many attempts; try again after this many seconds.
    #[error("too many attempts; try again in {0} s")]
    RateLimited(u64),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Request(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// Logs an internal error with its detail and returns the opaque [`AppError::Internal`].
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error in a server function");
        AppError::Internal
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Request(_) => 400,
            AppError::Internal => 500,
            AppError::Unavailable(_) => 503,
            AppError::Unauthorized => 401,
            AppError::Forbidden => 403,
            AppError::NotFound(_) => 404,
            AppError::Refused(_) => 400,
            AppError::RateLimited(_) => 429,
        }
    }

    /// Sets the response status to match, and returns the error for `?`. A plain form post (a
    /// browser without JavaScript, asking for HTML) is left alone: the server answers it with a
    /// redirect back to the form's page carrying the error for the page to show, and a status set
    /// here would replace that redirect.
    pub fn respond(self) -> Self {
        let form_post = leptos::prelude::use_context::<axum::http::request::Parts>().is_some_and(|p| {
            p.method == axum::http::Method::POST
                && p.headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"))
        });
        if form_post {
            return self;
        }
        if let Some(resp) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::from_u16(self.status()).unwrap_or_default());
            if let AppError::RateLimited(s) = &self {
                resp.insert_header(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(*s));
            }
        }
        self
    }
}
