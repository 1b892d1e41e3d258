//! Extractors whose rejections are our JSON errors, naming the parameter at fault.

use std::fmt::Display;
use std::str::FromStr;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::value::StringDeserializer;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use super::ApiError;

/// `axum::extract::Query`, rejecting with a 400 that names the parameter
/// (`limit: must be ...`).
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// The `{id}` of a route: a positive whole number.
pub struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let invalid =
            || ApiError::BadRequest("path parameter `id` must be a positive whole number".into());
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid())?;
        match text.parse() {
            Ok(id) if id > 0 => Ok(Id(id)),
            _ => Err(invalid()),
        }
    }
}

/// An optional query parameter read through its `FromStr`; blank (`?status=`) is absent.
pub fn optional<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    match blank_as_none(deserializer)? {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(D::Error::custom),
    }
}

/// An optional query parameter naming an enum variant as serde spells it; blank is absent.
pub fn optional_variant<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match blank_as_none(deserializer)? {
        None => Ok(None),
        Some(text) => T::deserialize(StringDeserializer::<D::Error>::new(text)).map(Some),
    }
}

/// The parameter's text, trimmed; `None` when absent or blank. A NUL is refused here,
/// naming the parameter, rather than by Postgres, which cannot store one.
fn blank_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if text.contains('\0') {
        return Err(D::Error::custom("must not contain a NUL character"));
    }
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}
