//! Console sessions: the admin token is presented once, at sign-in; after that a signed
//! cookie stands for it until it expires. Nothing is stored on the server: the cookie
//! carries its expiry and a nonce, signed with a key derived from the admin token, so
//! every instance of the service accepts it, and changing the token ends every session.
//!
//! Each state-changing form carries a CSRF token derived from the session: another site
//! cannot read it, so it cannot forge the form (the cookie is `SameSite=Strict` besides).

use std::time::Duration;

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

pub const COOKIE_NAME: &str = "console_session";

/// How long a session lasts from sign-in: a working day.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// The key sessions are signed with: derived from the admin token, never the token itself.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    pub fn derive(admin_token: &Secret) -> SessionKey {
        let mut mac = HmacSha256::new_from_slice(admin_token.expose().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"uchat-billing console session key");
        SessionKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self, purpose: &str, body: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(body.as_bytes());
        mac
    }

    fn sign(&self, purpose: &str, body: &str) -> String {
        hex::encode(self.mac(purpose, body).finalize().into_bytes())
    }

    /// A new session expiring `SESSION_TTL` after `now` (seconds since the epoch).
    pub fn issue(&self, now: i64) -> Session {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let body = format!("{}.{nonce}", now + SESSION_TTL.as_secs() as i64);
        let cookie = format!("{body}.{}", self.sign("session", &body));
        Session { cookie, body }
    }

    /// The session this cookie value stands for, if this key signed it and it has not
    /// expired at `now`.
    pub fn verify(&self, cookie: &str, now: i64) -> Option<Session> {
        let (body, signature) = cookie.rsplit_once('.')?;
        let signature = hex::decode(signature).ok()?;
        self.mac("session", body).verify_slice(&signature).ok()?;
        let (expires, _nonce) = body.split_once('.')?;
        (expires.parse::<i64>().ok()? > now).then(|| Session {
            cookie: cookie.to_owned(),
            body: body.to_owned(),
        })
    }

    /// The CSRF token of a session's forms.
    pub fn csrf(&self, session: &Session) -> String {
        self.sign("csrf", &session.body)
    }

    /// Whether `token` is the session's CSRF token, compared in constant time.
    pub fn csrf_matches(&self, session: &Session, token: &str) -> bool {
        self.csrf(session).as_bytes().ct_eq(token.as_bytes()).into()
    }
}

/// A signed session: the cookie's value, and the part of it that was signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    cookie: String,
    body: String,
}

impl Session {
    /// The `Set-Cookie` header that hands the session to the browser.
    pub fn set_cookie(&self, secure: bool) -> HeaderValue {
        cookie_header(&self.cookie, SESSION_TTL.as_secs(), secure)
    }
}

/// The `Set-Cookie` header that makes the browser forget its session.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    cookie_header("", 0, secure)
}

fn cookie_header(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let header = format!(
        "{COOKIE_NAME}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&header).expect("the cookie is printable ASCII")
}

/// The session cookie's value among the request's cookies, if there is one.
pub fn cookie_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::derive(&Secret::new("admin-test-token-0123456789abcdef"))
    }

    #[test]
    fn a_session_is_valid_until_it_expires() {
        let session = key().issue(1_000);
        let expires = 1_000 + SESSION_TTL.as_secs() as i64;
        assert_eq!(
            key().verify(&session.cookie, expires - 1),
            Some(session.clone())
        );
        assert_eq!(key().verify(&session.cookie, expires), None);
    }

    #[test]
    fn a_changed_or_foreign_cookie_is_refused() {
        let session = key().issue(1_000);
        let later = format!("9{}", session.cookie);
        let other_key = SessionKey::derive(&Secret::new("another-token-0123456789abcdef012"));
        assert_eq!(key().verify(&later, 1_000), None);
        assert_eq!(other_key.verify(&session.cookie, 1_000), None);
        for junk in ["", ".", "1.2", "1.2.zz", "x.y.00"] {
            assert_eq!(key().verify(junk, 1_000), None, "{junk:?}");
        }
    }

    #[test]
    fn each_session_has_its_own_csrf_token() {
        let (one, two) = (key().issue(1_000), key().issue(1_000));
        let token = key().csrf(&one);
        assert!(key().csrf_matches(&one, &token));
        assert!(!key().csrf_matches(&two, &token));
        assert!(!key().csrf_matches(&one, ""));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_when_asked() {
        let session = key().issue(1_000);
        let plain = session.set_cookie(false);
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        assert!(session
            .set_cookie(true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; console_session=abc.def; b=2"),
        );
        assert_eq!(cookie_of(&headers), Some("abc.def"));
        assert_eq!(cookie_of(&HeaderMap::new()), None);
    }
}
