//! Keyset pagination, newest first: a page ends with a cursor naming its last row, and
//! the next page starts strictly after that row. Rows that arrive meanwhile are newer, so
//! they never shift a later page: no gaps, no repeats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::extract::optional;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many rows to answer at most.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200, default = 50)]
    limit: Option<Limit>,
    /// `next_cursor` of the previous page; absent for the first.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
}

impl PageParams {
    pub fn limit(&self) -> i64 {
        self.limit.map_or(DEFAULT_LIMIT, |Limit(limit)| limit)
    }

    /// Rows to fetch: one more than the page holds, to tell whether another page follows.
    pub fn fetch(&self) -> i64 {
        self.limit() + 1
    }

    /// The id the page starts below.
    pub fn before(&self) -> Option<i64> {
        self.cursor.map(|Cursor(id)| id)
    }
}

#[derive(Debug, Clone, Copy)]
struct Limit(i64);

impl FromStr for Limit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.parse() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(Limit(limit)),
            _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
        }
    }
}

/// Opaque to clients; the id of the previous page's last row.
#[derive(Debug, Clone, Copy)]
struct Cursor(i64);

impl FromStr for Cursor {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, &'static str> {
        match text.parse() {
            Ok(id) if id > 0 => Ok(Cursor(id)),
            _ => Err("not a cursor this API gave out"),
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One page of a list, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page from rows fetched with `params.fetch()`, newest first.
    pub fn new(mut rows: Vec<T>, params: &PageParams, id: impl Fn(&T) -> i64) -> Page<T> {
        let more = rows.len() as i64 > params.limit();
        rows.truncate(params.limit() as usize);
        let next_cursor = rows
            .last()
            .filter(|_| more)
            .map(|last| Cursor(id(last)).to_string());
        Page {
            items: rows,
            next_cursor,
        }
    }
}
