//! The connection handling, against a bare HTTP/1.1 server whose every
//! connection and request the tests count.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::conn::{Conn, Exchanged, Stream};
use super::{Failure, Outgoing, Site};

/// How the server treats each connection.
#[derive(Clone, Copy)]
struct Script {
    /// Requests answered on one connection before the server closes it.
    per_connection: usize,
    /// Whether answers say `connection: close` (the socket stays open).
    say_close: bool,
    /// Whether the server reads a request and closes without answering.
    drop_requests: bool,
    /// How long the server waits before it closes, after the last answer.
    linger: Duration,
}

const KEEP_ALIVE: Script = Script {
    per_connection: usize::MAX,
    say_close: false,
    drop_requests: false,
    linger: Duration::ZERO,
};

struct Server {
    url: url::Url,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// Connections the client closed.
    hung_up: Arc<AtomicUsize>,
}

async fn serve(script: Script) -> Server {
    serve_on(script, None).await
}

/// A server for `script`, over TLS with `tls`; every accepted connection is
/// counted, a failed TLS handshake too.
async fn serve_on(script: Script, tls: Option<tokio_rustls::TlsAcceptor>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = match tls {
        Some(_) => format!("https://localhost:{port}/api/public/v1"),
        None => format!("http://127.0.0.1:{port}/api/public/v1"),
    };
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let hung_up = Arc::new(AtomicUsize::new(0));
    let (accepted, counts) = (
        Arc::clone(&connections),
        (Arc::clone(&requests), Arc::clone(&hung_up)),
    );
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let (tls, counts) = (tls.clone(), counts.clone());
            tokio::spawn(async move {
                match tls {
                    None => connection(socket, script, counts).await,
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(socket).await {
                            connection(tls, script, counts).await;
                        }
                    }
                }
            });
        }
    });
    Server {
        url: url.parse().unwrap(),
        connections,
        requests,
        hung_up,
    }
}

