//! Cursor pagination for list endpoints: `?limit=&cursor=` in, and
//! `{"items": [...], "next_cursor": "..."}` out.
//!
//! A cursor is opaque to clients: a version byte and the last id of the
//! previous page, base64url-encoded. The version byte lets the encoding
//! change later without breaking clients that hold old cursors mid-listing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::Error;
use crate::store::{Page, PageRequest};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
const CURSOR_VERSION: u8 = 1;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page (opaque; anything else is 422).
    #[param(min_length = 1, max_length = 200)]
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn page(&self) -> Result<PageRequest, Error> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(PageRequest { after, limit })
    }
}

pub fn encode_cursor(id: Uuid) -> String {
    let mut bytes = [0u8; 17];
    bytes[0] = CURSOR_VERSION;
    bytes[1..].copy_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode_cursor(text: &str) -> Result<Uuid, Error> {
    let invalid = || Error::invalid("cursor", "is not a cursor this server issued; start again without it");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    match bytes.split_first() {
        Some((&CURSOR_VERSION, id)) if id.len() == 16 => Uuid::from_slice(id).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageBody<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> From<Page<T>> for PageBody<T> {
    fn from(page: Page<T>) -> Self {
        Self { items: page.items, next_cursor: page.next.map(encode_cursor) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
        for bad in ["", "abc", "!!!!", &URL_SAFE_NO_PAD.encode([2u8; 17]), &URL_SAFE_NO_PAD.encode([1u8; 5])]
        {
            assert!(
                matches!(decode_cursor(bad), Err(Error::Invalid { ref field, .. }) if field == "cursor"),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_are_bounded() {
        let p = |limit| ListParams { limit: Some(limit), cursor: None }.page();
        assert!(p(0).is_err());
        assert!(p(201).is_err());
        assert_eq!(p(200).unwrap().limit, 200);
        assert_eq!(ListParams::default().page().unwrap().limit, DEFAULT_LIMIT);
    }
}
