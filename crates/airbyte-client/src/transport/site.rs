//! [`Site`]: one origin of Airbyte's (scheme, host, port) and a root path on
//! it, parsed once, with the pool of its idle connections.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{Request, Uri};
use http_body_util::Full;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use url::{Position, Url};

use super::conn::{Conn, Exchanged, Stream};
use super::pool::{self, Pool};
use super::{Cause, Failure, Outgoing, Reply, Step};

const USER_AGENT_VALUE: &str = concat!("airlock-airbyte-client/", env!("CARGO_PKG_VERSION"));

/// Where one root's requests go. Requests to the same `Site` share its
/// connections; the public API and the Configuration API are two sites even
/// on one origin.
pub(crate) struct Site {
    /// The root as configured, without a trailing slash, for display.
    root: String,
    /// The root's path without a trailing slash; every target starts with it.
    path: String,
    /// The host to connect to: a name, or an address without brackets.
    host: String,
    port: u16,
    /// The `host` header: the host and any port that is not the scheme's.
    authority: HeaderValue,
    tls: Option<Tls>,
    connect_timeout: Duration,
    pool: Arc<Pool>,
}

#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("root", &self.root)
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Site {
    /// A site for `url` (http or https, no credentials: the caller checked).
    /// `tls` makes the TLS settings the first time an https site needs them.
    pub(crate) fn new(
        url: &Url,
        connect_timeout: Duration,
        tls: impl FnOnce() -> Result<Arc<rustls::ClientConfig>, String>,
    ) -> Result<Self, String> {
        let name = url
            .host_str()
            .ok_or_else(|| "the Airbyte URL has no host".to_owned())?;
        // What to connect to: an IPv6 address without its brackets.
        let host = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| "the Airbyte URL has no port".to_owned())?;
        let authority = match url.port() {
            Some(port) => format!("{name}:{port}"),
            None => name.to_owned(),
        };
        let authority = HeaderValue::try_from(authority)
            .map_err(|_| "the Airbyte URL's host cannot be a header".to_owned())?;
        let tls = match url.scheme() {
            "https" => Some(Tls {
                connector: tokio_rustls::TlsConnector::from(tls()?),
                name: ServerName::try_from(host.clone())
                    .map_err(|_| "the Airbyte URL's host is not a TLS server name".to_owned())?,
            }),
            _ => None,
        };
        let root = url.as_str().trim_end_matches('/').to_owned();
        let path = url.path().trim_end_matches('/').to_owned();
        Ok(Self {
            root,
            path,
            host,
            port,
            authority,
            tls,
            connect_timeout,
            pool: Pool::new(pool::IDLE_TIMEOUT),
        })
    }

    /// The same site keeping idle connections for `idle_timeout` (swept
    /// every sixth of it) instead of [`pool::IDLE_TIMEOUT`].
    #[cfg(test)]
    pub(super) fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.pool = Pool::new(idle_timeout);
        self
    }

    /// How many connections are idle.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.pool.idle()
    }

    /// The root as configured, without a trailing slash.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The target of `path` (and query) under this site's root.
    pub(crate) fn target(&self, path: &str) -> String {
        let mut target = String::with_capacity(self.path.len() + path.len());
        target.push_str(&self.path);
        target.push_str(path);
        target
    }

    /// Sends one request and reads the whole answer, within `timeout` from
    /// the start (connecting included) to the answer's last byte.
    pub(crate) async fn send(
        &self,
        outgoing: Outgoing,
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        let deadline = Instant::now() + timeout;
        let mut request = self.request(outgoing)?;
        loop {
            let (mut conn, reused) = match self.pool.checkout() {
                Some(conn) => (conn, true),
                // Boxed: a new connection is rare, and its future is the
                // largest part of this one's, which every request moves.
                None => (Box::pin(self.connect(deadline)).await?, false),
            };
            let exchanged = tokio::time::timeout_at(deadline, conn.exchange(request))
                .await
                .map_err(|_| Failure::TimedOut)?;
            match exchanged {
                Exchanged::Answered { reply, reusable } => {
                    if reusable {
                        self.pool.put(conn);
                    }
                    return Ok(reply);
                }
                // A reused connection that turned out closed before the request
                // left: the request goes on another.
                Exchanged::Unsent(returned, _) if reused => request = returned,
                Exchanged::Unsent(_, cause) => return Err(Failure::NotSent(cause)),
                Exchanged::Lost(cause) => return Err(Failure::Lost(cause)),
            }
        }
    }

    /// The hyper request: the target as an origin-form URI, the request's
    /// own headers, `host` always the site's, and `user-agent` unless the
    /// request has one.
    fn request(&self, outgoing: Outgoing) -> Result<Request<Full<Bytes>>, Failure> {
        let Outgoing {
            method,
            target,
            headers,
            body,
        } = outgoing;
        let uri = match Uri::try_from(target.as_str()) {
            Ok(uri) => uri,
            Err(_) => encoded(&target)?,
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let all = request.headers_mut();
        all.insert(HOST, self.authority.clone());
        if !all.contains_key(USER_AGENT) {
            all.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        }
        Ok(request)
    }

    /// A new connection, within the connect timeout and the attempt's deadline.
    async fn connect(&self, deadline: Instant) -> Result<Box<Conn>, Failure> {
        let limit = deadline.min(Instant::now() + self.connect_timeout);
        match tokio::time::timeout_at(limit, self.open()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(cause)) => Err(Failure::NotSent(cause)),
            Err(_) => Err(Failure::NotSent(Step::cause("connect")("timed out".into()))),
        }
    }

    async fn open(&self) -> Result<Box<Conn>, Cause> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| Step::cause("connect")(error.into()))?;
        tcp.set_nodelay(true)
            .map_err(|error| Step::cause("connect")(error.into()))?;
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(tls) => Stream::Tls(Box::new(
                tls.connector
                    .connect(tls.name.clone(), tcp)
                    .await
                    .map_err(|error| Step::cause("TLS handshake")(error.into()))?,
            )),
        };
        Conn::handshake(stream)
            .await
            .map(Box::new)
            .map_err(|error| Step::cause("HTTP handshake")(error.into()))
    }
}

