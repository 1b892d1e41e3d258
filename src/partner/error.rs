//! What a partner call's failure means for the caller, and how a response is classified.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde_json::Value;

use super::Reply;

/// How much of a response body we keep for the attempts table and error messages.
pub const EXCERPT_BYTES: usize = 4096;

/// A failed partner call, as an outcome the caller can act on.
///
/// No variant ever holds the token: messages come from response bodies and from
/// transport errors, and the token only ever travels in a request header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartnerError {
    /// Try again later: connection errors, timeouts, 408, 429 and 5xx.
    ///
    /// `ambiguous` means the request may have taken effect (a timeout or a broken
    /// connection after sending, or a 5xx): before repeating a call that is not
    /// idempotent, check the workspace state. A refused connection is not ambiguous.
    #[error("partner API unavailable{}: {message}", on_http(*.status))]
    Retryable {
        status: Option<u16>,
        message: String,
        excerpt: Option<String>,
        retry_after: Option<Duration>,
        ambiguous: bool,
    },
    /// A create refused because the email already has a UChat account: create the
    /// workspace for the existing user instead (see [`looks_like_existing_account`]).
    #[error("email already has a UChat account (HTTP {status}): {message}")]
    ExistingAccount {
        status: u16,
        message: String,
        excerpt: String,
    },
    /// Refused for lack of partner credit: hold the call until the partner tops up.
    #[error("not enough partner credit (HTTP {status}): {message}")]
    InsufficientCredit {
        status: u16,
        message: String,
        excerpt: String,
    },
    /// Any other refusal (401, 403, 404, 422, a 200 whose `status` is not `"ok"`, an
    /// unexpected response shape, a call we cannot route): repeating will not help.
    #[error("partner API rejected the call{}: {message}", on_http(*.status))]
    Rejected {
        status: Option<u16>,
        message: String,
        excerpt: Option<String>,
    },
}

fn on_http(status: Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl PartnerError {
    /// The HTTP status, when a response arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Retryable { status, .. } | Self::Rejected { status, .. } => *status,
            Self::ExistingAccount { status, .. } | Self::InsufficientCredit { status, .. } => {
                Some(*status)
            }
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Retryable { message, .. }
            | Self::ExistingAccount { message, .. }
            | Self::InsufficientCredit { message, .. }
            | Self::Rejected { message, .. } => message,
        }
    }

    /// The first [`EXCERPT_BYTES`] of the response body, when a response arrived.
    pub fn excerpt(&self) -> Option<&str> {
        match self {
            Self::Retryable { excerpt, .. } | Self::Rejected { excerpt, .. } => excerpt.as_deref(),
            Self::ExistingAccount { excerpt, .. } | Self::InsufficientCredit { excerpt, .. } => {
                Some(excerpt)
            }
        }
    }

    /// A refusal before any request was sent: repeating will not help.
    pub fn invalid(message: String) -> Self {
        Self::Rejected {
            status: None,
            message,
            excerpt: None,
        }
    }

    /// A transport failure: no response, or a response whose body could not be read.
    pub(super) fn transport(err: &reqwest::Error, status: Option<u16>) -> Self {
        let message = error_chain(err);
        if err.is_builder() {
            return Self::invalid(message);
        }
        Self::Retryable {
            status,
            message,
            excerpt: None,
            retry_after: None,
            // Failing to connect means nothing was sent; anything later may have been.
            ambiguous: !err.is_connect(),
        }
    }
}

/// `err` and its sources, so "error sending request" says *why* (refused, timed out...).
fn error_chain(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Turns a response into a [`Reply`] or a classified [`PartnerError`].
///
/// Order matters: success first (any 2xx whose JSON `status` is absent or `"ok"`), then
/// a lack of credit (whatever the status: the body says why, and retrying cannot help),
/// then the transient statuses, then the existing-account guess, then everything else.
pub(super) fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    text: &str,
) -> Result<Reply, PartnerError> {
    let code = status.as_u16();
    let excerpt = excerpt(text);
    let json: Option<Value> = serde_json::from_str(text).ok();

    if status.is_success() {
        match json {
            Some(body) if body.get("status").is_none_or(|s| s == "ok") => {
                return Ok(Reply {
                    status: code,
                    body,
                    raw_excerpt: excerpt,
                })
            }
            None if text.trim().is_empty() => {
                return Ok(Reply {
                    status: code,
                    body: Value::Null,
                    raw_excerpt: excerpt,
                })
            }
            None => {
                return Err(PartnerError::Rejected {
                    status: Some(code),
                    message: "response is not JSON".into(),
                    excerpt: Some(excerpt),
                })
            }
            Some(_) => {} // a 2xx whose status is not "ok": a refusal, classified below
        }
    }

    let message = message_of(status, json.as_ref());
    let lower = text.to_lowercase();
    if code == 402 || mentions_missing_credit(&lower) {
        return Err(PartnerError::InsufficientCredit {
            status: code,
            message,
            excerpt,
        });
    }
    if code == 408 || code == 429 || status.is_server_error() {
        return Err(PartnerError::Retryable {
            status: Some(code),
            message,
            excerpt: Some(excerpt),
            retry_after,
            ambiguous: status.is_server_error(),
        });
    }
    if (status.is_client_error() || status.is_success()) && looks_like_existing_account(&lower) {
        return Err(PartnerError::ExistingAccount {
            status: code,
            message,
            excerpt,
        });
    }
    Err(PartnerError::Rejected {
        status: Some(code),
        message,
        excerpt: Some(excerpt),
    })
}

/// UChat emits `no_enough_credit`; people write "not enough credit" or "insufficient
/// credit". `text` is the lowercased body.
fn mentions_missing_credit(text: &str) -> bool {
    let text = text.replace('_', " ");
    text.contains("enough credit") || text.contains("insufficient credit")
}

/// **Guess** (the contract does not document this refusal): a create is refused
/// because the email already has a UChat account when the refusal mentions "already"
/// together with "email", "exist", "registered" or "taken". It matches both
/// `{"message":"User with this email already exists"}` and Laravel's validation form
/// `{"errors":{"email":["The email has already been taken."]}}`. `text` is the
/// lowercased body. Change it here, and only here, once the real wording is known.
pub fn looks_like_existing_account(text: &str) -> bool {
    text.contains("already")
        && ["email", "exist", "registered", "taken"]
            .iter()
            .any(|word| text.contains(word))
}

/// The body's `message` (or `error`), followed by Laravel-style field `errors`;
/// without either, the HTTP status line.
fn message_of(status: StatusCode, body: Option<&Value>) -> String {
    let main = body
        .and_then(|b| b.get("message").or_else(|| b.get("error")))
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty());
    let details: Vec<&str> = body
        .and_then(|b| b.get("errors"))
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|fields| fields.values())
        .flat_map(|v| v.as_array().map_or_else(|| vec![v], |a| a.iter().collect()))
        .filter_map(Value::as_str)
        .collect();
    let details = details.join("; ");
    match main {
        Some(main) if details.is_empty() || main.contains(&details) => main.to_string(),
        Some(main) => format!("{main} ({details})"),
        None if !details.is_empty() => details,
        None => match body.and_then(|b| b.get("status")) {
            Some(s) if status.is_success() => format!("response status {s} without a message"),
            _ => format!("HTTP {status}"),
        },
    }
}

/// The first [`EXCERPT_BYTES`] of `text`, cut at a character boundary.
pub(super) fn excerpt(text: &str) -> String {
    let mut end = text.len().min(EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A `Retry-After` value: delay in seconds, or an HTTP date measured from `now`. A past
/// date gives zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}
