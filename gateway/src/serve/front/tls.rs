//! TLS terminated by the front itself, with a rustls configuration the
//! gateway builds (`tls::Tls::server_config`): Pingora 0.9's TLS listener
//! builds its own and offers no way to set the session store or the
//! ticket encrypter, and its default keeps 256 sessions, so resumption
//! stopped working with more than about a hundred returning clients.
//!
//! The handshake runs on the connection's task; the decrypted stream is
//! wrapped in Pingora's stream traits so the fast path, the proxy
//! pipeline and HTTP/2 (by ALPN) take it like any other.

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client connection after its TLS handshake.
#[derive(Debug)]
pub struct ServerTls {
    inner: TlsStream<Stream>,
    alpn: Option<ALPN>,
}

/// The handshake on `stream`, within `timeout`; `None` when it failed,
/// timed out or the client went away.
pub async fn accept(acceptor: &TlsAcceptor, stream: Stream, timeout: Duration) -> Option<Stream> {
    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return None;
        }
    };
    let alpn = match tls.get_ref().1.alpn_protocol() {
        Some(b"h2") => Some(ALPN::H2),
        Some(b"http/1.1") => Some(ALPN::H1),
        _ => None,
    };
    Some(Box::new(ServerTls { inner: tls, alpn }))
}

impl AsyncRead for ServerTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for ServerTls {
    async fn shutdown(&mut self) {
        // close_notify, then the socket's own shutdown.
        let _ = AsyncWriteExt::shutdown(&mut self.inner).await;
    }
}

impl UniqueID for ServerTls {
    fn id(&self) -> UniqueIDType {
        self.inner.get_ref().0.id()
    }
}

impl Ssl for ServerTls {
    fn get_ssl(&self) -> Option<&TlsRef> {
        None
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        None
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for ServerTls {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_ref().0.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_ref().0.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_ref().0.get_write_pending_time()
    }
}

impl GetProxyDigest for ServerTls {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_ref().0.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.get_mut().0.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for ServerTls {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_ref().0.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.get_mut().0.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for ServerTls {}
