//! Semantic search: embeddings of chunks and queries, stored compactly and scored in process, and
//! reciprocal rank fusion with the full-text ranking.
//!
//! ```text
//! ingest / re-index ─▶ chunk texts ─▶ Embedder (the gateway's embeddings, batched)
//!                   ─▶ unit vectors as little-endian f32 bytes in search_chunk_vectors
//! query ─▶ one embedding ─▶ dot product with each stored vector of the collection's model
//!       ─▶ top N by cosine ──┐
//! full-text top N ───────────┴▶ reciprocal rank fusion: Σ 1 / (60 + rank)
//! ```
//!
//! Vectors are normalised before they are stored, so cosine similarity is a dot product. Scoring
//! reads every vector of the collection (a linear scan, streamed row by row): fine for tens of
//! thousands of chunks; pgvector's indexes would be the next step where that extension exists.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::gateway::{Caller, Gateway};

/// The constant of reciprocal rank fusion: a list's item at rank r (from 1) adds 1 / (60 + r).
pub const RRF_K: f64 = 60.0;
/// At most this many texts go into one embeddings request.
pub const MAX_BATCH_INPUTS: usize = 64;
/// And at most this many tokens (providers cap a request's total; OpenAI's is 300,000).
pub const MAX_BATCH_TOKENS: usize = 100_000;
/// The widest vector accepted from a provider.
pub const MAX_DIMS: usize = 16_384;

/// Why texts could not be embedded; the message is safe to show (the gateway's errors are).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EmbedError(pub String);

/// Something that turns texts into vectors: the gateway in the server, a fake in unit tests.
#[async_trait]
pub trait Embedder: Send + Sync + std::fmt::Debug {
    /// One vector per input, in order, all of one width.
    ///
    /// # Errors
    /// [`EmbedError`] naming what failed.
    async fn embed(&self, model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Embeddings through the gateway, in process: the request is routed, budgeted, logged and failed
/// over like a `POST /v1/embeddings` from `caller`.
#[derive(Clone)]
pub struct GatewayEmbedder {
    gateway: Arc<Gateway>,
    caller: Caller,
}

impl GatewayEmbedder {
    pub fn new(gateway: Arc<Gateway>, caller: Caller) -> Self {
        Self { gateway, caller }
    }
}

impl std::fmt::Debug for GatewayEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayEmbedder").field("caller", &self.caller).finish_non_exhaustive()
    }
}

#[async_trait]
impl Embedder for GatewayEmbedder {
    async fn embed(&self, model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({ "model": model, "input": inputs });
        let answer = self.gateway.embeddings(&self.caller, body).await.map_err(|e| {
            EmbedError(format!("the embedding model '{}' failed: {}", cut(model, 80), e.message))
        })?;
        vectors_of(&answer, inputs.len())
            .map_err(|m| EmbedError(format!("the embedding model '{}' {m}", cut(model, 80))))
    }
}

fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The unit vectors of an OpenAI-shaped embeddings answer (`data[].{index, embedding}`), by index.
///
/// # Errors
/// What is wrong with the answer, to follow "the embedding model 'x' ".
pub fn vectors_of(answer: &Value, expected: usize) -> Result<Vec<Vec<f32>>, String> {
    let data = answer.get("data").and_then(Value::as_array).ok_or("answered without data")?;
    if data.len() != expected {
        return Err(format!("answered {} embeddings for {expected} texts", data.len()));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; expected];
    let mut dims = None;
    for (position, item) in data.iter().enumerate() {
        let index = match item.get("index") {
            None => position,
            Some(i) => i
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < expected)
                .ok_or("answered an embedding with a bad index")?,
        };
        let values = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or("answered an embedding that is not a list of numbers")?;
        if values.is_empty() || values.len() > MAX_DIMS {
            return Err(format!("answered an embedding of {} numbers", values.len()));
        }
        if *dims.get_or_insert(values.len()) != values.len() {
            return Err("answered embeddings of different widths".into());
        }
        let mut v = Vec::with_capacity(values.len());
        for x in values {
            let x = x.as_f64().ok_or("answered an embedding that is not a list of numbers")? as f32;
            if !x.is_finite() {
                return Err("answered an embedding with a value that is not finite".into());
            }
            v.push(x);
        }
        normalise(&mut v);
        if out[index].replace(v).is_some() {
            return Err("answered two embeddings for one text".into());
        }
    }
    out.into_iter().map(|v| v.ok_or_else(|| "left a text without an embedding".to_string())).collect()
}

/// Scales `v` to unit length (a zero vector stays zero: it is similar to nothing).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x = (f64::from(*x) / norm) as f32);
    }
}

