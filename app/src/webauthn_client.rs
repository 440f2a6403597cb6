//! The browser half of the passkey ceremonies: `navigator.credentials.create/get` with the server's
//! options, converted both ways by webauthn-rs-proto's `wasm` feature.

use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse,
};

fn js_error(e: JsValue) -> String {
    // DOMException and Error both carry a name and a message.
    let get = |k: &str| js_sys::Reflect::get(&e, &JsValue::from_str(k)).ok().and_then(|v| v.as_string());
    match (get("name"), get("message")) {
        (Some(n), _) if n == "NotAllowedError" => {
            "the passkey prompt was cancelled or timed out; try again".to_string()
        }
        (Some(n), Some(m)) => format!("{n}: {m}"),
        _ => e.as_string().unwrap_or_else(|| "the browser refused the passkey request".to_string()),
    }
}

fn credentials() -> Result<web_sys::CredentialsContainer, String> {
    let window = web_sys::window().ok_or("no browser window")?;
    Ok(window.navigator().credentials())
}

/// Asks the browser to create a passkey.
pub async fn create(options: CreationChallengeResponse) -> Result<RegisterPublicKeyCredential, String> {
    let opts: web_sys::CredentialCreationOptions = options.into();
    let promise = credentials()?.create_with_options(&opts).map_err(js_error)?;
    let value = JsFuture::from(promise).await.map_err(js_error)?;
    if value.is_null() || value.is_undefined() {
        return Err("the browser returned no passkey".into());
    }
    Ok(RegisterPublicKeyCredential::from(web_sys::PublicKeyCredential::from(value)))
}

/// Asks the browser to sign the challenge with a passkey.
pub async fn get(options: RequestChallengeResponse) -> Result<PublicKeyCredential, String> {
    let opts: web_sys::CredentialRequestOptions = options.into();
    let promise = credentials()?.get_with_options(&opts).map_err(js_error)?;
    let value = JsFuture::from(promise).await.map_err(js_error)?;
    if value.is_null() || value.is_undefined() {
        return Err("the browser returned no passkey".into());
    }
    Ok(PublicKeyCredential::from(web_sys::PublicKeyCredential::from(value)))
}

/// A full-page navigation (so every part of the page sees the new session).
pub fn go_to(path: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.location().assign(path);
    }
}
