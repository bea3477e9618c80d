//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, the key
//! shown to tenants as `whsec_<base64 key>`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of a new signing key (Svix uses 24).
pub const SECRET_BYTES: usize = 24;

/// What `whsec_` secrets start with.
pub const SECRET_PREFIX: &str = "whsec_";

/// An endpoint's signing key. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

/// The system random source failed.
#[derive(Debug, thiserror::Error)]
#[error("random source failed")]
pub struct RandomFailed;

impl SigningSecret {
    /// A fresh random key.
    pub fn generate() -> Result<Self, RandomFailed> {
        let mut key = vec![0u8; SECRET_BYTES];
        SystemRandom::new().fill(&mut key).map_err(|_| RandomFailed)?;
        Ok(Self(key))
    }

    /// The key from its raw bytes (as stored, once opened).
    pub fn from_bytes(key: Vec<u8>) -> Self {
        Self(key)
    }

    /// The raw key, to seal for storage.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// `whsec_<base64>`, as shown to the tenant once.
    pub fn expose_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// One `v1,<base64 signature>` entry over `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut context = hmac::Context::with_key(&key);
        context.update(format!("{id}.{timestamp}.").as_bytes());
        context.update(body);
        format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret([redacted])")
    }
}

/// The `webhook-signature` value: one entry per secret, space-separated (the current secret
/// first, then one still valid after a rotation).
pub fn signature_header(secrets: &[SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            SigningSecret::from_bytes(key).sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_generated_secret_is_whsec_base64_and_never_debug_printed() {
        let secret = SigningSecret::generate().unwrap();
        let shown = secret.expose_whsec();
        let encoded = shown.strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), SECRET_BYTES);
        assert!(!format!("{secret:?}").contains(encoded));
        assert_ne!(secret, SigningSecret::generate().unwrap());
    }

    #[test]
    fn several_secrets_give_space_separated_signatures() {
        let (a, b) = (
            SigningSecret::from_bytes(vec![1; 24]),
            SigningSecret::from_bytes(vec![2; 24]),
        );
        let header = signature_header(&[a.clone(), b.clone()], "evt_1", 7, b"{}");
        assert_eq!(
            header,
            format!("{} {}", a.sign("evt_1", 7, b"{}"), b.sign("evt_1", 7, b"{}"))
        );
    }
}
