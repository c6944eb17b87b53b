//! Talking to a running Airlock: requests with the token, problem+json
//! answers turned into errors.

use super::*;

/// An error answer of the API, as its problem+json body describes it.
#[derive(Debug)]
pub(super) struct ApiProblem {
    pub(super) status: StatusCode,
    pub(super) title: String,
    pub(super) code: String,
    pub(super) detail: Option<String>,
    pub(super) request_id: Option<String>,
}

impl std::fmt::Display for ApiProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (HTTP {}, {})",
            self.title,
            self.status.as_u16(),
            self.code
        )?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, "\n  request_id: {id}")?;
        }
        let hint = match self.status {
            StatusCode::UNAUTHORIZED => {
                Some("set AIRLOCK_TOKEN to a valid access token from your identity provider")
            }
            StatusCode::FORBIDDEN => Some(
                "your identity may not do this here; an administrator can look up the reason by request_id",
            ),
            _ => None,
        };
        if let Some(hint) = hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiProblem {}

/// Airlock over HTTP, with the caller's token.
pub(super) struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    pub(super) fn new(remote: &Remote) -> anyhow::Result<Self> {
        let base = Url::parse(&remote.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .with_context(|| format!("AIRLOCK_URL `{}` is not an http(s) URL", remote.url))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("airlock-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        let token = std::env::var("AIRLOCK_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(Self { http, base, token })
    }

    /// The URL of `segments` (each percent-encoded) under the base.
    pub(super) fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    pub(super) fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request and returns the JSON body of a 2xx answer; any other
    /// answer becomes an [`ApiProblem`].
    pub(super) async fn call(&self, method: Method, url: Url) -> anyhow::Result<Value> {
        self.send(self.request(method, url)).await
    }

    /// [`Client::call`] with a JSON body.
    pub(super) async fn call_with(
        &self,
        method: Method,
        url: Url,
        body: &Value,
    ) -> anyhow::Result<Value> {
        self.send(self.request(method, url).json(body)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let response = check(response).await?;
        response
            .json()
            .await
            .context("Airlock's answer is not JSON")
    }

    pub(super) fn unreachable(&self, error: reqwest::Error) -> anyhow::Error {
        let reason = if error.is_timeout() {
            "timed out".to_owned()
        } else {
            let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
            let mut last = error.to_string();
            while let Some(inner) = source {
                last = inner.to_string();
                source = inner.source();
            }
            last
        };
        anyhow::anyhow!("cannot reach Airlock at {}: {reason}", self.base)
    }
}

/// The response when it is a 2xx; its problem otherwise.
pub(super) async fn check(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let header_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    Err(ApiProblem {
        status,
        title: text("title").unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("Unexpected answer")
                .to_owned()
        }),
        code: text("code").unwrap_or_else(|| "unknown".to_owned()),
        detail: text("detail"),
        request_id: text("request_id").or(header_id),
    }
    .into())
}
