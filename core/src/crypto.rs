//! Sealing secrets at rest with AES-256-GCM.
//!
//! Every sealed value records the id of the key that sealed it, and is bound (as associated data) to
//! what it is, e.g. `signing_key:<kid>`, so a ciphertext copied onto another row does not open.
//!
//! Keys come from `GOBLIN_ENCRYPTION_KEYS` (current first, then older keys still needed to open what
//! they sealed) or `GOBLIN_ENCRYPTION_KEY` (a one-key ring). `goblin keys rotate-encryption` re-seals
//! every stored secret under the current key, after which older keys can be dropped.
//!
//! Security: without a configured key, development installs use a key generated into
//! `<data_dir>/encryption.key`; anyone who can read that file can open every stored secret, so
//! production (`GOBLIN_ENV=production`) refuses to start without a configured key.

use std::{collections::HashMap, path::Path};

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

use crate::{config::Config, secret::Secret};

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("the secret was sealed with encryption key '{0}', which this server does not have")]
    MissingKey(String),
    #[error("a stored secret could not be opened: it was altered, or belongs to another record")]
    Tampered,
    #[error("could not read or create the development encryption key: {0}")]
    DevKey(String),
}

/// Decodes a base64 key of exactly 32 bytes. The error never repeats the value.
///
/// # Errors
/// A description of what is wrong, for a configuration error message.
pub fn decode_key(b64: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(b64.trim())
        .map_err(|_| "is not valid base64 (expected 32 random bytes, base64-encoded)".to_string())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("decodes to {} bytes; it must be 32 bytes, base64-encoded", bytes.len()))
}

/// The id recorded beside each ciphertext: derived from the key, so it needs no separate setting.
pub fn key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::digest(key);
    format!("k{}", digest.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>())
}

/// A sealed value and the id of the key that sealed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    /// nonce (12 bytes) || ciphertext with tag.
    pub bytes: Vec<u8>,
}

/// The encryption keys this server holds; new secrets are sealed with the current one.
pub struct Keyring {
    current: String,
    keys: HashMap<String, Secret<[u8; 32]>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("current", &self.current).field("keys", &self.keys.len()).finish()
    }
}

impl Keyring {
    /// A ring with one key, which is current.
    pub fn single(key: [u8; 32]) -> Self {
        Self::new(key, [])
    }

    /// A ring whose `current` key seals, and which can also open what `older` keys sealed.
    pub fn new(current: [u8; 32], older: impl IntoIterator<Item = [u8; 32]>) -> Self {
        let id = key_id(&current);
        let mut keys: HashMap<String, Secret<[u8; 32]>> =
            older.into_iter().map(|k| (key_id(&k), Secret::new(k))).collect();
        keys.insert(id.clone(), Secret::new(current));
        Self { current: id, keys }
    }

    /// The configured keys (the first is current), or in development the key in
    /// `<data_dir>/encryption.key` (created on first use, readable by the owner only). The boolean is
    /// true when the development key is in use.
    ///
    /// # Errors
    /// When the development key file cannot be read or created.
    pub fn from_config(config: &Config) -> Result<(Self, bool), CryptoError> {
        match config.encryption_keys.split_first() {
            Some((current, older)) => {
                Ok((Self::new(*current.expose(), older.iter().map(|k| *k.expose())), false))
            }
            None => Ok((Self::single(dev_key(&config.data_dir)?), true)),
        }
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Whether this ring holds the key with this id.
    pub fn has(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// Seals `plaintext` with the current key, bound to `label`.
    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let cipher = self.cipher(&self.current).expect("the current key is always in the ring");
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: label.as_bytes() })
            // AES-GCM encryption fails only for inputs over 64 GiB.
            .expect("AES-GCM seals any secret-sized input");
        let mut bytes = Vec::with_capacity(NONCE_LEN + ct.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ct);
        Sealed { key_id: self.current.clone(), bytes }
    }

    /// Opens a value sealed under `label` by the key `key_id`.
    ///
    /// # Errors
    /// [`CryptoError::MissingKey`] when this ring lacks that key; [`CryptoError::Tampered`] when the
    /// bytes or the label do not match.
    pub fn open(&self, label: &str, sealed: &Sealed) -> Result<Secret<Vec<u8>>, CryptoError> {
        let cipher =
            self.cipher(&sealed.key_id).ok_or_else(|| CryptoError::MissingKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Tampered);
        }
        let (nonce, ct) = sealed.bytes.split_at(NONCE_LEN);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: label.as_bytes() })
            .map(Secret::new)
            .map_err(|_| CryptoError::Tampered)
    }

    fn cipher(&self, id: &str) -> Option<Aes256Gcm> {
        self.keys.get(id).map(|k| Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(k.expose())))
    }
}

