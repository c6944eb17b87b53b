//! One HTTP/1.1 connection, driven by the task whose request it carries.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker, ready};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::site::reply;
use super::{Cause, Reply};

/// A connection and the half that drives it. Nothing polls an idle one; the
/// request that takes it next polls it along with its own exchange.
pub(super) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Connection<TokioIo<Stream>, Full<Bytes>>,
    pub(super) idle_since: std::time::Instant,
}

/// How an exchange on a connection ended.
pub(super) enum Exchanged {
    /// A whole answer; `reusable` when the connection can carry another.
    Answered { reply: Reply, reusable: bool },
    /// The connection was closed before the request left: it comes back.
    Unsent(Request<Full<Bytes>>, Cause),
    /// The connection failed after the request may have left.
    Lost(Cause),
}

impl Conn {
    pub(super) async fn handshake(stream: Stream) -> hyper::Result<Self> {
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Self {
            sender,
            driver,
            idle_since: std::time::Instant::now(),
        })
    }

    /// Whether an idle connection is still open: one poll, which also reads a
    /// close the server sent while it was idle.
    pub(super) fn open(&mut self) -> bool {
        if self.sender.is_closed() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        self.driver.poll_without_shutdown(&mut cx).is_pending()
    }

    /// Sends `request` and reads the whole answer, driving the connection
    /// meanwhile. The connection is polled once more after the answer, so a
    /// keep-alive connection settles and one the server closes is seen closed.
    pub(super) async fn exchange(&mut self, request: Request<Full<Bytes>>) -> Exchanged {
        let Self { sender, driver, .. } = self;
        let mut driven_out = false;
        let mut work = pin!(answer(sender, request));
        poll_fn(|cx| {
            let mut drive = |cx: &mut Context<'_>| {
                if !driven_out && driver.poll_without_shutdown(cx).is_ready() {
                    driven_out = true;
                }
            };
            drive(cx);
            let exchanged = ready!(work.as_mut().poll(cx));
            drive(cx);
            Poll::Ready(match exchanged {
                Exchanged::Answered { reply, .. } => Exchanged::Answered {
                    reply,
                    reusable: !driven_out,
                },
                other => other,
            })
        })
        .await
    }
}

/// The request's side of an exchange: wait for the connection, send, read.
async fn answer(sender: &mut SendRequest<Full<Bytes>>, request: Request<Full<Bytes>>) -> Exchanged {
    if let Err(error) = sender.ready().await {
        return Exchanged::Unsent(request, error.into());
    }
    let response = match sender.try_send_request(request).await {
        Ok(response) => response,
        Err(mut error) => {
            return match error.take_message() {
                Some(request) => Exchanged::Unsent(request, error.into_error().into()),
                None => Exchanged::Lost(error.into_error().into()),
            };
        }
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(body) => Exchanged::Answered {
            reply: reply(&parts, body.to_bytes()),
            reusable: true,
        },
        Err(error) => Exchanged::Lost(error.into()),
    }
}

/// A TCP stream, with TLS or without.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(tcp) => tcp.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