/// Embeds texts (with their token counts) in batches of at most [`MAX_BATCH_INPUTS`] texts and
/// [`MAX_BATCH_TOKENS`] tokens; one vector per text, in order.
///
/// # Errors
/// The first batch's failure; vectors of batches before it are dropped.
pub async fn embed_batched(
    embedder: &dyn Embedder,
    model: &str,
    texts: &[(String, usize)],
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut out = Vec::with_capacity(texts.len());
    let mut start = 0;
    while start < texts.len() {
        let mut end = start;
        let mut tokens = 0;
        while end < texts.len()
            && end - start < MAX_BATCH_INPUTS
            && (end == start || tokens + texts[end].1 <= MAX_BATCH_TOKENS)
        {
            tokens += texts[end].1;
            end += 1;
        }
        let inputs: Vec<String> = texts[start..end].iter().map(|(t, _)| t.clone()).collect();
        let vectors = embedder.embed(model, &inputs).await?;
        if vectors.len() != inputs.len() {
            return Err(EmbedError(format!(
                "the embedding model '{}' answered {} embeddings for {} texts",
                cut(model, 80),
                vectors.len(),
                inputs.len()
            )));
        }
        if let (Some(first), Some(next)) = (out.first().map(Vec::len), vectors.first().map(Vec::len))
            && first != next
        {
            return Err(EmbedError(format!(
                "the embedding model '{}' answered embeddings of different widths",
                cut(model, 80)
            )));
        }
        out.extend(vectors);
        start = end;
    }
    Ok(out)
}

