//! Real-HTTP tests of the mock upstream: wire shapes per provider kind, key checks and behaviours.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use goblin_mock_upstream::{MockConfig, MockUpstream, shorten_key};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};

const GOOD: &str = "sk-good-key-0000000001";
const BAD: &str = "sk-bad-key-1234567890";
const BAD_SHORT: &str = "sk-bad-k********7890";
const OPENAI_LIKE: &[&str] = &["openai", "deepseek", "grok", "siliconflow", "moonshot", "openai-compatible"];

async fn start(keys: &[&str]) -> MockUpstream {
    let config = MockConfig { keys: keys.iter().map(|k| k.to_string()).collect() };
    MockUpstream::start(config).await.expect("mock upstream starts")
}

fn client() -> Client {
    Client::new()
}

/// Adds a kind's key header (and Anthropic's version header).
fn auth(kind: &str, request: RequestBuilder, key: &str) -> RequestBuilder {
    match kind {
        "anthropic" => request.header("x-api-key", key).header("anthropic-version", "2023-06-01"),
        "gemini" => request.header("x-goog-api-key", key),
        "elevenlabs" => request.header("xi-api-key", key),
        _ => request.bearer_auth(key),
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Reads a body until it ends; `false` when the connection was dropped before the body completed.
async fn read_all(response: reqwest::Response) -> (String, bool) {
    let mut stream = response.bytes_stream();
    let mut buf = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => buf.extend_from_slice(&bytes),
            Err(_) => return (String::from_utf8_lossy(&buf).into_owned(), false),
        }
    }
    (String::from_utf8_lossy(&buf).into_owned(), true)
}

/// SSE events as (event name, data).
fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = Some(e.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.trim_start().to_owned());
                }
            }
            (event, data.join("\n"))
        })
        .collect()
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "stream_options": { "include_usage": true },
        "messages": [
            { "role": "system", "content": "You are terse." },
            { "role": "user", "content": "hello there" }
        ]
    })
}

fn anthropic_body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "system": "You are terse.",
        "messages": [{ "role": "user", "content": "hello there" }]
    })
}

