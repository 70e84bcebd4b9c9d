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
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{Peek, Shutdown, Ssl, Stream, ALPN, IO};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::super::wrapped_stream::stream_traits;

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

impl ServerTls {
    fn socket(&self) -> &dyn IO {
        &**self.inner.get_ref().0
    }

    fn socket_mut(&mut self) -> &mut dyn IO {
        &mut **self.inner.get_mut().0
    }
}

stream_traits!(ServerTls);

#[async_trait]
impl Shutdown for ServerTls {
    async fn shutdown(&mut self) {
        // close_notify, then the socket's own shutdown.
        let _ = AsyncWriteExt::shutdown(&mut self.inner).await;
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

#[async_trait]
impl Peek for ServerTls {}
