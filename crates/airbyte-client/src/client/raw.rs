//! [`AirbyteClient::send_raw`], the passthrough behind the Airbyte-compatible
//! front, and its guards: the path stays under the public API root, the caller's
//! credentials and hop-by-hop headers are dropped, and logs and metrics see a
//! route template rather than the path.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode};
use uuid::Uuid;

use super::AirbyteClient;
use crate::error::{Error, Result};
use crate::retry::Idempotency;

/// The answer of [`AirbyteClient::send_raw`], whatever its status (except 401,
/// which is Airlock's own problem and becomes [`Error::Auth`]).
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Airbyte's status.
    pub status: StatusCode,
    /// Airbyte's content type, if any.
    pub content_type: Option<String>,
    /// The body, unchanged.
    pub body: Bytes,
}

impl AirbyteClient {
    /// Sends a request as it comes, with Airlock's credential, and returns Airbyte's
    /// answer as it comes: for the Airbyte-compatible front.
    ///
    /// `path_and_query` is relative to the public API root (`/jobs?limit=5`). The
    /// caller's `authorization`, cookies, `accept-encoding` and hop-by-hop headers
    /// are dropped. A 401
    /// refreshes the token and is sent once more; a 401 after that is
    /// [`Error::Auth`], never passed through. Safe methods (GET, HEAD, OPTIONS) are
    /// retried like typed reads; every other method only when nothing was sent or on
    /// 429, and a failure after sending is [`Error::Ambiguous`]. Other statuses,
    /// including 5xx, come back as a [`RawResponse`].
    pub async fn send_raw(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<RawResponse> {
        check_raw_path(path_and_query)?;
        let path = path_and_query
            .split_once('?')
            .map_or(path_and_query, |(path, _)| path);
        let idempotency = if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) {
            Idempotency::Idempotent
        } else {
            Idempotency::NonIdempotent
        };
        let forwarded = forwardable_headers(headers);
        let mut call = self.call(
            method.clone(),
            raw_route(&method, path),
            path_and_query.to_owned(),
        );
        call.headers = Some(&forwarded);
        call.body = (!body.is_empty()).then(|| body.into());
        call.idempotency = idempotency;
        let outcome = self.execute(&call).await?;
        let status = StatusCode::from_u16(outcome.reply.status)
            .map_err(|_| Error::InvalidResponse("invalid status code".to_owned()))?;
        Ok(RawResponse {
            status,
            content_type: outcome.reply.content_type,
            body: outcome.reply.body,
        })
    }
}

/// The route template of a raw call: the method and the path with every id
/// segment (a UUID or a number) replaced by `{id}`, so that logs and metrics
/// name a handful of routes rather than one per resource.
fn raw_route(method: &Method, path: &str) -> String {
    let mut template = String::with_capacity(method.as_str().len() + 1 + path.len());
    template.push_str(method.as_str());
    template.push(' ');
    for (index, segment) in path.split('/').enumerate() {
        if index > 0 {
            template.push('/');
        }
        let numeric = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
        if numeric || Uuid::try_parse(segment).is_ok() {
            template.push_str("{id}");
        } else {
            template.push_str(segment);
        }
    }
    template
}

/// Refuses raw paths that could leave the public API root or smuggle a request.
fn check_raw_path(path_and_query: &str) -> Result<()> {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(path, _)| path);
    let bad = !path.starts_with('/')
        || path.starts_with("//")
        || path_and_query.contains('#')
        || path_and_query
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
        || path.split('/').any(is_dot_segment)
        || path
            .as_bytes()
            .windows(3)
            .any(|three| three.eq_ignore_ascii_case(b"%2f"));
    if bad {
        return Err(Error::InvalidInput(
            "the raw path must be an absolute path under the public API root".to_owned(),
        ));
    }
    Ok(())
}

/// Whether a segment is `.` or `..`, with any dot written as `%2e`.
fn is_dot_segment(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    matches!(dots, 1 | 2)
}

/// The caller's headers minus credentials, hop-by-hop headers and
/// `accept-encoding` (the answer goes back without its content encoding, so it
/// must come uncompressed).
fn forwardable_headers(headers: &HeaderMap) -> HeaderMap {
    const DROPPED: [header::HeaderName; 12] = [
        header::ACCEPT_ENCODING,
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::COOKIE,
        header::HOST,
        header::CONTENT_LENGTH,
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::EXPECT,
    ];
    let mut forwarded = headers.clone();
    for name in &DROPPED {
        forwarded.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        forwarded.remove(name);
    }
    forwarded
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

    #[test]
    fn raw_paths_stay_under_the_root() {
        for good in [
            "/jobs",
            "/jobs?limit=5&workspaceIds=a",
            "/connections/abc",
            "/a/.../b",
            "/a/.x",
            "/a/%2e%2e%2e",
        ] {
            assert!(check_raw_path(good).is_ok(), "{good}");
        }
        for bad in [
            "jobs",
            "//evil.example/jobs",
            "/../v1/x",
            "/a/%2e%2E/b",
            "/a%2Fb",
            "/jobs#x",
            "/jobs HTTP/1.1\r\nX: y",
            "/a/./b",
            "/a/.%2E",
            "/a/%2e",
        ] {
            assert!(check_raw_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_routes_are_templates() {
        let id = "7d5e8b1c-7f0e-4f8a-9a43-1f1c2b3d4e5f";
        assert_eq!(
            raw_route(&Method::GET, &format!("/connections/{id}")),
            "GET /connections/{id}"
        );
        assert_eq!(raw_route(&Method::DELETE, "/jobs/42"), "DELETE /jobs/{id}");
        assert_eq!(raw_route(&Method::GET, "/jobs"), "GET /jobs");
        assert_eq!(
            raw_route(&Method::PATCH, &format!("/workspaces/{id}/x")),
            "PATCH /workspaces/{id}/x"
        );
    }

    #[test]
    fn raw_headers_lose_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer caller"),
        );
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let forwarded = forwardable_headers(&headers);
        assert_eq!(forwarded.len(), 1);
        assert!(forwarded.contains_key(header::CONTENT_TYPE));
    }
}
