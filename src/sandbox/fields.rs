//! Request bodies: a JSON object read field by field, with Laravel-style 422
//! messages that name the field.

use serde_json::{Map, Value};

use super::state::{find_item, find_template, CatalogItem, Template};
use super::{invalid, ApiError};

const DEFAULT_TRIAL_DAYS: u64 = 14;

/// A JSON object body, read field by field with Laravel-style messages.
pub(super) struct Fields(Map<String, Value>);

impl Fields {
    pub(super) fn parse(body: &[u8]) -> Result<Fields, ApiError> {
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(Fields(map)),
            Ok(_) => Err(invalid("The request body must be a JSON object.")),
            Err(e) => Err(invalid(format!("Malformed JSON body: {e}"))),
        }
    }

    /// The field, or `None` when absent, null or `""` (as Laravel reads them).
    fn get(&self, field: &str) -> Option<&Value> {
        self.0
            .get(field)
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
    }

    pub(super) fn required<T>(field: &str, value: Option<T>) -> Result<T, ApiError> {
        value.ok_or_else(|| invalid(format!("The {field} field is required.")))
    }

    pub(super) fn opt_text(&self, field: &str) -> Result<Option<String>, ApiError> {
        self.get(field)
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| invalid(format!("The {field} must be a string.")))
            })
            .transpose()
    }

    pub(super) fn text(&self, field: &str) -> Result<String, ApiError> {
        Self::required(field, self.opt_text(field)?)
    }

    pub(super) fn email(&self, field: &str) -> Result<String, ApiError> {
        let email = self.text(field)?;
        match email.split_once('@') {
            Some((user, host))
                if !user.is_empty() && !host.is_empty() && !email.contains(char::is_whitespace) =>
            {
                Ok(email)
            }
            _ => Err(invalid(format!(
                "The {field} must be a valid email address."
            ))),
        }
    }

    pub(super) fn opt_choice(
        &self,
        field: &str,
        allowed: &[&str],
    ) -> Result<Option<String>, ApiError> {
        match self.opt_text(field)? {
            Some(value) if !allowed.contains(&value.as_str()) => {
                Err(invalid(format!("The selected {field} is invalid.")))
            }
            value => Ok(value),
        }
    }

    /// A plan or add-on id from `items`.
    pub(super) fn item(
        &self,
        field: &str,
        items: &'static [CatalogItem],
    ) -> Result<&'static CatalogItem, ApiError> {
        let id = self.text(field)?;
        find_item(items, &id).ok_or_else(|| invalid(format!("The selected {field} is invalid.")))
    }

    pub(super) fn opt_int(&self, field: &str, min: u64) -> Result<Option<u64>, ApiError> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        if value.as_i64().is_none() && value.as_u64().is_none() {
            return Err(invalid(format!("The {field} must be an integer.")));
        }
        match value.as_u64() {
            Some(n) if n >= min => Ok(Some(n)),
            _ => Err(invalid(format!("The {field} must be at least {min}."))),
        }
    }

    pub(super) fn int(&self, field: &str, min: u64) -> Result<u64, ApiError> {
        Self::required(field, self.opt_int(field, min)?)
    }

    pub(super) fn positive_number(&self, field: &str) -> Result<f64, ApiError> {
        let value = Self::required(field, self.get(field))?;
        match value.as_f64() {
            None => Err(invalid(format!("The {field} must be a number."))),
            Some(n) if n <= 0.0 => Err(invalid(format!("The {field} must be greater than 0."))),
            Some(n) => Ok(n),
        }
    }

    /// `trial_days` (default 14), shared by both creates.
    pub(super) fn trial_days(&self) -> Result<u64, ApiError> {
        Ok(self.opt_int("trial_days", 0)?.unwrap_or(DEFAULT_TRIAL_DAYS))
    }

    /// `template_ns`: a template of `/partner/templates`, when given.
    pub(super) fn opt_template(&self) -> Result<Option<&'static Template>, ApiError> {
        self.opt_text("template_ns")?
            .map(|id| {
                find_template(&id).ok_or_else(|| invalid("The selected template_ns is invalid."))
            })
            .transpose()
    }
}
