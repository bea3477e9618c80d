use ring::hmac;

/// A keyed digest of a bearer token (API key or admin token): what is stored instead of the token.
pub type TokenDigest = Vec<u8>;

// The digest is keyed only for domain separation; the security rests on tokens carrying 256 bits
// of randomness, which makes an unsalted fast hash safe to store.
fn digest_key() -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, b"integrations/token-digest/v1")
}

/// The digest to store for a token.
pub fn token_digest(token: &str) -> TokenDigest {
    hmac::sign(&digest_key(), token.as_bytes()).as_ref().to_vec()
}

/// Checks a presented token against a stored digest in constant time.
pub fn verify_token(token: &str, digest: &[u8]) -> bool {
    hmac::verify(&digest_key(), token.as_bytes(), digest).is_ok()
}

/// Random bytes from the system source, for key material and identifiers.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], crate::CryptoError> {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| crate::CryptoError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_same_token() {
        let digest = token_digest("itk_abc.secret");
        assert!(verify_token("itk_abc.secret", &digest));
        assert!(!verify_token("itk_abc.secreT", &digest));
        assert!(!verify_token("", &digest));
    }
}
