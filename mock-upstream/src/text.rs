//! Deterministic text, token, embedding and audio helpers.

use bytes::Bytes;

/// Whitespace word count, the mock's token count.
pub(crate) fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

/// The assistant reply to a prompt whose last user message is `last_user`.
pub(crate) fn reply_to(last_user: &str) -> String {
    format!("Mock reply to: {last_user}")
}

/// Splits text into streaming chunks, one per word; each chunk carries the whitespace before its word,
/// so concatenating the chunks gives back the text.
pub(crate) fn word_chunks(s: &str) -> Vec<&str> {
    let mut chunks = Vec::with_capacity(8);
    let mut start = 0;
    let mut in_word = false;
    // Where the whitespace after the latest word began; a chunk ends there if another word follows.
    let mut word_end = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            if in_word {
                word_end = Some(i);
            }
            in_word = false;
        } else {
            if let Some(end) = word_end.take() {
                chunks.push(&s[start..end]);
                start = end;
            }
            in_word = true;
        }
    }
    if start < s.len() {
        chunks.push(&s[start..]);
    }
    chunks
}

/// A reply cut to at most `max_tokens` words: the chunks, the text and whether it was cut.
pub(crate) struct Reply<'a> {
    pub chunks: Vec<&'a str>,
    pub text: String,
    pub truncated: bool,
}

impl<'a> Reply<'a> {
    pub fn new(full: &'a str, max_tokens: Option<u64>) -> Reply<'a> {
        let mut chunks = word_chunks(full);
        let mut truncated = false;
        if let Some(max) = max_tokens.and_then(|m| usize::try_from(m).ok())
            && max < chunks.len()
        {
            chunks.truncate(max);
            truncated = true;
        }
        let text = if truncated { chunks.concat() } else { full.to_owned() };
        Reply { chunks, text, truncated }
    }

    /// Output tokens of the reply.
    pub fn tokens(&self) -> usize {
        word_count(&self.text)
    }
}

fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}

/// Common English words, which an embedding model weighs little: left out of [`embed`]'s bag of words
/// when a text has other words.
const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i",
    "if", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "should", "that", "the", "their",
    "there", "this", "to", "was", "we", "what", "when", "where", "which", "who", "why", "will", "with",
    "you", "your",
];

/// A crude stem: one of `ing`, `ed`, `es`, `s` taken off a word long enough to keep three letters.
fn stem(token: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s"] {
        if token.len() > suffix.len() + 2 && token.ends_with(suffix) {
            return &token[..token.len() - suffix.len()];
        }
    }
    token
}

/// Deterministic embedding: a bag of words. Lower-case alphanumeric tokens, common English words left out
/// (unless nothing else is left) and crudely stemmed, hashed into `dims` signed buckets, L2-normalised.
/// Texts sharing content words get a higher cosine similarity. A text without tokens gets a unit vector on
/// axis 0.
pub(crate) fn embed(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims.max(1)];
    let lower = text.to_lowercase();
    let all: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).collect();
    let content: Vec<&str> = all.iter().copied().filter(|t| !STOPWORDS.contains(t)).collect();
    let words = if content.is_empty() { all } else { content };
    for token in words.into_iter().map(stem) {
        let h = hash_bytes(token.as_bytes());
        let bucket = (h % v.len() as u64) as usize;
        v[bucket] += if h >> 63 == 0 { 1.0 } else { -1.0 };
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        v[0] = 1.0;
    }
    v
}

/// Bytes of one fake MPEG-1 Layer III frame (128 kbit/s, 44.1 kHz, no padding).
const MP3_FRAME_LEN: usize = 417;
/// At most this many frames per answer, whatever the input length.
const MAX_MP3_FRAMES: usize = 10_000;

/// An empty ID3v2.4 tag header, the first bytes of every audio answer.
const ID3_HEADER: [u8; 10] = [b'I', b'D', b'3', 4, 0, 0, 0, 0, 0, 0];

/// Deterministic MP3-shaped audio for `text`: an ID3 header, then one frame per 8 bytes of input
/// (at least one). Returned as chunks: the first holds the header and frame 0, each later one a frame.
pub(crate) fn mp3_chunks(text: &str) -> Vec<Bytes> {
    let frames = (1 + text.len() / 8).min(MAX_MP3_FRAMES);
    let mut seed = hash_bytes(text.as_bytes()) | 1;
    let mut chunks = Vec::with_capacity(frames);
    for i in 0..frames {
        let mut frame = Vec::with_capacity(MP3_FRAME_LEN + if i == 0 { ID3_HEADER.len() } else { 0 });
        if i == 0 {
            frame.extend_from_slice(&ID3_HEADER);
        }
        let end = frame.len() + MP3_FRAME_LEN;
        frame.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
        while frame.len() < end {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            frame.push((seed >> 24) as u8);
        }
        chunks.push(Bytes::from(frame));
    }
    chunks
}

/// The same audio as [`mp3_chunks`], in one buffer.
pub(crate) fn mp3_bytes(text: &str) -> Vec<u8> {
    mp3_chunks(text).concat()
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { ALPHABET[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { ALPHABET[n as usize & 63] as char } else { '=' });
    }
    out
}

/// Decodes `%XX` escapes; invalid escapes are kept as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes everything that may not appear in a URL path segment.
pub(crate) fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The shortened form of an API key that providers echo in "invalid key" errors: the first 8 characters,
/// 8 stars and the last 4 (`sk-bad-k********7890`). Keys under 12 characters keep only their first and
/// last 2 characters, and keys under 5 none.
pub fn shorten_key(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        12.. => (8, 4),
        5..=11 => (2, 2),
        _ => (0, 0),
    };
    let mut out: String = chars[..head].iter().collect();
    out.push_str("********");
    out.extend(&chars[n - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_to_the_text() {
        let text = "Mock reply to:  hello\nworld ";
        let chunks = word_chunks(text);
        assert_eq!(chunks, vec!["Mock", " reply", " to:", "  hello", "\nworld "]);
        assert_eq!(chunks.concat(), text);
        assert!(word_chunks("").is_empty());
        assert_eq!(word_chunks("  a b"), vec!["  a", " b"]);
    }

    #[test]
    fn reply_truncates() {
        let r = Reply::new("Mock reply to: a b c", Some(3));
        assert_eq!(r.text, "Mock reply to:");
        assert!(r.truncated);
        assert_eq!(r.tokens(), 3);
        let r = Reply::new("Mock reply to: a", Some(100));
        assert!(!r.truncated);
        assert_eq!(r.tokens(), 4);
    }

    #[test]
    fn shortens_keys() {
        assert_eq!(shorten_key("sk-bad-key-1234567890"), "sk-bad-k********7890");
        assert_eq!(shorten_key("short-key"), "sh********ey");
        assert_eq!(shorten_key("abc"), "********");
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn percent_coding_round_trips() {
        let spec = "fail=503, latency=5/x%";
        assert_eq!(percent_decode(&percent_encode_segment(spec)), spec);
        assert_eq!(percent_decode("a%3Db%zz%4"), "a=b%zz%4");
    }

    #[test]
    fn audio_is_deterministic_mp3() {
        let a = mp3_bytes("hello there, this is a test");
        assert_eq!(a, mp3_bytes("hello there, this is a test"));
        assert!(a.starts_with(b"ID3"));
        assert_eq!(a.len(), 10 + 417 * 4);
        assert_eq!(&a[10..12], &[0xFF, 0xFB]);
        assert_ne!(a, mp3_bytes("something else entirely, longer"));
    }
}
