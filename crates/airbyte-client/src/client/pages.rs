//! Lists: one page of a list call, and [`Pages`], which follows the pages of a
//! list safely.

use std::fmt;
use std::marker::PhantomData;

use http::Method;
use serde::de::DeserializeOwned;

use super::AirbyteClient;
use crate::error::{Error, Result};
use crate::models::Page;

/// Largest page Airbyte serves; the pagers ask for it unless told otherwise.
const MAX_PAGE_SIZE: u32 = 100;
/// A pager that has read this many pages assumes the server ignores `offset`.
const MAX_PAGES: u32 = 10_000;

impl AirbyteClient {
    /// One page of a list: the filter query, plus `limit` and `offset` when given.
    pub(super) async fn list_page<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: &'static str,
        mut query: Vec<(&'static str, String)>,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Result<Page<T>> {
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(offset) = offset {
            query.push(("offset", offset.to_string()));
        }
        let mut call = self.call(Method::GET, route, path.to_owned());
        call.query = query;
        self.call_json(call).await
    }
}

/// Follows the pages of a list. Stops after an empty page or one shorter than the
/// page size, whatever `next` says (Airbyte sends `next` even on a short last page).
pub struct Pages<T> {
    client: AirbyteClient,
    route: &'static str,
    path: &'static str,
    query: Vec<(&'static str, String)>,
    limit: u32,
    offset: u32,
    pages: u32,
    done: bool,
    _items: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Pages<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pages")
            .field("route", &self.route)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Pages<T> {
    pub(super) fn new(
        client: AirbyteClient,
        route: &'static str,
        path: &'static str,
        query: Vec<(&'static str, String)>,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Self {
        Self {
            client,
            route,
            path,
            query,
            limit: limit.unwrap_or(MAX_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE),
            offset: offset.unwrap_or(0),
            pages: 0,
            done: false,
            _items: PhantomData,
        }
    }

    /// The next page's items, or `None` when the list is exhausted.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>> {
        if self.done {
            return Ok(None);
        }
        if self.pages >= MAX_PAGES {
            self.done = true;
            return Err(Error::InvalidResponse(format!(
                "{}: more than {MAX_PAGES} pages; is the server ignoring offset?",
                self.route
            )));
        }
        let page: Page<T> = self
            .client
            .list_page(
                self.route,
                self.path,
                self.query.clone(),
                Some(self.limit),
                Some(self.offset),
            )
            .await?;
        self.pages += 1;
        let count = u32::try_from(page.data.len()).unwrap_or(u32::MAX);
        if count < self.limit {
            self.done = true;
        }
        if count == 0 {
            return Ok(None);
        }
        self.offset = self.offset.saturating_add(count);
        Ok(Some(page.data))
    }

    /// All remaining items.
    pub async fn collect_all(mut self) -> Result<Vec<T>> {
        let mut items = Vec::new();
        while let Some(page) = self.next_page().await? {
            items.extend(page);
        }
        Ok(items)
    }
}