/// A vector as stored: little-endian `f32`s.
pub fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector read back, or `None` when the bytes are not whole `f32`s.
pub fn decode(bytes: &[u8]) -> Option<Vec<f32>> {
    bytes
        .len()
        .is_multiple_of(4)
        .then(|| bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// The dot product of a stored vector with `query` (the cosine similarity, both being unit
/// vectors), read straight from the bytes; `None` when the widths differ.
pub fn dot(stored: &[u8], query: &[f32]) -> Option<f32> {
    if stored.len() != query.len() * 4 {
        return None;
    }
    let mut sum = 0f32;
    for (b, q) in stored.chunks_exact(4).zip(query) {
        sum += f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * q;
    }
    Some(sum)
}

/// The `n` best of `(id, score)` pairs, best first (ties: smaller id first).
pub fn top(mut scored: Vec<(i64, f64)>, n: usize) -> Vec<(i64, f64)> {
    let better = |a: &(i64, f64), b: &(i64, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if scored.len() > n && n > 0 {
        scored.select_nth_unstable_by(n - 1, better);
        scored.truncate(n);
    } else if n == 0 {
        scored.clear();
    }
    scored.sort_unstable_by(better);
    scored
}

/// Reciprocal rank fusion of ranked lists of ids: each id scores Σ 1 / ([`RRF_K`] + rank) over
/// the lists that hold it (rank from 1). Best first; ties go to the smaller id.
pub fn rrf(lists: &[&[i64]]) -> Vec<(i64, f64)> {
    let mut scores: HashMap<i64, f64> = HashMap::new();
    for list in lists {
        for (i, id) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (RRF_K + (i + 1) as f64);
        }
    }
    let n = scores.len();
    top(scores.into_iter().collect(), n)
}

/// A passage of `text` for a hit the full-text index did not match: the window of at most
/// `words` words holding the most query terms, with those words between [`super::fts::MARK_START`]
/// and [`super::fts::MARK_END`] (for [`super::fts::highlight`]), and `…` where text was left out.
pub fn snippet(text: &str, terms: &[String], words: usize) -> String {
    use super::fts::{MARK_END, MARK_START};
    let all: Vec<&str> = text.split_whitespace().collect();
    let matches: Vec<bool> = all
        .iter()
        .map(|w| {
            w.split(|c: char| !c.is_alphanumeric())
                .filter(|t| !t.is_empty())
                .any(|t| terms.iter().any(|term| term == &t.to_lowercase()))
        })
        .collect();
    let words = words.max(1);
    let (mut best_start, mut best, mut current) = (0, 0usize, 0usize);
    for i in 0..all.len() {
        current += usize::from(matches[i]);
        if i >= words {
            current -= usize::from(matches[i - words]);
        }
        if current > best {
            best = current;
            best_start = (i + 1).saturating_sub(words);
        }
    }
    let end = (best_start + words).min(all.len());
    let mut out = String::new();
    if best_start > 0 {
        out.push_str("… ");
    }
    for (i, w) in all[best_start..end].iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if matches[best_start + i] {
            out.push(MARK_START);
            out.push_str(w);
            out.push(MARK_END);
        } else {
            out.push_str(w);
        }
    }
    if end < all.len() {
        out.push_str(" …");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_as_little_endian_bytes() {
        let v = vec![0.5f32, -0.25, 1.0e-7, 3.0];
        let bytes = encode(&v);
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[..4], &0.5f32.to_le_bytes());
        assert_eq!(decode(&bytes).unwrap(), v);
        assert!(decode(&bytes[..15]).is_none());
    }

    #[test]
    fn cosine_is_a_dot_product_of_unit_vectors() {
        let mut a = vec![3.0f32, 4.0];
        normalise(&mut a);
        assert!((a[0] - 0.6).abs() < 1e-6 && (a[1] - 0.8).abs() < 1e-6);
        let stored = encode(&a);
        assert!((dot(&stored, &a).unwrap() - 1.0).abs() < 1e-6);
        assert!(dot(&stored, &[1.0, 0.0]).unwrap() - 0.6 < 1e-6);
        assert_eq!(dot(&stored, &[1.0, 0.0, 0.0]), None, "other widths are not compared");
        let mut zero = vec![0.0f32; 3];
        normalise(&mut zero);
        assert_eq!(zero, [0.0; 3]);
    }

    #[test]
    fn fusion_rewards_agreement() {
        // 7 is second in both lists; 1 and 9 are first in one list each and absent from the other.
        let fused = rrf(&[&[1, 7, 3], &[9, 7]]);
        assert_eq!(fused[0].0, 7);
        assert!((fused[0].1 - 2.0 / 62.0).abs() < 1e-12);
        assert_eq!(fused.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [7, 1, 9, 3]);
        assert!(rrf(&[]).is_empty());
    }

    #[test]
    fn top_keeps_the_best_in_order() {
        let scored = vec![(1, 0.1), (2, 0.9), (3, 0.5), (4, 0.9), (5, -0.2)];
        assert_eq!(top(scored.clone(), 3), [(2, 0.9), (4, 0.9), (3, 0.5)]);
        assert_eq!(top(scored.clone(), 10).len(), 5);
        assert!(top(scored, 0).is_empty());
    }

    #[test]
    fn answers_are_checked_and_ordered_by_index() {
        let answer = json!({ "data": [
            { "index": 1, "embedding": [0.0, 2.0] },
            { "index": 0, "embedding": [3.0, 4.0] },
        ] });
        let v = vectors_of(&answer, 2).unwrap();
        assert_eq!(v[1], [0.0, 1.0]);
        assert!((v[0][0] - 0.6).abs() < 1e-6);
        assert!(vectors_of(&answer, 3).unwrap_err().contains("2 embeddings for 3"));
        let ragged = json!({ "data": [{ "embedding": [1.0] }, { "embedding": [1.0, 2.0] }] });
        assert!(vectors_of(&ragged, 2).unwrap_err().contains("different widths"));
        let twice =
            json!({ "data": [{ "index": 0, "embedding": [1.0] }, { "index": 0, "embedding": [1.0] }] });
        assert!(vectors_of(&twice, 2).unwrap_err().contains("two embeddings"));
        assert!(vectors_of(&json!({ "data": [{ "embedding": "AAAA" }] }), 1).is_err());
        assert!(vectors_of(&json!({}), 1).unwrap_err().contains("without data"));
    }

    #[derive(Debug)]
    struct Counting(std::sync::Mutex<Vec<usize>>);

    #[async_trait]
    impl Embedder for Counting {
        async fn embed(&self, _model: &str, inputs: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.0.lock().unwrap().push(inputs.len());
            Ok(inputs.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
        }
    }

    #[tokio::test]
    async fn batches_respect_inputs_and_tokens() {
        let e = Counting(std::sync::Mutex::new(Vec::new()));
        let texts: Vec<(String, usize)> = (0..150).map(|i| ("x".repeat(i + 1), 10)).collect();
        let out = embed_batched(&e, "m", &texts).await.unwrap();
        assert_eq!(out.len(), 150);
        assert_eq!(out[149], [150.0, 1.0], "in order");
        assert_eq!(*e.0.lock().unwrap(), [64, 64, 22]);
        let e = Counting(std::sync::Mutex::new(Vec::new()));
        let big: Vec<(String, usize)> = (0..5).map(|_| ("y".into(), MAX_BATCH_TOKENS / 2)).collect();
        embed_batched(&e, "m", &big).await.unwrap();
        assert_eq!(*e.0.lock().unwrap(), [2, 2, 1]);
    }

    #[test]
    fn snippets_show_the_window_with_the_most_terms() {
        use crate::search::fts::highlight;
        let text = "one two three four five six seven eight lantern goblins keep watch nine ten";
        let terms = vec!["lantern".to_string(), "watch".to_string()];
        assert_eq!(
            highlight(&snippet(text, &terms, 5)),
            "… eight <mark>lantern</mark> goblins keep <mark>watch</mark> …"
        );
        assert_eq!(highlight(&snippet("a <b> c", &[], 10)), "a &lt;b&gt; c");
        assert_eq!(snippet("", &terms, 5), "");
    }
}
