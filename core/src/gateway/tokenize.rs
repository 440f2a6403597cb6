//! Token counts for answers whose provider sent no usage (a stream without a usage chunk, or one the
//! client cancelled), so their cost is still counted, and for cutting search documents into chunks.
//! Uses OpenAI's `o200k_base` encoding (the GPT-4o family's): exact for those models and a close
//! estimate for others. Message overhead follows OpenAI's published rule of thumb: 3 tokens per
//! message and 3 to prime the reply.
//!
//! The encoding's 200,000 tokens are kept in a compact table (about 4 MB: every token's bytes in one
//! buffer and an open-addressing index of ranks) instead of the general-purpose encoder's maps, which
//! hold each token twice in separate allocations and take about 45 MB. The table is built at the first
//! count (most providers report usage, so a server may never need it), from the encoder bundled with
//! `tiktoken-rs`, which is then dropped. Counting follows the byte-pair rule of that encoder: a piece
//! of text (split by the encoding's pattern) is one token when it is in the vocabulary; otherwise its
//! bytes are merged pairwise, lowest rank first (leftmost among equals), until no adjacent pair forms
//! a token.

use std::{cmp::Reverse, collections::BinaryHeap, sync::OnceLock};

use fancy_regex::Regex;
use serde_json::Value;

type Rank = u32;

/// Marks an empty slot of the index, and "no token" for a pair.
const NONE: Rank = Rank::MAX;

/// Pieces up to this many bytes are merged by scanning for the lowest pair (fast for the short
/// pieces of ordinary text); longer ones through a heap, so a hostile run of one letter costs
/// O(n log n) rather than O(n²).
const SCAN_LIMIT: usize = 128;

struct Vocab {
    /// Every token's bytes, rank after rank.
    bytes: Vec<u8>,
    /// Where rank `r`'s bytes start in `bytes`; `starts[r + 1]` is where they end.
    starts: Vec<u32>,
    /// Open addressing, linear probing: a power-of-two number of slots holding ranks.
    index: Vec<Rank>,
    /// The encoding's pre-tokenization pattern.
    pattern: Regex,
}

