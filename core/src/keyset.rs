//! Keyset pagination cursors shared by the lists that page newest first on `(created_at, id)` (the
//! request log, the task history): an opaque, URL-safe string that says where a page ended, so the
//! next page starts there however deep it is.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The encoding's version byte, so a later change can tell old links apart.
const VERSION: u8 = 1;

/// base64url of a version byte, the time in seconds and nanoseconds, and the id.
pub fn encode(created_at: DateTime<Utc>, id: Uuid) -> String {
    let mut bytes = Vec::with_capacity(29);
    bytes.push(VERSION);
    bytes.extend_from_slice(&created_at.timestamp().to_be_bytes());
    bytes.extend_from_slice(&created_at.timestamp_subsec_nanos().to_be_bytes());
    bytes.extend_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads a string made by [`encode`]; `None` for anything else.
pub fn decode(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(raw.trim().as_bytes()).ok()?;
    if bytes.len() != 29 || bytes[0] != VERSION {
        return None;
    }
    let secs = i64::from_be_bytes(bytes[1..9].try_into().ok()?);
    let nanos = u32::from_be_bytes(bytes[9..13].try_into().ok()?);
    if nanos >= 1_000_000_000 {
        return None;
    }
    let created_at = DateTime::from_timestamp(secs, nanos)?;
    let id = Uuid::from_slice(&bytes[13..]).ok()?;
    Some((created_at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_anything_else() {
        let at = DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode(at, id)), Some((at, id)));
        for bad in
            ["", "x", "not-a-cursor", &URL_SAFE_NO_PAD.encode([2u8; 29]), &URL_SAFE_NO_PAD.encode([1u8; 28])]
        {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
