//! Envelope encryption for tenant secrets, and the keyed hashes that protect API keys.
//!
//! A master key (operator supplied) wraps one random data key per tenant; each secret is sealed
//! with its tenant's data key under AES-256-GCM, with associated data naming the tenant, plugin
//! and field, so a ciphertext moved to another tenant or field does not decrypt.

mod envelope;
mod token;

pub use envelope::{DataKey, Keyring, MasterKey, SecretLocation, WrappedDataKey};
pub use token::{random_bytes, token_digest, verify_token, TokenDigest};

/// Why a cryptographic operation failed. Never carries key or plaintext material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The master key is not 32 bytes of base64.
    #[error("master key must be 32 bytes, base64-encoded")]
    InvalidMasterKey,
    /// No master key in the keyring has this id.
    #[error("no master key with id {0} is configured")]
    UnknownMasterKey(String),
    /// Authentication failed: wrong key, wrong associated data or tampered ciphertext.
    #[error("decryption failed")]
    DecryptionFailed,
    /// The system random source failed.
    #[error("random source failed")]
    Random,
}