/// Reads or creates the development key file.
fn dev_key(data_dir: &Path) -> Result<[u8; 32], CryptoError> {
    let path = data_dir.join("encryption.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => decode_key(&text).map_err(|p| CryptoError::DevKey(format!("{}: {p}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            OsRng.fill_bytes(&mut key);
            std::fs::create_dir_all(data_dir).map_err(|e| CryptoError::DevKey(e.to_string()))?;
            write_private(&path, &STANDARD.encode(key)).map_err(|e| CryptoError::DevKey(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(CryptoError::DevKey(format!("{}: {e}", path.display()))),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(byte: u8) -> Keyring {
        Keyring::single([byte; 32])
    }

    #[test]
    fn round_trip() {
        let r = ring(7);
        let sealed = r.seal("signing_key:a", b"top secret");
        assert_eq!(sealed.key_id, key_id(&[7; 32]));
        assert!(!sealed.bytes.windows(10).any(|w| w == b"top secret"));
        assert_eq!(r.open("signing_key:a", &sealed).unwrap().expose(), b"top secret");
        // A fresh nonce each time.
        assert_ne!(r.seal("signing_key:a", b"top secret").bytes, sealed.bytes);
    }

    #[test]
    fn wrong_key_tampering_and_wrong_label_are_refused() {
        let sealed = ring(1).seal("x", b"value");
        assert_eq!(ring(2).open("x", &sealed).unwrap_err(), CryptoError::MissingKey(sealed.key_id.clone()));
        let other = Sealed { key_id: key_id(&[2; 32]), bytes: sealed.bytes.clone() };
        assert_eq!(ring(2).open("x", &other).unwrap_err(), CryptoError::Tampered);
        let mut flipped = sealed.clone();
        let last = flipped.bytes.len() - 1;
        flipped.bytes[last] ^= 1;
        assert_eq!(ring(1).open("x", &flipped).unwrap_err(), CryptoError::Tampered);
        assert_eq!(ring(1).open("y", &sealed).unwrap_err(), CryptoError::Tampered);
        let short = Sealed { key_id: sealed.key_id.clone(), bytes: vec![0; 5] };
        assert_eq!(ring(1).open("x", &short).unwrap_err(), CryptoError::Tampered);
    }

    #[test]
    fn older_keys_open_what_they_sealed_and_new_secrets_use_the_current_key() {
        let old = ring(1);
        let sealed = old.seal("x", b"value");
        let both = Keyring::new([2; 32], [[1; 32]]);
        assert_eq!(both.current_id(), key_id(&[2; 32]));
        assert!(both.has(&key_id(&[1; 32])) && both.has(&key_id(&[2; 32])));
        assert_eq!(both.open("x", &sealed).unwrap().expose(), b"value");
        assert_eq!(both.seal("x", b"value").key_id, key_id(&[2; 32]));
        assert!(!format!("{both:?}").contains("[1, 1"), "key bytes never print");
    }

    #[test]
    fn decode_key_checks_length_and_base64() {
        assert!(decode_key(&STANDARD.encode([0u8; 32])).is_ok());
        assert!(decode_key("###").unwrap_err().contains("base64"));
        assert!(decode_key(&STANDARD.encode([0u8; 16])).unwrap_err().contains("16 bytes"));
    }

    #[test]
    fn development_key_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = dev_key(dir.path()).unwrap();
        let b = dev_key(dir.path()).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("encryption.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
