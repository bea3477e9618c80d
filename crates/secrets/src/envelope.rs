use std::fmt;

use base64::{engine::general_purpose::STANDARD, Engine};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::digest::{digest, SHA256};

use crate::{random_bytes, CryptoError};

const KEY_LEN: usize = 32;

/// An operator's master key, identified by a fingerprint so wrapped data keys can name theirs.
pub struct MasterKey {
    id: String,
    key: LessSafeKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Parses a base64-encoded 32-byte key.
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| CryptoError::InvalidMasterKey)?;
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::InvalidMasterKey);
        }
        let fingerprint = digest(&SHA256, &[b"integrations-master-key-id:".as_slice(), bytes].concat());
        let id = hex::encode(&fingerprint.as_ref()[..8]);
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::InvalidMasterKey)?;
        Ok(Self {
            id,
            key: LessSafeKey::new(key),
        })
    }

    /// A fresh random key, returned with its base64 form (to store or show once).
    pub fn generate() -> Result<(Self, String), CryptoError> {
        let bytes = random_bytes::<KEY_LEN>()?;
        let encoded = STANDARD.encode(bytes);
        Ok((Self::from_bytes(&bytes)?, encoded))
    }

    /// The key's fingerprint (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A tenant's data key as stored: sealed by the master key named by `master_key_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// Fingerprint of the master key that sealed it.
    pub master_key_id: String,
    /// Nonce followed by the sealed key and tag.
    pub ciphertext: Vec<u8>,
}

/// A tenant's plaintext data key; lives only in memory, never printed.
pub struct DataKey(LessSafeKey);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// Where a secret belongs; bound into the ciphertext as associated data.
#[derive(Clone, Copy, Debug)]
pub struct SecretLocation<'a> {
    /// The tenant id.
    pub tenant: &'a str,
    /// The plugin name.
    pub plugin: &'a str,
    /// The config field.
    pub field: &'a str,
}

impl SecretLocation<'_> {
    fn associated_data(&self) -> Vec<u8> {
        // Length prefixes make the encoding unambiguous ("a","bc" differs from "ab","c").
        let mut aad = b"integrations/secret/v1".to_vec();
        for part in [self.tenant, self.plugin, self.field] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

impl DataKey {
    /// Encrypts a secret for its location.
    pub fn seal(&self, location: SecretLocation<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal(&self.0, &location.associated_data(), plaintext)
    }

    /// Decrypts a secret; fails if it was sealed for another location or key.
    pub fn open(&self, location: SecretLocation<'_>, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(&self.0, &location.associated_data(), ciphertext)
    }
}

/// The master keys a process knows: the current one wraps new data keys; previous ones still
/// unwrap, so a rotation can proceed while servers run.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring wrapping with `current` and also unwrapping with `previous`.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// The current master key's id.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// A new random data key for a tenant, and its wrapped form to store.
    pub fn new_data_key(&self, tenant: &str) -> Result<(DataKey, WrappedDataKey), CryptoError> {
        let bytes = random_bytes::<KEY_LEN>()?;
        let wrapped = WrappedDataKey {
            master_key_id: self.current.id.clone(),
            ciphertext: seal(&self.current.key, &wrap_aad(tenant), &bytes)?,
        };
        Ok((data_key(&bytes)?, wrapped))
    }

    /// Unwraps a tenant's stored data key with whichever known master key sealed it.
    pub fn unwrap(&self, tenant: &str, wrapped: &WrappedDataKey) -> Result<DataKey, CryptoError> {
        data_key(&self.unwrap_bytes(tenant, wrapped)?)
    }

    /// Re-seals a tenant's data key under `new_key`; the data key itself is unchanged, so secrets
    /// sealed with it stay valid.
    pub fn rewrap(
        &self,
        tenant: &str,
        wrapped: &WrappedDataKey,
        new_key: &MasterKey,
    ) -> Result<WrappedDataKey, CryptoError> {
        let bytes = self.unwrap_bytes(tenant, wrapped)?;
        Ok(WrappedDataKey {
            master_key_id: new_key.id.clone(),
            ciphertext: seal(&new_key.key, &wrap_aad(tenant), &bytes)?,
        })
    }

    fn unwrap_bytes(&self, tenant: &str, wrapped: &WrappedDataKey) -> Result<Vec<u8>, CryptoError> {
        let master = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == wrapped.master_key_id)
            .ok_or_else(|| CryptoError::UnknownMasterKey(wrapped.master_key_id.clone()))?;
        open(&master.key, &wrap_aad(tenant), &wrapped.ciphertext)
    }
}

