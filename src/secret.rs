//! A value that must never reach a log line, an error message or `Debug` output.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (an HMAC key, a header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares SHA-256 digests of both in constant time: the digests have one length
    /// whatever the inputs', so response timing says nothing about the secret, not even
    /// its length.
    pub fn matches(&self, candidate: &str) -> bool {
        let (own, other) = (Sha256::digest(&self.0), Sha256::digest(candidate));
        own.as_slice().ct_eq(other.as_slice()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value() {
        let secret = Secret::new("whsec_topsecret");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert!(!format!("{:?}", Some(secret)).contains("topsecret"));
    }

    #[test]
    fn matches_only_the_exact_value() {
        let secret = Secret::new("token-1");
        assert!(secret.matches("token-1"));
        assert!(!secret.matches("token-2"));
        assert!(!secret.matches("token-1 "));
        assert!(!secret.matches(""));
        assert!(!secret.matches(&"token-1".repeat(40)));
    }
}
