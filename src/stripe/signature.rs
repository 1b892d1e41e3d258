//! `Stripe-Signature` verification, as Stripe documents it: HMAC-SHA256 of
//! `"{t}.{raw body}"` keyed by the whole `whsec_...` secret, hex-encoded in `v1=` entries.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// How far the signed timestamp may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    MissingHeader,
    #[error("malformed Stripe-Signature header")]
    MalformedHeader,
    #[error("no v1 signature in Stripe-Signature header")]
    NoV1Signature,
    #[error("no signature matches")]
    NoMatch,
    #[error("timestamp outside the tolerance")]
    StaleTimestamp,
}

/// The parts of a `Stripe-Signature` header we use; `v0` and unknown schemes are ignored.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub v1: Vec<Vec<u8>>,
}

impl SignatureHeader {
    pub fn parse(header: &str) -> Result<SignatureHeader, SignatureError> {
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for pair in header.split(',') {
            let (key, value) = pair
                .trim()
                .split_once('=')
                .ok_or(SignatureError::MalformedHeader)?;
            match key {
                "t" => {
                    let t = value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::MalformedHeader)?;
                    timestamp = Some(t);
                }
                // A value that is not hex can never match; keep looking at the others.
                "v1" => v1.extend(hex::decode(value).ok()),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::MalformedHeader)?;
        if v1.is_empty() {
            return Err(SignatureError::NoV1Signature);
        }
        Ok(SignatureHeader { timestamp, v1 })
    }
}

/// Checks the header against the raw body: accepted when any `v1` matches any secret and
/// the timestamp is within [`TOLERANCE_SECS`] of `now`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[Secret],
    now: i64,
) -> Result<(), SignatureError> {
    let header = SignatureHeader::parse(header.ok_or(SignatureError::MissingHeader)?)?;
    let matched = secrets.iter().any(|secret| {
        let expected = sign(secret, header.timestamp, body);
        // `any` over the v1 values short-circuits only on a match, which reveals nothing.
        header
            .v1
            .iter()
            .any(|candidate| bool::from(expected.as_slice().ct_eq(candidate)))
    });
    if !matched {
        return Err(SignatureError::NoMatch);
    }
    // `abs_diff`: a signed timestamp near either end of i64 must not overflow.
    if now.abs_diff(header.timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    Ok(())
}

/// The raw HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// A header as Stripe would send it for this body, for tests, the demo and benchmarks.
pub fn header_for(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(sign(secret, timestamp, body))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn secret() -> Secret {
        Secret::new("whsec_test")
    }

    #[test]
    fn a_header_we_signed_verifies() {
        let header = header_for(&secret(), NOW, BODY);
        assert_eq!(verify(Some(&header), BODY, &[secret()], NOW), Ok(()));
    }

    #[test]
    fn parse_ignores_v0_and_unknown_schemes_and_keeps_every_v1() {
        let parsed = SignatureHeader::parse("t=12,v0=aa,v1=0a0b,x=1,v1=ff").unwrap();
        assert_eq!(parsed.timestamp, 12);
        assert_eq!(parsed.v1, vec![vec![0x0a, 0x0b], vec![0xff]]);
    }

    #[test]
    fn malformed_headers_are_told_apart() {
        use SignatureError::*;
        for (header, expected) in [
            ("", MalformedHeader),
            ("garbage", MalformedHeader),
            ("v1=00", MalformedHeader),
            ("t=abc,v1=00", MalformedHeader),
            ("t=12", NoV1Signature),
            ("t=12,v0=00", NoV1Signature),
            ("t=12,v1=zz", NoV1Signature),
        ] {
            assert_eq!(SignatureHeader::parse(header), Err(expected), "{header:?}");
        }
    }

    #[test]
    fn timestamps_at_the_ends_of_time_are_stale_not_an_overflow() {
        for (timestamp, now) in [(i64::MIN, NOW), (i64::MAX, -NOW), (i64::MIN, i64::MAX)] {
            let header = header_for(&secret(), timestamp, BODY);
            assert_eq!(
                verify(Some(&header), BODY, &[secret()], now),
                Err(SignatureError::StaleTimestamp),
                "t={timestamp} now={now}"
            );
        }
    }

    #[test]
    fn tolerance_is_inclusive_at_300_seconds() {
        for (skew, ok) in [(300, true), (-300, true), (301, false), (-301, false)] {
            let header = header_for(&secret(), NOW + skew, BODY);
            let result = verify(Some(&header), BODY, &[secret()], NOW);
            assert_eq!(result.is_ok(), ok, "skew {skew}: {result:?}");
        }
    }
}

#[cfg(test)]
mod known_answer {
    use serde::Deserialize;

    use super::*;

    /// Stripe's own test vector, as async-stripe checks it.
    #[derive(Deserialize)]
    struct Vector {
        secret: String,
        timestamp: i64,
        payload: String,
        header: String,
        expected_v1: String,
    }

    fn vector() -> Vector {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/stripe/signature-vector.async-stripe.json"
        ))
        .unwrap()
    }

    #[test]
    fn the_vector_verifies_at_its_own_timestamp() {
        let v = vector();
        let secret = Secret::new(v.secret);
        assert_eq!(
            hex::encode(sign(&secret, v.timestamp, v.payload.as_bytes())),
            v.expected_v1
        );
        assert_eq!(
            verify(
                Some(&v.header),
                v.payload.as_bytes(),
                &[secret],
                v.timestamp
            ),
            Ok(())
        );
    }

    #[test]
    fn the_vector_fails_with_any_other_secret() {
        let v = vector();
        for other in ["secret ", "Secret", "whsec_secret", ""] {
            assert_eq!(
                verify(
                    Some(&v.header),
                    v.payload.as_bytes(),
                    &[Secret::new(other)],
                    v.timestamp
                ),
                Err(SignatureError::NoMatch),
                "{other:?}"
            );
        }
    }
}
