//! A client connection whose reads can be capped, so the proxy pipeline
//! never reads past the request it was handed.
//!
//! When the fast path hands a request to Pingora, Pingora reads the body
//! from the connection and then keeps polling it to notice a client that
//! goes away. Any byte it sees there — a late CRLF, the next pipelined
//! request — is "data after end of body" to it, and the connection dies
//! with a 502. The front knows where a request with a `Content-Length` (or
//! none) ends, so it lets Pingora read exactly the rest of that body and
//! nothing more; later bytes stay in the socket for the front to read when
//! the connection comes back.

use async_trait::async_trait;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{Peek, Shutdown, Ssl, Stream, ALPN, IO};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

use super::wrapped_stream::stream_traits;

/// A connection with an optional read budget.
#[derive(Debug)]
pub struct ReadLimit {
    inner: Stream,
    /// Bytes that may still be read; `None` reads freely. At zero a read
    /// stays pending: the request is complete and the reader (Pingora's
    /// idle probe) must not take the next one's bytes.
    left: Option<u64>,
}

impl ReadLimit {
    /// Wraps `inner`, reading freely.
    pub fn new(inner: Stream) -> Self {
        ReadLimit { inner, left: None }
    }

    /// Caps further reads at `budget` bytes (`None`: no cap).
    pub fn limit(&mut self, budget: Option<u64>) {
        self.left = budget;
    }

    fn socket(&self) -> &dyn IO {
        &*self.inner
    }

    fn socket_mut(&mut self) -> &mut dyn IO {
        &mut *self.inner
    }

    /// What is left of the budget (`None`: reads are not capped).
    pub fn left(&self) -> Option<u64> {
        self.left
    }
}

impl AsyncRead for ReadLimit {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(left) = this.left else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if left == 0 {
            // Never woken: the reader's other branches (the upstream's
            // response, a timeout) end the wait.
            return Poll::Pending;
        }
        let max = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(buf.remaining());
        let mut capped = buf.take(max);
        let polled = Pin::new(&mut this.inner).poll_read(cx, &mut capped);
        let n = capped.filled().len();
        if let Poll::Ready(Ok(())) = polled {
            // SAFETY: `capped` is a view of `buf`'s unfilled part, and the
            // inner reader initialized and filled its first `n` bytes.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            this.left = Some(left - n as u64);
        }
        polled
    }
}

stream_traits!(ReadLimit);

#[async_trait]
impl Shutdown for ReadLimit {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl Ssl for ReadLimit {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

#[async_trait]
impl Peek for ReadLimit {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        // Peeking consumes nothing, but under a budget it could show the
        // next request's bytes as this one's: refuse it then.
        if self.left.is_some() {
            return Ok(false);
        }
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_stop_at_the_budget_and_resume_when_lifted() {
        let (client, server) = tokio::io::duplex(64);
        let mut conn = ReadLimit::new(Box::new(server));
        let mut client = client;
        client.write_all(b"hello world").await.unwrap();
        conn.limit(Some(5));
        let mut buf = [0u8; 32];
        let n = conn.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        let pending = tokio::time::timeout(Duration::from_millis(50), conn.read(&mut buf)).await;
        assert!(pending.is_err(), "a spent budget must not read on");
        conn.limit(None);
        let n = conn.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b" world");
    }
}
