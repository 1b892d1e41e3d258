//! A value that must never reach a log line, an error message or `Debug` output.

use std::fmt;

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

    /// Compares in constant time, so response timing says nothing about the secret.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
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
    }
}