fn hash(bytes: &[u8]) -> u64 {
    // FNV-1a: tokens are short, and the table is built once from a fixed vocabulary.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Vocab {
    /// Builds the table from the bundled encoder, which is dropped before returning.
    fn load() -> Result<Self, String> {
        let pattern = Regex::new(tiktoken_rs::O200K_BASE_PAT_STR).map_err(|e| e.to_string())?;
        let (bytes, starts) = {
            let bpe = tiktoken_rs::o200k_base().map_err(|e| e.to_string())?;
            let mut bytes = Vec::with_capacity(1 << 21);
            let mut starts = Vec::with_capacity(200_001);
            // Ordinary ranks run from 0 without a gap; the first missing rank ends them (the
            // special tokens come after a gap and are never produced by counting).
            let mut rank: Rank = 0;
            while let Ok(token) = bpe.decode_bytes(&[rank]) {
                starts.push(u32::try_from(bytes.len()).map_err(|e| e.to_string())?);
                bytes.extend_from_slice(&token);
                rank += 1;
            }
            starts.push(u32::try_from(bytes.len()).map_err(|e| e.to_string())?);
            (bytes, starts)
        };
        release_freed_memory();
        let count = starts.len() - 1;
        if count < 256 {
            return Err(format!("the encoding has only {count} tokens"));
        }
        let slots = (count * 2).next_power_of_two();
        let mut vocab = Self { bytes, starts, index: vec![NONE; slots], pattern };
        for rank in 0..count {
            let rank = Rank::try_from(rank).map_err(|e| e.to_string())?;
            let mask = vocab.index.len() - 1;
            let mut slot = hash(vocab.token(rank)) as usize & mask;
            while vocab.index[slot] != NONE {
                slot = (slot + 1) & mask;
            }
            vocab.index[slot] = rank;
        }
        vocab.bytes.shrink_to_fit();
        Ok(vocab)
    }

    fn token(&self, rank: Rank) -> &[u8] {
        let r = rank as usize;
        &self.bytes[self.starts[r] as usize..self.starts[r + 1] as usize]
    }

    /// The rank of `bytes`, or [`NONE`] when they are not one token.
    fn rank(&self, bytes: &[u8]) -> Rank {
        let mask = self.index.len() - 1;
        let mut slot = hash(bytes) as usize & mask;
        loop {
            let rank = self.index[slot];
            if rank == NONE || self.token(rank) == bytes {
                return rank;
            }
            slot = (slot + 1) & mask;
        }
    }

    fn count(&self, text: &str) -> u64 {
        let mut total = 0;
        for piece in self.pattern.find_iter(text) {
            let piece = match piece {
                Ok(m) => m.as_str().as_bytes(),
                // The pattern hit its backtracking limit: estimate rather than fail.
                Err(_) => return (text.chars().count() as u64).div_ceil(4),
            };
            total += if self.rank(piece) != NONE { 1 } else { self.merge(piece) };
        }
        total
    }

    /// The tokens of one piece after byte-pair merging.
    fn merge(&self, piece: &[u8]) -> u64 {
        match piece.len() {
            0 => 0,
            1 => 1,
            n if n <= SCAN_LIMIT => self.merge_by_scan(piece),
            _ => self.merge_by_heap(piece),
        }
    }

    /// The rank of the bytes from `start` to `end`, when `end` is within the piece.
    fn pair(&self, piece: &[u8], start: usize, end: usize) -> Rank {
        if end <= piece.len() { self.rank(&piece[start..end]) } else { NONE }
    }

    fn merge_by_scan(&self, piece: &[u8]) -> u64 {
        // parts[i] = (start of part i, rank of part i merged with part i + 1); the last is the end.
        let mut parts: Vec<(usize, Rank)> = Vec::with_capacity(piece.len() + 1);
        for i in 0..=piece.len() {
            parts.push((i, if i + 2 <= piece.len() { self.rank(&piece[i..i + 2]) } else { NONE }));
        }
        loop {
            let mut best = (NONE, 0);
            for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < best.0 {
                    best = (rank, i);
                }
            }
            if best.0 == NONE {
                break;
            }
            let i = best.1;
            parts.remove(i + 1);
            // Part i now reaches to parts[i + 1]; its pair and its left neighbour's change.
            let end_after = |parts: &[(usize, Rank)], k: usize| parts.get(k + 2).map_or(usize::MAX, |p| p.0);
            parts[i].1 = self.pair(piece, parts[i].0, end_after(&parts, i));
            if i > 0 {
                parts[i - 1].1 = self.pair(piece, parts[i - 1].0, end_after(&parts, i - 1));
            }
        }
        (parts.len() - 1) as u64
    }

    fn merge_by_heap(&self, piece: &[u8]) -> u64 {
        let n = piece.len();
        // A doubly linked list of parts, by start offset; `next[i] == n` ends it.
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut alive = vec![true; n];
        // The rank each part's pair with its successor had when it was pushed: a popped entry
        // whose rank no longer matches is stale.
        let mut pair_rank = vec![NONE; n];
        let mut heap = BinaryHeap::new();
        for i in 0..n - 1 {
            let rank = self.rank(&piece[i..i + 2]);
            pair_rank[i] = rank;
            if rank != NONE {
                heap.push(Reverse((rank, i)));
            }
        }
        let mut parts = n as u64;
        let end_of = |next: &[usize], i: usize| if next[i] >= n { n } else { next[i] };
        while let Some(Reverse((rank, i))) = heap.pop() {
            if !alive[i] || pair_rank[i] != rank {
                continue;
            }
            // Merge part i with its successor.
            let j = next[i];
            alive[j] = false;
            next[i] = next[j];
            if next[j] < n {
                prev[next[j]] = i;
            }
            parts -= 1;
            // The new pair of i with its new successor.
            pair_rank[i] = if next[i] < n { self.rank(&piece[i..end_of(&next, next[i])]) } else { NONE };
            if pair_rank[i] != NONE {
                heap.push(Reverse((pair_rank[i], i)));
            }
            // The pair of i's predecessor with i, which has grown.
            let p = prev[i];
            if p < n {
                pair_rank[p] = self.rank(&piece[p..end_of(&next, i)]);
                if pair_rank[p] != NONE {
                    heap.push(Reverse((pair_rank[p], p)));
                }
            }
        }
        parts
    }
}