/// Serves one connection as `script` says, counting its requests, and the
/// connection if the client closes it.
async fn connection<S>(
    mut socket: S,
    script: Script,
    (requests, hung_up): (Arc<AtomicUsize>, Arc<AtomicUsize>),
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buffer = Vec::new();
    for _ in 0..script.per_connection {
        if !read_request(&mut socket, &mut buffer).await {
            hung_up.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let number = requests.fetch_add(1, Ordering::SeqCst) + 1;
        if script.drop_requests {
            return;
        }
        let body = format!("{{\"request\":{number}}}");
        let close = if script.say_close {
            "connection: close\r\n"
        } else {
            ""
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{close}content-length: {}\r\n\r\n{body}",
            body.len()
        );
        if socket.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
    // Closed after `linger`: the client sees the close while it holds the
    // connection idle.
    tokio::time::sleep(script.linger).await;
}

/// Reads one request (head and `content-length` body) off the socket.
async fn read_request<S: AsyncRead + Unpin>(socket: &mut S, buffer: &mut Vec<u8>) -> bool {
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if buffer.len() >= end + 4 + length {
                buffer.drain(..end + 4 + length);
                return true;
            }
        }
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(read) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
}

fn site(server: &Server) -> Site {
    Site::new(&server.url, Duration::from_secs(2), || {
        Err("no TLS in these tests".to_owned())
    })
    .unwrap()
}

fn request(site: &Site, method: Method) -> Outgoing {
    Outgoing {
        target: site.target("/jobs"),
        body: if method == Method::POST {
            Bytes::from_static(b"{}")
        } else {
            Bytes::new()
        },
        method,
        headers: HeaderMap::new(),
    }
}

async fn send(site: &Site, method: Method) -> Result<String, Failure> {
    let reply = site
        .send(request(site, method), Duration::from_secs(2))
        .await?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    Ok(String::from_utf8(reply.body.to_vec()).unwrap())
}

#[tokio::test]
async fn requests_one_after_another_share_one_connection() {
    let server = serve(KEEP_ALIVE).await;
    let site = site(&server);
    for number in 1..=5 {
        let body = send(&site, Method::GET).await.unwrap();
        assert_eq!(body, format!("{{\"request\":{number}}}"));
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn requests_at_once_open_connections_that_are_kept_for_later() {
    let server = serve(KEEP_ALIVE).await;
    let site = site(&server);
    let (a, b, c, d) = tokio::join!(
        send(&site, Method::GET),
        send(&site, Method::GET),
        send(&site, Method::GET),
        send(&site, Method::GET),
    );
    for answer in [a, b, c, d] {
        answer.unwrap();
    }
    let opened = server.connections.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&opened),
        "{opened} connections for 4 requests at once"
    );
    for _ in 0..4 {
        send(&site, Method::GET).await.unwrap();
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), opened);
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_not_used_again() {
    let server = serve(Script {
        per_connection: 1,
        ..KEEP_ALIVE
    })
    .await;
    let site = site(&server);
    send(&site, Method::GET).await.unwrap();
    // Give the server's close time to arrive.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A POST on the closed connection would be lost or ambiguous; it goes on
    // a new one and is answered.
    let body = send(&site, Method::POST).await.unwrap();
    assert_eq!(body, "{\"request\":2}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn idle_connections_are_closed_once_expired_with_no_request_to_notice() {
    let server = serve(KEEP_ALIVE).await;
    let site = site(&server).with_idle_timeout(Duration::from_millis(300));
    send(&site, Method::GET).await.unwrap();
    assert_eq!(site.idle(), 1);
    // Swept every 50 ms: closed between 300 and 350 ms after its answer.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!((site.idle(), server.hung_up.load(Ordering::SeqCst)), (1, 0));
    tokio::time::sleep(Duration::from_millis(750)).await;
    assert_eq!((site.idle(), server.hung_up.load(Ordering::SeqCst)), (0, 1));
    // The sweep starts again with the next idle connection.
    send(&site, Method::GET).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!((site.idle(), server.hung_up.load(Ordering::SeqCst)), (0, 2));
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connections_the_server_closed_are_let_go_before_they_expire() {
    let server = serve(Script {
        per_connection: 1,
        linger: Duration::from_millis(100),
        ..KEEP_ALIVE
    })
    .await;
    let site = site(&server).with_idle_timeout(Duration::from_secs(3));
    send(&site, Method::GET).await.unwrap();
    assert_eq!(site.idle(), 1);
    // The server closes it after 100 ms; the sweep (every 500 ms) sees that
    // long before the connection would expire, and no request is needed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(site.idle(), 0);
}

#[tokio::test]
async fn an_answer_that_closes_its_connection_leaves_nothing_in_the_pool() {
    let server = serve(Script {
        say_close: true,
        ..KEEP_ALIVE
    })
    .await;
    let site = site(&server);
    for _ in 0..3 {
        send(&site, Method::GET).await.unwrap();
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn failures_say_whether_the_request_left() {
    let server = serve(Script {
        drop_requests: true,
        ..KEEP_ALIVE
    })
    .await;
    let dropping = site(&server);
    let lost = send(&dropping, Method::POST).await.unwrap_err();
    assert!(matches!(lost, Failure::Lost(_)), "{lost:?}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = Server {
        url: format!("http://{}/", closed.local_addr().unwrap())
            .parse()
            .unwrap(),
        connections: Arc::default(),
        requests: Arc::default(),
        hung_up: Arc::default(),
    };
    drop(closed);
    let not_sent = send(&site(&refused), Method::POST).await.unwrap_err();
    assert!(matches!(not_sent, Failure::NotSent(_)), "{not_sent:?}");
    assert!(
        super::describe(match &not_sent {
            Failure::NotSent(cause) => &**cause,
            _ => unreachable!(),
        })
        .starts_with("connect: "),
        "{not_sent:?}"
    );
}

#[tokio::test]
async fn the_deadline_covers_the_whole_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = Vec::new();
        read_request(&mut socket, &mut buffer).await;
        // The head, then a body that never ends.
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let site = Site::new(&url.parse().unwrap(), Duration::from_secs(2), || {
        Err("no TLS".to_owned())
    })
    .unwrap();
    let timed_out = site
        .send(request(&site, Method::GET), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(timed_out, Failure::TimedOut), "{timed_out:?}");
}

#[tokio::test]
async fn an_idle_connection_sees_the_server_s_close() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = Vec::new();
        read_request(&mut socket, &mut buffer).await;
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        // Closed after the client has put the connection away.
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    let tcp = TcpStream::connect(address).await.unwrap();
    let mut conn = Conn::handshake(Stream::Plain(tcp)).await.unwrap();
    let request = http::Request::get("/")
        .header(http::header::HOST, address.to_string())
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let Exchanged::Answered { reply, reusable } = conn.exchange(request).await else {
        panic!("no answer");
    };
    assert_eq!((reply.status, reusable), (200, true));
    assert!(conn.open(), "open while the server keeps it");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!conn.open(), "closed once the server closed it");
}

/// A TLS server for `localhost` whose certificate no system trusts, and
/// client settings that trust it.
async fn serve_tls(script: Script) -> (Server, Arc<rustls::ClientConfig>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let certificate = CertificateDer::from_pem_file(fixture("self-signed-localhost.crt")).unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("self-signed-localhost.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    (serve_on(script, Some(acceptor)).await, Arc::new(client))
}

#[tokio::test]
async fn https_sites_speak_tls_and_keep_their_connections() {
    let (server, trusting) = serve_tls(KEEP_ALIVE).await;
    let site = Site::new(&server.url, Duration::from_secs(2), || Ok(trusting)).unwrap();
    for number in 1..=3 {
        let body = send(&site, Method::GET).await.unwrap();
        assert_eq!(body, format!("{{\"request\":{number}}}"));
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_before_anything_is_sent() {
    let (server, _) = serve_tls(KEEP_ALIVE).await;
    let site = Site::new(&server.url, Duration::from_secs(2), super::tls_settings).unwrap();
    let refused = send(&site, Method::POST).await.unwrap_err();
    let Failure::NotSent(cause) = &refused else {
        panic!("{refused:?}");
    };
    let text = super::describe(&**cause);
    assert!(text.starts_with("TLS handshake: "), "{text}");
    assert!(text.contains("certificate"), "{text}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
}
