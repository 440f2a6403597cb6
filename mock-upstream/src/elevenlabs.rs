//! ElevenLabs API: models, user, voices and text-to-speech (whole or streamed).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::handler::Ctx;
use crate::provider::{self, Kind, ok_json};
use crate::stream::{self, Piece, StreamPlan};
use crate::text::{self, shorten_key};

const CHARACTER_LIMIT: u64 = 100_000;

const MODELS: &[(&str, &str, &str)] = &[
    (
        "eleven_multilingual_v2",
        "Eleven Multilingual v2",
        "Our most lifelike model with rich emotional expression.",
    ),
    ("eleven_flash_v2_5", "Eleven Flash v2.5", "Our ultra low latency model."),
    ("eleven_turbo_v2_5", "Eleven Turbo v2.5", "High quality, low latency model."),
];

const VOICES: &[(&str, &str, &str, &str)] = &[
    ("21m00Tcm4TlvDq8ikWAM", "Rachel", "female", "american"),
    ("29vD33N1CtxCmqQRPOHJ", "Drew", "male", "american"),
    ("EXAVITQu4vr4xnSDxMaL", "Sarah", "female", "american"),
];

/// `GET /models`.
pub(crate) fn list_models() -> Response {
    let models: Vec<Value> = MODELS
        .iter()
        .map(|(id, name, description)| {
            json!({
                "model_id": id,
                "name": name,
                "description": description,
                "can_be_finetuned": false,
                "can_do_text_to_speech": true,
                "can_do_voice_conversion": false,
                "can_use_style": true,
                "can_use_speaker_boost": true,
                "serves_pro_voices": false,
                "token_cost_factor": 1.0,
                "requires_alpha_access": false,
                "max_characters_request_free_user": 2500,
                "max_characters_request_subscribed_user": 5000,
                "maximum_text_length_per_request": 10000,
                "languages": [{ "language_id": "en", "name": "English" }]
            })
        })
        .collect();
    ok_json(&Value::Array(models))
}

/// `GET /user`; `xi_api_key` is the shortened key, as the API redacts it.
pub(crate) fn user(ctx: &Ctx<'_>) -> Response {
    ok_json(&json!({
        "user_id": "mock-user",
        "first_name": "Mock",
        "subscription": {
            "tier": "creator",
            "character_count": ctx.state.tts_characters(),
            "character_limit": CHARACTER_LIMIT,
            "can_extend_character_limit": false,
            "allowed_to_extend_character_limit": false,
            "next_character_count_reset_unix": 1_767_225_600u64,
            "voice_limit": 30,
            "max_voice_add_edits": 95,
            "voice_add_edit_counter": 0,
            "professional_voice_limit": 1,
            "can_extend_voice_limit": false,
            "can_use_instant_voice_cloning": true,
            "can_use_professional_voice_cloning": true,
            "currency": "usd",
            "status": "active"
        },
        "is_new_user": false,
        "xi_api_key": ctx.key.as_deref().map(shorten_key),
        "can_use_delayed_payment_methods": false,
        "is_onboarding_completed": true
    }))
}

fn voice_object(&(id, name, gender, accent): &(&str, &str, &str, &str)) -> Value {
    json!({
        "voice_id": id,
        "name": name,
        "category": "premade",
        "labels": { "gender": gender, "accent": accent },
        "description": null,
        "preview_url": format!("https://storage.googleapis.com/mock/voices/{id}.mp3"),
        "settings": null
    })
}

/// `GET /voices`.
pub(crate) fn list_voices() -> Response {
    let voices: Vec<Value> = VOICES.iter().map(voice_object).collect();
    ok_json(&json!({ "voices": voices }))
}

/// `GET /voices/{voice_id}`.
pub(crate) fn get_voice(id: &str) -> Response {
    match VOICES.iter().find(|v| v.0 == id) {
        Some(v) => ok_json(&voice_object(v)),
        None => provider::error(
            Kind::ElevenLabs,
            404,
            &format!("A voice with the voice_id {id} was not found."),
            Some("voice_not_found"),
        ),
    }
}

/// `POST /text-to-speech/{voice_id}` and `/text-to-speech/{voice_id}/stream`: MP3-shaped bytes whatever
/// `output_format` asks for; the stream sends one frame per chunk.
pub(crate) fn text_to_speech(ctx: &Ctx<'_>) -> Response {
    let Some(text) = ctx.body.get("text").and_then(Value::as_str) else {
        return provider::error(ctx.kind, 400, "text: field required", Some("invalid_request"));
    };
    ctx.state.add_tts_characters(text.chars().count() as u64);
    if !ctx.streaming {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static("audio/mpeg"))],
            text::mp3_bytes(text),
        )
            .into_response();
    }
    let pieces = text::mp3_chunks(text).into_iter().map(Piece::Content).collect();
    let plan =
        StreamPlan { pieces, malformed: Bytes::from_static(b"{\"detail\":{\"status\":"), error_event: None };
    stream::respond(ctx.state, plan, ctx.behavior, "audio/mpeg")
}