fn gemini_body() -> Value {
    json!({ "contents": [{ "role": "user", "parts": [{ "text": "hello there" }] }] })
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn vector(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

#[tokio::test]
async fn models_lists_with_a_good_key() {
    let mock = start(&[GOOD]).await;
    let c = client();
    for kind in OPENAI_LIKE {
        let r = auth(kind, c.get(format!("{}/models", mock.base_url(kind))), GOOD).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{kind}");
        let v = json_of(r).await;
        assert_eq!(v["object"], "list");
        let ids: Vec<&str> =
            v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"text-embedding-3-small") && ids.contains(&"tts-1"), "{kind}: {ids:?}");
        assert!(ids.len() >= 3);
        assert_eq!(v["data"][0]["object"], "model");
    }

    let r = auth("anthropic", c.get(format!("{}/models", mock.base_url("anthropic"))), GOOD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_of(r).await;
    assert_eq!(v["data"][0]["type"], "model");
    assert!(v["data"][0]["id"].as_str().unwrap().starts_with("claude-"));
    assert_eq!(v["has_more"], false);

    let r = auth("gemini", c.get(format!("{}/models", mock.base_url("gemini"))), GOOD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_of(r).await;
    let first = &v["models"][0];
    assert!(first["name"].as_str().unwrap().starts_with("models/"));
    assert!(first["displayName"].is_string() && first["inputTokenLimit"].is_u64());
    assert!(first["outputTokenLimit"].is_u64());
    assert!(first["supportedGenerationMethods"].as_array().unwrap().iter().any(|m| m == "generateContent"));
    // Gemini also takes the key as a query parameter.
    let r = c.get(format!("{}/models?key={GOOD}", mock.base_url("gemini"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = auth("elevenlabs", c.get(format!("{}/models", mock.base_url("elevenlabs"))), GOOD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_of(r).await;
    assert!(v[0]["model_id"].is_string() && v[0]["can_do_text_to_speech"] == true);
    for path in ["user", "voices"] {
        let url = format!("{}/{path}", mock.base_url("elevenlabs"));
        let r = auth("elevenlabs", c.get(url), GOOD).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let v = json_of(r).await;
        if path == "user" {
            assert_eq!(v["subscription"]["status"], "active");
            assert_eq!(v["xi_api_key"], shorten_key(GOOD));
        } else {
            assert!(v["voices"][0]["voice_id"].is_string());
        }
    }
}

#[tokio::test]
async fn bad_or_missing_key_gets_the_providers_401() {
    let mock = start(&[GOOD]).await;
    let c = client();
    for kind in OPENAI_LIKE {
        let url = format!("{}/models", mock.base_url(kind));
        let r = auth(kind, c.get(&url), BAD).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let v = json_of(r).await;
        assert_eq!(
            v["error"]["message"],
            format!(
                "Incorrect API key provided: {BAD_SHORT}. You can find your API key at \
                 https://platform.openai.com/account/api-keys."
            )
        );
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert!(v["error"].get("param").is_some());
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(json_of(r).await["error"]["message"].as_str().unwrap().contains("didn't provide an API key"));
    }

    let r =
        auth("anthropic", c.get(format!("{}/models", mock.base_url("anthropic"))), BAD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v = json_of(r).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("invalid x-api-key") && message.contains(BAD_SHORT), "{message}");

    let r = auth("gemini", c.get(format!("{}/models", mock.base_url("gemini"))), BAD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v = json_of(r).await;
    assert_eq!(v["error"]["code"], 401);
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("API key not valid. Please pass a valid API key.") && message.contains(BAD_SHORT)
    );
    let r = c.get(format!("{}/models?key={BAD}", mock.base_url("gemini"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r =
        auth("elevenlabs", c.get(format!("{}/user", mock.base_url("elevenlabs"))), BAD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v = json_of(r).await;
    assert_eq!(v["detail"]["status"], "invalid_api_key");
    assert!(v["detail"]["message"].as_str().unwrap().contains(BAD_SHORT));
    let r = c.get(format!("{}/user", mock.base_url("elevenlabs"))).send().await.unwrap();
    assert_eq!(json_of(r).await["detail"]["status"], "needs_authorization");

    // The full key is never echoed.
    for kind in ["openai", "anthropic", "gemini", "elevenlabs"] {
        let r = auth(kind, c.get(format!("{}/models", mock.base_url(kind))), BAD).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{kind}");
        let text = r.text().await.unwrap();
        assert!(text.contains(BAD_SHORT) && !text.contains(BAD), "{kind}: {text}");
    }
}

#[tokio::test]
async fn anthropic_requires_its_version_header() {
    let mock = start(&[]).await;
    let r = client().get(format!("{}/models", mock.base_url("anthropic"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v = json_of(r).await;
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("anthropic-version"));
}

#[tokio::test]
async fn openai_chat_plain() {
    let mock = start(&[GOOD]).await;
    let url = format!("{}/chat/completions", mock.base_url("deepseek"));
    let r = auth("openai", client().post(url), GOOD)
        .json(&chat_body("deepseek-chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_of(r).await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "deepseek-chat");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "Mock reply to: hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["total_tokens"], 10);

    // max_tokens cuts the reply.
    let mut body = chat_body("gpt-4o-mini", false);
    body["max_tokens"] = json!(2);
    let r = client().post(format!("{}/chat/completions", mock.base_url("openai"))).bearer_auth(GOOD);
    let v = json_of(r.json(&body).send().await.unwrap()).await;
    assert_eq!(v["choices"][0]["message"]["content"], "Mock reply");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn openai_chat_stream_with_usage() {
    let mock = start(&[GOOD]).await;
    let url = format!("{}/chat/completions", mock.base_url("openai"));
    let r =
        auth("openai", client().post(url), GOOD).json(&chat_body("gpt-4o-mini", true)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let (text, complete) = read_all(r).await;
    assert!(complete);
    let events = sse_events(&text);
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0).and_then(|ch| ch["delta"]["content"].as_str()))
        .collect();
    assert_eq!(content, "Mock reply to: hello there");
    // One chunk per word.
    let word_chunks = chunks
        .iter()
        .filter(|c| {
            c["choices"]
                .get(0)
                .is_some_and(|ch| ch["delta"]["content"].as_str().is_some_and(|s| !s.is_empty()))
        })
        .count();
    assert_eq!(word_chunks, 5);
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 5);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 5);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["usage"].is_null()));
}

#[tokio::test]
async fn anthropic_messages_plain_and_stream() {
    let mock = start(&[GOOD]).await;
    let url = format!("{}/messages", mock.base_url("anthropic"));
    let r = auth("anthropic", client().post(&url), GOOD)
        .json(&anthropic_body("claude-3-5-haiku-20241022", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_of(r).await;
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Mock reply to: hello there");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["input_tokens"], 5);
    assert_eq!(v["usage"]["output_tokens"], 5);

    let r = auth("anthropic", client().post(&url), GOOD)
        .json(&anthropic_body("claude-3-5-haiku-20241022", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (text, complete) = read_all(r).await;
    assert!(complete);
    let events = sse_events(&text);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", 5));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    let data: Vec<Value> = events.iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    for (name, d) in names.iter().zip(&data) {
        assert_eq!(d["type"], *name);
    }
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], 5);
    let text: String = data[3..8].iter().map(|d| d["delta"]["text"].as_str().unwrap()).collect();
    assert_eq!(text, "Mock reply to: hello there");
    assert_eq!(data[3]["delta"]["type"], "text_delta");
    assert_eq!(data[9]["delta"]["stop_reason"], "end_turn");
    assert_eq!(data[9]["usage"]["output_tokens"], 5);

    // max_tokens is required, as in the real API.
    let mut body = anthropic_body("claude-3-5-haiku-20241022", false);
    body.as_object_mut().unwrap().remove("max_tokens");
    let r = auth("anthropic", client().post(&url), GOOD).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r).await["error"]["message"], "max_tokens: Field required");
}

#[tokio::test]
async fn gemini_generate_sse_and_json_array() {
    let mock = start(&[GOOD]).await;
    let c = client();
    let base = mock.base_url("gemini");

    let r = auth("gemini", c.post(format!("{base}/models/gemini-2.0-flash:generateContent")), GOOD)
        .json(&gemini_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = json_of(r).await;
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "Mock reply to: hello there");
    assert_eq!(v["candidates"][0]["content"]["role"], "model");
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 2);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 5);

    let r =
        auth("gemini", c.post(format!("{base}/models/gemini-2.0-flash:streamGenerateContent?alt=sse")), GOOD)
            .json(&gemini_body())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let (text, complete) = read_all(r).await;
    assert!(complete);
    let chunks: Vec<Value> =
        sse_events(&text).iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks.len(), 5);
    let joined: String =
        chunks.iter().map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(joined, "Mock reply to: hello there");
    assert_eq!(chunks[4]["candidates"][0]["finishReason"], "STOP");
    assert!(chunks[..4].iter().all(|c| c["candidates"][0].get("finishReason").is_none()));
    assert_eq!(chunks[4]["usageMetadata"]["candidatesTokenCount"], 5);

    let r = auth("gemini", c.post(format!("{base}/models/gemini-2.0-flash:streamGenerateContent")), GOOD)
        .json(&gemini_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let (text, complete) = read_all(r).await;
    assert!(complete);
    let array: Value = serde_json::from_str(&text).unwrap();
    let array = array.as_array().unwrap();
    assert_eq!(array.len(), 5);
    assert_eq!(array[0]["candidates"][0]["content"]["parts"][0]["text"], "Mock");
    assert_eq!(array[4]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn embeddings_are_deterministic_and_word_similar() {
    let mock = start(&[]).await;
    let c = client();
    let url = format!("{}/embeddings", mock.base_url("openai"));
    let texts = ["the cat sat on the mat", "The cat sat on the rug!", "quantum chromodynamics lattice gauge"];
    let body = json!({ "model": "text-embedding-3-small", "input": texts });
    let v = json_of(c.post(&url).json(&body).send().await.unwrap()).await;
    assert_eq!(v["object"], "list");
    assert_eq!(v["usage"]["prompt_tokens"], 6 + 6 + 4);
    let vectors: Vec<Vec<f64>> =
        v["data"].as_array().unwrap().iter().map(|d| vector(&d["embedding"])).collect();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|v| v.len() == 64));
    assert!((cosine(&vectors[0], &vectors[0]) - 1.0).abs() < 1e-5);
    let near = cosine(&vectors[0], &vectors[1]);
    let far = cosine(&vectors[0], &vectors[2]);
    assert!(near > far + 0.3, "near {near} far {far}");
    assert_eq!(v["data"][1]["index"], 1);

    // Same text, same vector; dimensions honoured; a single string works.
    let again = json_of(
        c.post(&url)
            .json(&json!({ "model": "m", "input": texts[0], "dimensions": 16 }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again["data"][0]["embedding"].as_array().unwrap().len(), 16);
    let again64 =
        json_of(c.post(&url).json(&json!({ "model": "m", "input": texts[0] })).send().await.unwrap()).await;
    assert_eq!(vector(&again64["data"][0]["embedding"]), vectors[0]);

    // Gemini embedContent uses the same hashing.
    let r = c
        .post(format!("{}/models/text-embedding-004:embedContent", mock.base_url("gemini")))
        .json(&json!({ "content": { "parts": [{ "text": texts[0] }] } }))
        .send()
        .await
        .unwrap();
    let g = json_of(r).await;
    assert_eq!(vector(&g["embedding"]["values"]), vectors[0]);
}

#[tokio::test]
async fn audio_endpoints_return_mp3_bytes() {
    let mock = start(&[GOOD]).await;
    let c = client();
    let url = format!("{}/text-to-speech/21m00Tcm4TlvDq8ikWAM", mock.base_url("elevenlabs"));
    let body = json!({ "text": "Hello from the mock upstream", "model_id": "eleven_multilingual_v2" });
    let r = auth("elevenlabs", c.post(&url), GOOD).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "audio/mpeg");
    let whole = r.bytes().await.unwrap();
    assert!(whole.starts_with(b"ID3"));
    assert!(whole.len() > 400);

    let r = auth("elevenlabs", c.post(format!("{url}/stream")), GOOD).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.next().await {
        streamed.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(streamed, whole.to_vec());

    let speech = |input: &str| {
        auth("openai", c.post(format!("{}/audio/speech", mock.base_url("openai"))), GOOD)
            .json(&json!({ "model": "tts-1", "input": input, "voice": "alloy" }))
            .send()
    };
    let short = speech("hi").await.unwrap();
    assert_eq!(short.headers()["content-type"], "audio/mpeg");
    let short = short.bytes().await.unwrap();
    let long =
        speech("a much longer input that makes much longer audio").await.unwrap().bytes().await.unwrap();
    assert!(short.starts_with(b"ID3") && long.starts_with(b"ID3"));
    assert!(long.len() > short.len());
    assert_eq!(speech("hi").await.unwrap().bytes().await.unwrap(), short);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let mock = start(&[GOOD]).await;
    let started = Instant::now();
    let r = client()
        .get(format!("{}/models", mock.base_url("openai")))
        .bearer_auth(BAD)
        .header("x-mock-behavior", "latency=150")
        .send()
        .await
        .unwrap();
    // Latency applies before the key check.
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn fail_answers_with_the_providers_error() {
    let mock = start(&[GOOD]).await;
    let c = client();
    // From the model name.
    let r = c
        .post(format!("{}/chat/completions", mock.base_url("openai")))
        .bearer_auth(GOOD)
        .json(&chat_body("gpt-4o@fail=503", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v = json_of(r).await;
    assert_eq!(v["error"]["type"], "server_error");
    assert!(v["error"]["message"].is_string() && v["error"].get("code").is_some());

    // A bad key still gets 401.
    let r = c
        .post(format!("{}/chat/completions", mock.base_url("openai")))
        .bearer_auth(BAD)
        .json(&chat_body("gpt-4o@fail=503", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = auth("anthropic", c.post(format!("{}/messages", mock.base_url("anthropic"))), GOOD)
        .header("x-mock-behavior", "fail=503")
        .json(&anthropic_body("claude-3-5-haiku-20241022", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v = json_of(r).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");

    // Gemini: the model (with its spec) is in the path.
    let r = auth(
        "gemini",
        c.post(format!("{}/models/gemini-2.0-flash@fail=503:generateContent", mock.base_url("gemini"))),
        GOOD,
    )
    .json(&gemini_body())
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v = json_of(r).await;
    assert_eq!(v["error"]["code"], 503);
    assert_eq!(v["error"]["status"], "UNAVAILABLE");

    let r = auth("elevenlabs", c.post(format!("{}/text-to-speech/v1", mock.base_url("elevenlabs"))), GOOD)
        .json(&json!({ "text": "hi", "model_id": "eleven_flash_v2_5@fail=429" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    let v = json_of(r).await;
    assert!(v["detail"]["status"].is_string() && v["detail"]["message"].is_string());
}

#[tokio::test]
async fn cut_drops_the_stream_without_terminator() {
    let mock = start(&[]).await;
    let c = client();
    let r = c
        .post(format!("{}/chat/completions", mock.base_url("openai")))
        .json(&chat_body("gpt-4o-mini@cut=2", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (text, complete) = read_all(r).await;
    assert!(!complete, "the connection is dropped: {text}");
    assert!(!text.contains("[DONE]"));
    let content: Vec<String> = sse_events(&text)
        .iter()
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(content, vec!["Mock", " reply"]);

    let r = c
        .post(format!("{}/messages", mock.base_url("anthropic")))
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic_body("claude-3-5-haiku@cut=2", true))
        .send()
        .await
        .unwrap();
    let (text, complete) = read_all(r).await;
    assert!(!complete);
    let names: Vec<String> = sse_events(&text).into_iter().filter_map(|(e, _)| e).collect();
    assert_eq!(names.iter().filter(|n| *n == "content_block_delta").count(), 2);
    assert!(!names.iter().any(|n| n == "message_stop"));
}

#[tokio::test]
async fn stall_never_answers_or_stops_streaming() {
    let mock = start(&[GOOD]).await;
    let c = client();
    // Plain: no answer at all, whatever the key.
    let r = c
        .get(format!("{}/models", mock.base_url("openai")))
        .bearer_auth(BAD)
        .header("x-mock-behavior", "stall")
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.expect_err("times out").is_timeout());

    // Stream: headers and the first chunk, then silence.
    let r = c
        .post(format!("{}/chat/completions", mock.base_url("openai")))
        .bearer_auth(GOOD)
        .json(&chat_body("gpt-4o-mini@stall", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut text = String::new();
    while !text.contains("\"Mock\"") {
        let chunk = tokio::time::timeout(Duration::from_millis(1000), stream.next()).await;
        text.push_str(&String::from_utf8_lossy(&chunk.expect("first chunk arrives").unwrap().unwrap()));
    }
    let next = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(next.is_err(), "nothing after the first chunk");
    drop(stream);
    // Shutdown ends stalled requests instead of waiting on them.
    let started = Instant::now();
    mock.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn malformed_bodies_and_events() {
    let mock = start(&[]).await;
    let c = client();
    let r = c
        .get(format!("{}/models", mock.base_url("gemini")))
        .header("x-mock-behavior", "malformed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());

    let r = c
        .post(format!("{}/chat/completions", mock.base_url("openai")))
        .json(&chat_body("gpt-4o-mini@malformed", true))
        .send()
        .await
        .unwrap();
    let (text, _) = read_all(r).await;
    let events = sse_events(&text);
    let bad: Vec<_> =
        events.iter().filter(|(_, d)| *d != "[DONE]" && serde_json::from_str::<Value>(d).is_err()).collect();
    assert_eq!(bad.len(), 1);
    assert!(text.starts_with("data: "));
}

#[tokio::test]
async fn anthropic_error_event_after_first_delta() {
    let mock = start(&[]).await;
    let r = client()
        .post(format!("{}/messages", mock.base_url("anthropic")))
        .header("anthropic-version", "2023-06-01")
        .header("x-mock-behavior", "error_event")
        .json(&anthropic_body("claude-3-5-haiku-20241022", true))
        .send()
        .await
        .unwrap();
    let (text, _) = read_all(r).await;
    let events = sse_events(&text);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_deref().unwrap()).collect();
    assert_eq!(names, vec!["message_start", "content_block_start", "ping", "content_block_delta", "error"]);
    let error: Value = serde_json::from_str(&events[4].1).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn path_prefix_specs() {
    let mock = start(&[GOOD]).await;
    let c = client();
    let base = mock.base_url_with("openai", "fail=503");
    assert!(base.ends_with("/_b/fail=503/openai/v1"), "{base}");
    let r = c.get(format!("{base}/models")).bearer_auth(GOOD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(r).await["error"]["type"], "server_error");

    let base = mock.base_url_with("gemini", "stall");
    assert!(base.ends_with("/gemini/v1beta"));
    let r = c
        .get(format!("{base}/models"))
        .header("x-goog-api-key", GOOD)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.expect_err("stalls").is_timeout());

    let base = mock.base_url_with("elevenlabs", "latency=50,fail=429");
    let started = Instant::now();
    let r = c.get(format!("{base}/voices")).header("xi-api-key", GOOD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(started.elapsed() >= Duration::from_millis(50));

    // A bad spec is a provider-shaped 400.
    let base = mock.base_url_with("anthropic", "explode");
    let r = auth("anthropic", c.get(format!("{base}/models")), GOOD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v = json_of(r).await;
    assert_eq!(v["type"], "error");
    assert!(v["error"]["message"].as_str().unwrap().contains("explode"));
}

#[tokio::test]
async fn empty_key_list_accepts_requests_without_auth() {
    let mock = start(&[]).await;
    let c = client();
    for kind in ["openai", "gemini", "elevenlabs", "moonshot"] {
        let r = c.get(format!("{}/models", mock.base_url(kind))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{kind}");
    }
    let r = c
        .get(format!("{}/models", mock.base_url("anthropic")))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Any key is fine too; keys can be required later.
    let r = c.get(format!("{}/models", mock.base_url("openai"))).bearer_auth(BAD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    mock.set_keys(vec![GOOD.into()]);
    let r = c.get(format!("{}/models", mock.base_url("openai"))).bearer_auth(BAD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn requests_are_recorded() {
    let mock = start(&[GOOD]).await;
    let c = client();
    c.post(format!("{}/chat/completions", mock.base_url("grok")))
        .bearer_auth(GOOD)
        .json(&chat_body("grok-3", false))
        .send()
        .await
        .unwrap();
    auth("anthropic", c.get(format!("{}/models", mock.base_url("anthropic"))), BAD).send().await.unwrap();
    c.get(format!("{}/models?key={GOOD}", mock.base_url("gemini"))).send().await.unwrap();

    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/grok/v1/chat/completions");
    assert_eq!(requests[0].header("authorization"), Some(format!("Bearer {GOOD}").as_str()));
    let body: Value = serde_json::from_str(&requests[0].body).unwrap();
    assert_eq!(body["model"], "grok-3");
    assert_eq!(requests[1].header("x-api-key"), Some(BAD));
    assert_eq!(requests[2].query.as_deref(), Some(format!("key={GOOD}").as_str()));
    mock.clear_requests();
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn unknown_paths_and_bad_json() {
    let mock = start(&[]).await;
    let c = client();
    let r = c.get(format!("{}/nope", mock.base_url("openai"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(json_of(r).await["error"]["message"].as_str().unwrap().contains("Invalid URL"));
    let r = c.get(format!("{}/nope", mock.base_url("gemini"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(r).await["error"]["status"], "NOT_FOUND");
    let r = c.get(format!("http://{}/somewhere-else", mock.addr())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let bad =
        |url: String| c.post(url).header("content-type", "application/json").body("{\"model\": ").send();
    let r = bad(format!("{}/chat/completions", mock.base_url("openai"))).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v = json_of(r).await;
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("parse the JSON body"));
    let r = c
        .post(format!("{}/messages", mock.base_url("anthropic")))
        .header("anthropic-version", "2023-06-01")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r).await["error"]["type"], "invalid_request_error");
    let r =
        bad(format!("{}/models/gemini-2.0-flash:generateContent", mock.base_url("gemini"))).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r).await["error"]["status"], "INVALID_ARGUMENT");
    let r = bad(format!("{}/text-to-speech/voice", mock.base_url("elevenlabs"))).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(json_of(r).await["detail"]["message"].is_string());
}

#[tokio::test]
async fn binary_prints_its_address_and_serves() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_goblin-mock-upstream"))
        .args(["--listen", "127.0.0.1:0", "--keys", &format!("{GOOD},other")])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), tokio::io::BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("ready line in time")
        .unwrap();
    let url = line.trim().strip_prefix("mock-upstream listening on ").expect("ready line").to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = client().get(format!("{url}/openai/v1/models")).bearer_auth(GOOD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client().get(format!("{url}/openai/v1/models")).bearer_auth(BAD).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn behaviours_on_gemini_and_elevenlabs_streams() {
    let mock = start(&[]).await;
    let c = client();
    let base = mock.base_url("gemini");
    // cut=2 on SSE: two chunks, no finishReason, dropped connection.
    let r = c
        .post(format!("{base}/models/gemini-2.5-flash@cut=2:streamGenerateContent?alt=sse"))
        .json(&gemini_body())
        .send()
        .await
        .unwrap();
    let (text, complete) = read_all(r).await;
    assert!(!complete);
    let chunks: Vec<Value> =
        sse_events(&text).iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks.len(), 2);
    assert!(chunks.iter().all(|c| c["candidates"][0].get("finishReason").is_none()));
    // cut on the JSON array: no closing bracket.
    let r = c
        .post(format!("{base}/models/gemini-2.5-flash:streamGenerateContent"))
        .header("x-mock-behavior", "cut=1")
        .json(&gemini_body())
        .send()
        .await
        .unwrap();
    let (text, complete) = read_all(r).await;
    assert!(!complete && text.starts_with('[') && !text.ends_with(']'));
    // error_event on SSE: one chunk then the API's error object.
    let r = c
        .post(format!("{base}/models/gemini-2.5-flash@error_event:streamGenerateContent?alt=sse"))
        .json(&gemini_body())
        .send()
        .await
        .unwrap();
    let (text, _) = read_all(r).await;
    let events: Vec<Value> =
        sse_events(&text).iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["error"]["status"], "UNAVAILABLE");

    // ElevenLabs stream cut after two audio chunks.
    let body = json!({ "text": "a text long enough for several audio frames", "model_id": "eleven_flash_v2_5@cut=2" });
    let r = c
        .post(format!("{}/text-to-speech/voice/stream", mock.base_url("elevenlabs")))
        .json(&body)
        .send()
        .await;
    let r = r.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut bytes = Vec::new();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(_) => failed = true,
        }
    }
    assert!(failed);
    assert_eq!(bytes.len(), 10 + 2 * 417);

    // Anthropic stall: the stream starts, then goes quiet.
    let r = c
        .post(format!("{}/messages", mock.base_url("anthropic")))
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic_body("claude-3-5-haiku@stall", true))
        .send()
        .await
        .unwrap();
    let mut stream = r.bytes_stream();
    let mut text = String::new();
    while !text.contains("content_block_delta") {
        let chunk = tokio::time::timeout(Duration::from_millis(1000), stream.next()).await;
        text.push_str(&String::from_utf8_lossy(&chunk.expect("first delta arrives").unwrap().unwrap()));
    }
    assert!(tokio::time::timeout(Duration::from_millis(300), stream.next()).await.is_err());
}

#[tokio::test]
async fn more_endpoint_shapes() {
    let mock = start(&[]).await;
    let c = client();
    // base64 embeddings decode to the float vector's bytes length.
    let v = json_of(
        c.post(format!("{}/embeddings", mock.base_url("siliconflow")))
            .json(&json!({ "model": "BAAI/bge-m3", "input": "hello", "encoding_format": "base64", "dimensions": 8 }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["data"][0]["embedding"].as_str().unwrap().len(), 44); // 32 bytes -> 44 base64 chars
    // Model retrieval, including an unknown model.
    let r = c.get(format!("{}/models/gpt-4o-mini", mock.base_url("openai"))).send().await.unwrap();
    assert_eq!(json_of(r).await["id"], "gpt-4o-mini");
    let r = c.get(format!("{}/models/nope", mock.base_url("openai"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(r).await["error"]["code"], "model_not_found");
    // Token counting.
    let r = c
        .post(format!("{}/messages/count_tokens", mock.base_url("anthropic")))
        .header("anthropic-version", "2023-06-01")
        .json(&anthropic_body("claude-3-5-haiku-20241022", false))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await["input_tokens"], 5);
    let r = c
        .post(format!("{}/models/gemini-2.0-flash:countTokens", mock.base_url("gemini")))
        .json(&gemini_body())
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await["totalTokens"], 2);
    let r = c
        .post(format!("{}/models/text-embedding-004:batchEmbedContents", mock.base_url("gemini")))
        .json(&json!({ "requests": [
            { "model": "models/text-embedding-004", "content": { "parts": [{ "text": "a b" }] } },
            { "model": "models/text-embedding-004", "content": { "parts": [{ "text": "c" }] }, "outputDimensionality": 8 }
        ]}))
        .send()
        .await
        .unwrap();
    let v = json_of(r).await;
    assert_eq!(v["embeddings"][0]["values"].as_array().unwrap().len(), 64);
    assert_eq!(v["embeddings"][1]["values"].as_array().unwrap().len(), 8);
    // Missing required fields get the provider's 400.
    let r = c
        .post(format!("{}/chat/completions", mock.base_url("openai")))
        .json(&json!({ "model": "gpt-4o-mini" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r).await["error"]["param"], "messages");
}
