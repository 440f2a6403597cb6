//! Re-sealing every stored secret under the current encryption key (`goblin keys rotate-encryption`),
//! and finding secrets this server cannot open.
//!
//! Rotating without downtime: give every instance `GOBLIN_ENCRYPTION_KEYS=<new>,<old>` (restart them
//! one by one; each can open both), run `goblin keys rotate-encryption`, then drop `<old>`. The
//! rotation runs in one transaction: either every secret is re-sealed or none is.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    TransactionTrait,
};

use crate::{
    crypto::{CryptoError, Keyring, Sealed},
    entities::{provider_credentials, signing_keys},
    providers::key_label,
    tokens,
};

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Key ids with how many stored secrets need each.
    #[error("{}", missing_message(.0))]
    MissingKeys(Vec<(String, u64)>),
    #[error("the stored secret {0} could not be opened: it was altered, or belongs to another record")]
    Tampered(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn missing_message(missing: &[(String, u64)]) -> String {
    let list: Vec<String> = missing
        .iter()
        .map(|(id, n)| format!("'{id}' ({n} secret{})", if *n == 1 { "" } else { "s" }))
        .collect();
    format!(
        "stored secrets were sealed with encryption key {} that this server does not have; add the key to \
         GOBLIN_ENCRYPTION_KEYS after the current one",
        list.join(", ")
    )
}

/// What a rotation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationReport {
    pub current_key: String,
    pub resealed: u64,
    pub already_current: u64,
}

/// The key ids that stored secrets need and `keyring` lacks, with counts.
///
/// # Errors
/// A database error.
pub async fn missing_keys(db: &DatabaseConnection, keyring: &Keyring) -> Result<Vec<(String, u64)>, DbErr> {
    let mut needed: std::collections::BTreeMap<String, u64> = Default::default();
    for c in provider_credentials::Entity::find().all(db).await? {
        *needed.entry(c.key_id).or_default() += 1;
    }
    for k in signing_keys::Entity::find().all(db).await? {
        *needed.entry(k.enc_key_id).or_default() += 1;
    }
    Ok(needed.into_iter().filter(|(id, _)| !keyring.has(id)).collect())
}

/// Fails with [`RotationError::MissingKeys`] when some stored secret needs a key `keyring` lacks.
///
/// # Errors
/// Missing keys, or a database error.
pub async fn check_keys(db: &DatabaseConnection, keyring: &Keyring) -> Result<(), RotationError> {
    let missing = missing_keys(db, keyring).await?;
    if missing.is_empty() { Ok(()) } else { Err(RotationError::MissingKeys(missing)) }
}

/// Re-seals every provider key and token signing key not yet under the current key.
///
/// # Errors
/// Missing keys (nothing is changed), a secret that does not open, or a database error.
pub async fn rotate(db: &DatabaseConnection, keyring: &Keyring) -> Result<RotationReport, RotationError> {
    check_keys(db, keyring).await?;
    let current = keyring.current_id().to_string();
    let mut report = RotationReport { current_key: current.clone(), resealed: 0, already_current: 0 };
    let txn = db.begin().await?;
    let reseal = |label: &str, key_id: &str, bytes: &[u8]| -> Result<Sealed, CryptoError> {
        let plain = keyring.open(label, &Sealed { key_id: key_id.to_string(), bytes: bytes.to_vec() })?;
        Ok(keyring.seal(label, plain.expose()))
    };
    for c in provider_credentials::Entity::find().all(&txn).await? {
        if c.key_id == current {
            report.already_current += 1;
            continue;
        }
        let sealed = reseal(&key_label(c.id), &c.key_id, &c.ciphertext)
            .map_err(|_| RotationError::Tampered(format!("provider key {}", c.id)))?;
        let mut row = c.into_active_model();
        row.ciphertext = Set(sealed.bytes);
        row.key_id = Set(sealed.key_id);
        row.update(&txn).await?;
        report.resealed += 1;
    }
    for k in signing_keys::Entity::find().all(&txn).await? {
        if k.enc_key_id == current {
            report.already_current += 1;
            continue;
        }
        let sealed = reseal(&tokens::label(&k.id), &k.enc_key_id, &k.ciphertext)
            .map_err(|_| RotationError::Tampered(format!("signing key {}", k.id)))?;
        let mut row = k.into_active_model();
        row.ciphertext = Set(sealed.bytes);
        row.enc_key_id = Set(sealed.key_id);
        row.update(&txn).await?;
        report.resealed += 1;
    }
    txn.commit().await?;
    Ok(report)
}
