//! How the node RPC reaches other hosts: a [`Network`] opens a byte stream
//! to `host:port`. Production dials TCP; a simulation dials its own
//! simulated sockets. Everything above the stream (HTTP, signing, timeouts)
//! is the same code in both.

use futures::future::BoxFuture;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte stream to another host.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Opens streams to `host:port` addresses.
pub trait Dial: Send + Sync + 'static {
    /// A stream to `addr`, or why there is none.
    fn dial(&self, addr: String) -> BoxFuture<'static, std::io::Result<Box<dyn Io>>>;
}

/// The way out of this host. Cheap to clone.
#[derive(Clone)]
pub struct Network(Arc<dyn Dial>);

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Network")
    }
}

impl Network {
    /// TCP, with Nagle off (RPCs are request/response).
    pub fn tcp() -> Self {
        Self(Arc::new(Tcp))
    }

    /// Any other way of dialing (a simulated network).
    pub fn new(dial: impl Dial) -> Self {
        Self(Arc::new(dial))
    }

    pub(crate) fn connector(&self) -> Connector {
        Connector(self.0.clone())
    }
}

struct Tcp;

impl Dial for Tcp {
    fn dial(&self, addr: String) -> BoxFuture<'static, std::io::Result<Box<dyn Io>>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    }
}

/// The hyper connector over a [`Network`]: takes the authority of the URI.
#[derive(Clone)]
pub(crate) struct Connector(Arc<dyn Dial>);

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, std::io::Result<TokioIo<Stream>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dial = self.0.clone();
        Box::pin(async move {
            let addr = uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?;
            let stream = tokio::time::timeout(crate::client::CONNECT_TIMEOUT, dial.dial(addr))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            Ok(TokioIo::new(Stream(stream)))
        })
    }
}

/// A dialed stream, as hyper wants it.
pub(crate) struct Stream(Box<dyn Io>);

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