/// A target with characters a URI cannot carry as they are, percent-encoded
/// as a URL parser does (which is what reqwest did with every target).
fn encoded(target: &str) -> Result<Uri, Failure> {
    let invalid = || Failure::Invalid("the request path is not a valid URI".to_owned());
    let url = Url::parse(&format!("http://localhost{target}")).map_err(|_| invalid())?;
    Uri::try_from(&url[Position::BeforePath..]).map_err(|_| invalid())
}

/// The parts of an answer the client reads, and its whole body.
pub(super) fn reply(parts: &http::response::Parts, body: Bytes) -> Reply {
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
    };
    Reply {
        status: parts.status.as_u16(),
        content_type: header(CONTENT_TYPE).map(str::to_owned),
        retry_after: header(RETRY_AFTER)
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs),
        body,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    fn site(url: &str) -> Site {
        Site::new(&url.parse().unwrap(), Duration::from_secs(1), || {
            Err("no TLS in this test".to_owned())
        })
        .unwrap()
    }

    #[test]
    fn parses_the_origin_once() {
        let plain = site("http://airbyte:8000/api/public/v1/");
        assert_eq!(plain.root(), "http://airbyte:8000/api/public/v1");
        assert_eq!(plain.target("/jobs?limit=1"), "/api/public/v1/jobs?limit=1");
        assert_eq!((plain.host.as_str(), plain.port), ("airbyte", 8000));
        assert_eq!(plain.authority, "airbyte:8000");
        let default_port = site("http://airbyte/v1");
        assert_eq!(default_port.port, 80);
        assert_eq!(default_port.authority, "airbyte");
        let v6 = site("http://[::1]:8000/");
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.authority, "[::1]:8000");
        assert_eq!(v6.target("/health"), "/health");
        let error = Site::new(
            &"https://api.airbyte.com/v1".parse().unwrap(),
            Duration::from_secs(1),
            || Err("no TLS here".to_owned()),
        )
        .unwrap_err();
        assert_eq!(error, "no TLS here");
    }

    #[test]
    fn host_is_the_site_s_and_user_agent_the_request_s_if_it_has_one() {
        let site = site("http://airbyte:8000/api/public/v1");
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static("airbyte-api-python"));
        headers.insert(HOST, HeaderValue::from_static("elsewhere.example"));
        let request = site
            .request(Outgoing {
                method: http::Method::GET,
                target: site.target("/jobs"),
                headers,
                body: Bytes::new(),
            })
            .unwrap();
        assert_eq!(request.uri(), "/api/public/v1/jobs");
        assert_eq!(request.headers()[HOST], "airbyte:8000");
        assert_eq!(request.headers()[USER_AGENT], "airbyte-api-python");
        assert_eq!(request.headers().len(), 2);
    }

    #[test]
    fn targets_a_uri_cannot_carry_are_percent_encoded() {
        let site = site("http://airbyte:8000/api/public/v1");
        let request = site
            .request(Outgoing {
                method: http::Method::GET,
                target: site.target("/jobs?name=a b\"{}"),
                headers: HeaderMap::new(),
                body: Bytes::new(),
            })
            .unwrap();
        assert_eq!(request.uri(), "/api/public/v1/jobs?name=a%20b%22{}");
        assert_eq!(request.headers()[USER_AGENT], USER_AGENT_VALUE);
    }
}
