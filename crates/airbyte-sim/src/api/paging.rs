//! Query strings (with repeated keys) and Airbyte's page format.
//!
//! `serde_urlencoded` cannot collect `workspaceIds=a&workspaceIds=b`, so queries are
//! parsed here into their pairs. Pages are `{"data","next","previous"}` with
//! absolute URLs and Airbyte's quirk: `next` is present whenever the page is not
//! empty, even when it is the last one.

use axum::http::{HeaderMap, Uri, header};
use serde::Serialize;
use uuid::Uuid;

use crate::api::error::ApiError;
use crate::clock::{Millis, parse_instant};

/// A parsed query string, in order, keys repeated as sent.
#[derive(Debug, Default)]
pub(crate) struct Query {
    path: String,
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn from_uri(uri: &Uri) -> Query {
        let pairs = uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query {
            path: uri.path().to_owned(),
            pairs,
        }
    }

    fn binding(&self, name: &str, value: &str, why: &str) -> ApiError {
        ApiError::Binding {
            path: self.path.clone(),
            message: format!(
                "Failed to convert argument [{name}] for value [{value}] due to: {why}"
            ),
        }
    }

    /// The last value of a key; empty values count as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated key; comma-separated values are split too.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub(crate) fn uuids(&self, name: &str) -> Result<Vec<Uuid>, ApiError> {
        self.all(name)
            .into_iter()
            .map(|v| {
                Uuid::parse_str(v)
                    .map_err(|_| self.binding(name, v, &format!("Invalid UUID string: {v}")))
            })
            .collect()
    }

    pub(crate) fn uuid(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.get(name)
            .map(|v| {
                Uuid::parse_str(v)
                    .map_err(|_| self.binding(name, v, &format!("Invalid UUID string: {v}")))
            })
            .transpose()
    }

    pub(crate) fn bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(self.binding(name, v, "not a boolean")),
        }
    }

    pub(crate) fn instant(&self, name: &str) -> Result<Option<Millis>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_instant(v).ok_or_else(|| self.binding(name, v, "not an ISO-8601 date-time"))
            })
            .transpose()
    }

    fn int(&self, name: &str, default: i64, min: i64, max: Option<i64>) -> Result<i64, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let n: i64 = raw
            .parse()
            .map_err(|_| self.binding(name, raw, &format!("For input string: \"{raw}\"")))?;
        if n < min {
            return Err(ApiError::Binding {
                path: self.path.clone(),
                message: format!("{name}: must be greater than or equal to {min}"),
            });
        }
        if let Some(max) = max
            && n > max
        {
            return Err(ApiError::Binding {
                path: self.path.clone(),
                message: format!("{name}: must be less than or equal to {max}"),
            });
        }
        Ok(n)
    }

    /// `limit` (default 20, 1 to 100) and `offset` (default 0).
    pub(crate) fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = self.int("limit", 20, 1, Some(100))?;
        let offset = self.int("offset", 0, 0, Some(i64::from(i32::MAX)))?;
        Ok(PageRequest {
            limit: limit as usize,
            offset: offset as usize,
        })
    }

    /// The query without `limit` and `offset`, re-encoded in order.
    fn without_paging(&self) -> Vec<(&str, &str)> {
        self.pairs
            .iter()
            .filter(|(k, _)| k != "limit" && k != "offset")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// Which slice of a list was asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageRequest {
    pub(crate) limit: usize,
    pub(crate) offset: usize,
}

/// `scheme://host` of the request, as the caller addressed the server.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|s| *s == "https" || *s == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

fn page_url(origin: &str, query: &Query, limit: usize, offset: usize) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in query.without_paging() {
        ser.append_pair(k, v);
    }
    ser.append_pair("limit", &limit.to_string());
    ser.append_pair("offset", &offset.to_string());
    format!("{origin}{}?{}", query.path, ser.finish())
}

/// The slice of `items` that a page request asks for.
pub(crate) fn window<T>(items: &[T], req: PageRequest) -> &[T] {
    let start = req.offset.min(items.len());
    let end = start.saturating_add(req.limit).min(items.len());
    items.get(start..end).unwrap_or_default()
}

/// A page in Airbyte's format.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    data: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<String>,
}

/// A page from the items of the requested window: `next` whenever it holds
/// anything, `previous` whenever it does not start at 0.
pub(crate) fn page<T: Serialize>(
    data: Vec<T>,
    req: PageRequest,
    origin: &str,
    query: &Query,
) -> Page<T> {
    let next =
        (!data.is_empty()).then(|| page_url(origin, query, req.limit, req.offset + req.limit));
    let previous = (req.offset > 0).then(|| {
        page_url(
            origin,
            query,
            req.limit,
            req.offset.saturating_sub(req.limit),
        )
    });
    Page {
        data,
        next,
        previous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::from_uri(&s.parse::<Uri>().expect("uri"))
    }

    #[test]
    fn repeated_and_comma_separated_keys() {
        let query = q("/x?workspaceIds=a&workspaceIds=b,c&limit=5");
        assert_eq!(query.all("workspaceIds"), vec!["a", "b", "c"]);
        assert_eq!(query.get("limit"), Some("5"));
    }

    #[test]
    fn short_last_page_still_has_next_and_empty_page_has_none() {
        let query = q("/api/public/v1/jobs?status=running&limit=2&offset=2");
        let items = [1, 2, 3];
        let req = query.page().expect("valid");
        let body = page(window(&items, req).to_vec(), req, "http://h", &query);
        assert_eq!(body.data, vec![3]);
        assert_eq!(
            body.next.as_deref(),
            Some("http://h/api/public/v1/jobs?status=running&limit=2&offset=4")
        );
        assert_eq!(
            body.previous.as_deref(),
            Some("http://h/api/public/v1/jobs?status=running&limit=2&offset=0")
        );
        let empty = q("/j?offset=4&limit=2");
        let req = empty.page().expect("valid");
        let body = page(window(&items, req).to_vec(), req, "http://h", &empty);
        assert!(body.next.is_none());
    }

    #[test]
    fn limits_are_bounded() {
        assert!(q("/j?limit=101").page().is_err());
        assert!(q("/j?limit=0").page().is_err());
        assert!(q("/j?limit=abc").page().is_err());
        assert!(q("/j?offset=-1").page().is_err());
        assert_eq!(q("/j").page().expect("defaults").limit, 20);
    }
}
