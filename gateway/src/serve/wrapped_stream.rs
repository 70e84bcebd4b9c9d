//! What a wrapper around a client connection passes straight through to
//! the connection it wraps: writes, its id, and Pingora's timing, proxy
//! and socket digests. [`ReadLimit`](super::read_limit::ReadLimit) (reads
//! capped) and the front's TLS stream (reads and writes decrypted) differ
//! only in how they read, shut down and answer about TLS.

/// Implements `AsyncWrite` by writing to the field `inner`, and
/// `UniqueID`, `GetTimingDigest`, `GetProxyDigest` and `GetSocketDigest`
/// by asking the socket the type's `socket()` / `socket_mut()` reach.
macro_rules! stream_traits {
    ($ty:ty) => {
        impl ::tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::tokio::io::AsyncWrite::poll_write(
                    ::std::pin::Pin::new(&mut self.get_mut().inner),
                    cx,
                    buf,
                )
            }
            fn poll_flush(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::tokio::io::AsyncWrite::poll_flush(
                    ::std::pin::Pin::new(&mut self.get_mut().inner),
                    cx,
                )
            }
            fn poll_shutdown(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::tokio::io::AsyncWrite::poll_shutdown(
                    ::std::pin::Pin::new(&mut self.get_mut().inner),
                    cx,
                )
            }
            fn poll_write_vectored(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::tokio::io::AsyncWrite::poll_write_vectored(
                    ::std::pin::Pin::new(&mut self.get_mut().inner),
                    cx,
                    bufs,
                )
            }
            fn is_write_vectored(&self) -> bool {
                ::tokio::io::AsyncWrite::is_write_vectored(&self.inner)
            }
        }

        impl ::pingora::protocols::UniqueID for $ty {
            fn id(&self) -> ::pingora::protocols::UniqueIDType {
                ::pingora::protocols::UniqueID::id(self.socket())
            }
        }

        impl ::pingora::protocols::GetTimingDigest for $ty {
            fn get_timing_digest(&self) -> Vec<Option<::pingora::protocols::TimingDigest>> {
                ::pingora::protocols::GetTimingDigest::get_timing_digest(self.socket())
            }
            fn get_read_pending_time(&self) -> ::std::time::Duration {
                ::pingora::protocols::GetTimingDigest::get_read_pending_time(self.socket())
            }
            fn get_write_pending_time(&self) -> ::std::time::Duration {
                ::pingora::protocols::GetTimingDigest::get_write_pending_time(self.socket())
            }
        }

        impl ::pingora::protocols::GetProxyDigest for $ty {
            fn get_proxy_digest(
                &self,
            ) -> Option<::std::sync::Arc<::pingora::protocols::raw_connect::ProxyDigest>> {
                ::pingora::protocols::GetProxyDigest::get_proxy_digest(self.socket())
            }
            fn set_proxy_digest(&mut self, digest: ::pingora::protocols::raw_connect::ProxyDigest) {
                ::pingora::protocols::GetProxyDigest::set_proxy_digest(self.socket_mut(), digest)
            }
        }

        impl ::pingora::protocols::GetSocketDigest for $ty {
            fn get_socket_digest(
                &self,
            ) -> Option<::std::sync::Arc<::pingora::protocols::SocketDigest>> {
                ::pingora::protocols::GetSocketDigest::get_socket_digest(self.socket())
            }
            fn set_socket_digest(&mut self, digest: ::pingora::protocols::SocketDigest) {
                ::pingora::protocols::GetSocketDigest::set_socket_digest(self.socket_mut(), digest)
            }
        }
    };
}

pub(crate) use stream_traits;
