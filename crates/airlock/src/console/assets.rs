//! The console's files, built into the binary (no CDN, works offline):
//! hand-written HTML, CSS and JavaScript modules under `assets/`, served
//! with their content type, an `ETag` (a hash of the content, so a new
//! binary's files are fetched again) and a strict Content-Security-Policy.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// No inline script or style, nothing from another origin, not framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name under `/console/assets/` (`index.html` is `/console`).
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($name:literal => $content_type:literal,)*) => {
        &[$(Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("assets/", $name)),
        },)*]
    };
}

/// Every file of the console.
pub const ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "ui.js" => "text/javascript; charset=utf-8",
    "views/login.js" => "text/javascript; charset=utf-8",
    "views/connections.js" => "text/javascript; charset=utf-8",
    "views/board.js" => "text/javascript; charset=utf-8",
    "views/job.js" => "text/javascript; charset=utf-8",
    "views/approvals.js" => "text/javascript; charset=utf-8",
    "views/audit.js" => "text/javascript; charset=utf-8",
    "views/whoami.js" => "text/javascript; charset=utf-8",
    "icon.svg" => "image/svg+xml",
};

/// The file named `name`, if the console has one.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

/// Each file's ETag, computed once.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &airlock_domain::audit::sha256_hex(a.body)[..20]))
            .collect()
    });
    ASSETS
        .iter()
        .position(|a| a.name == asset.name)
        .and_then(|i| tags.get(i))
        .map_or("\"\"", String::as_str)
}

/// Headers every console response carries.
pub fn protect(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

/// The file, or 304 when the browser's copy (`If-None-Match`) is current.
/// Browsers revalidate every time (`no-cache`): cheap, and never stale.
pub fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(tag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    protect(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_small_and_nothing_reaches_another_origin() {
        let total: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(total < 100 * 1024, "the console weighs {total} bytes");
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.body).expect("text");
            for external in ["http://", "https://", "//cdn", "@import"] {
                let hits: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains(external) && !l.contains("http://www.w3.org/2000/svg"))
                    .collect();
                assert!(
                    hits.is_empty(),
                    "{} references `{external}`: {hits:?}",
                    asset.name
                );
            }
            if asset.name.ends_with(".html") {
                assert!(
                    !text.contains("<script>"),
                    "no inline script in {}",
                    asset.name
                );
                assert!(
                    !text.contains(" style="),
                    "no inline style in {}",
                    asset.name
                );
                let inline_handler = text.match_indices(" on").any(|(i, _)| {
                    let rest = &text[i + 3..];
                    let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
                    name > 0 && rest[name..].starts_with('=')
                });
                assert!(!inline_handler, "no inline handlers in {}", asset.name);
            }
        }
    }

    #[test]
    fn etags_differ_per_file_and_304_answers_a_current_copy() {
        let app = find("app.js").expect("app.js");
        let css = find("app.css").expect("app.css");
        assert_ne!(etag(app), etag(css));
        let mut request = HeaderMap::new();
        let first = serve(app, &request);
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(
            first.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(
            first.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .is_ok_and(|v| v.contains("script-src 'self'") && !v.contains("unsafe"))
        );
        request.insert(header::IF_NONE_MATCH, first.headers()[header::ETAG].clone());
        assert_eq!(serve(app, &request).status(), StatusCode::NOT_MODIFIED);
        assert!(find("../Cargo.toml").is_none());
    }
}