/// Hands the freed memory of a dropped structure back to the system: glibc keeps freed small blocks
/// in its arenas otherwise, so the encoder's 45 MB would stay in the process's resident size.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of the allocator's arenas to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn vocab() -> Option<&'static Vocab> {
    static VOCAB: OnceLock<Option<Vocab>> = OnceLock::new();
    VOCAB
        .get_or_init(|| match Vocab::load() {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::error!(error = %e, "the tokenizer could not be loaded; counting about four characters a token");
                None
            }
        })
        .as_ref()
}

/// The tokens in `text`.
pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match vocab() {
        Some(v) => v.count(text),
        None => (text.chars().count() as u64).div_ceil(4),
    }
}

/// The prompt tokens of a chat request's `messages`: each message's text (string content, or the
/// text parts of array content) plus the per-message overhead.
pub fn count_messages(body: &Value) -> u64 {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else { return 0 };
    let mut total = 3;
    for m in messages {
        total += 3;
        if let Some(role) = m.get("role").and_then(Value::as_str) {
            total += count(role);
        }
        match m.get("content") {
            Some(Value::String(s)) => total += count(s),
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        total += count(t);
                    }
                }
            }
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn counts_with_the_o200k_encoding() {
        assert_eq!(count(""), 0);
        // Known o200k_base counts: "Hello world" is ["Hello", " world"].
        assert_eq!(count("Hello world"), 2);
        // Each repeated " hello" is one token: far fewer tokens than the four-characters estimate.
        let n = count(&"hello ".repeat(1000));
        assert!((1000..=1001).contains(&n), "{n}");
        let body = json!({ "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": [{ "type": "text", "text": "Hello world" }] }
        ]});
        assert_eq!(
            count_messages(&body),
            3 + (3 + count("system") + count("Be brief.")) + (3 + count("user") + 2)
        );
    }

    /// Texts of many kinds: prose, code, numbers, whitespace runs, other scripts, emoji, bytes that
    /// only merge in long pieces, and pieces long enough to take the heap path.
    fn samples() -> Vec<String> {
        let mut s: Vec<String> = [
            "The quick brown fox jumps over the lazy dog.",
            "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n\n\n",
            "3.14159265358979 and 1,234,567 items at $89.99 (20% off)",
            "Ünïcödé — “quotes” and ‘apostrophes’ don't, can't, WON'T",
            "日本語のテキストと中文文本，한국어 텍스트도 있습니다。",
            "emoji 👩‍👩‍👧‍👦🏳️‍🌈🚀 mixed with words",
            "   leading and trailing spaces   \t\t tabs\r\n",
            "https://example.com/path?query=1&other=two#fragment",
            "Supercalifragilisticexpialidocious antidisestablishmentarianism",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
        s.push("a".repeat(1000));
        s.push("ab".repeat(700));
        s.push("Lorem".repeat(300));
        s.push(" ".repeat(517));
        s.push("x1y2z3".repeat(200));
        s.push("🚀".repeat(150));
        s.push("ÄäÖöÜü".repeat(120));
        // Pseudo-random letters in long runs: pieces of a few hundred bytes with uneven merges.
        let mut x: u32 = 12345;
        let mut long = String::new();
        for i in 0..4000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            long.push(char::from(b'a' + ((x >> 16) % 26) as u8));
            if i % 333 == 332 {
                long.push(' ');
            }
        }
        s.push(long);
        s
    }

    #[test]
    fn counts_match_the_reference_encoder_on_every_path() {
        let reference = tiktoken_rs::o200k_base().unwrap();
        for text in samples() {
            assert_eq!(
                count(&text),
                reference.encode_ordinary(&text).len() as u64,
                "{:?}",
                text.chars().take(60).collect::<String>()
            );
        }
    }

    #[test]
    fn both_merge_strategies_agree() {
        let v = vocab().expect("the encoding loads");
        for text in samples() {
            for piece in v.pattern.find_iter(&text) {
                let piece = piece.unwrap().as_str().as_bytes();
                if piece.len() >= 2 {
                    assert_eq!(v.merge_by_scan(piece), v.merge_by_heap(piece), "{piece:?}");
                }
            }
        }
    }
}