fn wrap_aad(tenant: &str) -> Vec<u8> {
    [b"integrations/data-key/v1:".as_slice(), tenant.as_bytes()].concat()
}

fn data_key(bytes: &[u8]) -> Result<DataKey, CryptoError> {
    let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::DecryptionFailed)?;
    Ok(DataKey(LessSafeKey::new(key)))
}

fn seal(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    // Random 96-bit nonces: the number of messages per data key stays far below the 2^32 bound.
    let nonce_bytes = random_bytes::<NONCE_LEN>()?;
    let mut in_out = plaintext.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError::Random)?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&in_out);
    Ok(out)
}

fn open(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN {
        return Err(CryptoError::DecryptionFailed);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::DecryptionFailed)?;
    let mut in_out = ciphertext.to_vec();
    let plaintext = key
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .map_err(|_| CryptoError::DecryptionFailed)?;
    Ok(plaintext.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring() -> Keyring {
        Keyring::new(MasterKey::generate().unwrap().0, vec![])
    }

    const LOC: SecretLocation<'static> = SecretLocation {
        tenant: "acme",
        plugin: "jira",
        field: "api_token",
    };

    #[test]
    fn round_trips_and_hides_plaintext() {
        let (key, _) = keyring().new_data_key("acme").unwrap();
        let sealed = key.seal(LOC, b"top-secret-token").unwrap();
        assert!(!sealed.windows(16).any(|w| w == b"top-secret-token"));
        assert_eq!(key.open(LOC, &sealed).unwrap(), b"top-secret-token");
    }

    #[test]
    fn ciphertext_bound_to_its_location() {
        let (key, _) = keyring().new_data_key("acme").unwrap();
        let sealed = key.seal(LOC, b"value").unwrap();
        for other in [
            SecretLocation { tenant: "evil", ..LOC },
            SecretLocation { plugin: "slack", ..LOC },
            SecretLocation { field: "email", ..LOC },
        ] {
            assert_eq!(key.open(other, &sealed), Err(CryptoError::DecryptionFailed));
        }
    }

    #[test]
    fn wrapped_key_bound_to_tenant_and_master_key() {
        let ring = keyring();
        let (_, wrapped) = ring.new_data_key("acme").unwrap();
        assert!(ring.unwrap("acme", &wrapped).is_ok());
        assert_eq!(ring.unwrap("evil", &wrapped).err(), Some(CryptoError::DecryptionFailed));
        let other = keyring();
        assert!(matches!(
            other.unwrap("acme", &wrapped),
            Err(CryptoError::UnknownMasterKey(_))
        ));
    }

    #[test]
    fn rewrap_keeps_the_data_key() {
        let old = keyring();
        let (data_key, wrapped) = old.new_data_key("acme").unwrap();
        let sealed = data_key.seal(LOC, b"value").unwrap();
        let (new_master, encoded) = MasterKey::generate().unwrap();
        let rewrapped = old.rewrap("acme", &wrapped, &new_master).unwrap();
        assert_eq!(rewrapped.master_key_id, new_master.id());
        let new_ring = Keyring::new(MasterKey::from_base64(&encoded).unwrap(), vec![]);
        assert_eq!(
            new_ring.unwrap("acme", &rewrapped).unwrap().open(LOC, &sealed).unwrap(),
            b"value"
        );
    }

    #[test]
    fn rejects_master_keys_of_wrong_length_and_never_prints_them() {
        assert_eq!(
            MasterKey::from_base64("c2hvcnQ=").err(),
            Some(CryptoError::InvalidMasterKey)
        );
        let (key, encoded) = MasterKey::generate().unwrap();
        assert!(!format!("{key:?}").contains(&encoded));
    }
}
