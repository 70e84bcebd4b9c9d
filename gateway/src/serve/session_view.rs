//! A request in Pingora's pipeline (`Session`) as the decision step sees
//! it, and the few of its parts `proxy.rs` reads directly.

use http::header;
use pingora::proxy::Session;
use std::net::IpAddr;

use super::decide::RequestView;

/// A request as the decision step sees it.
pub(super) struct SessionView<'a>(pub(super) &'a Session);

impl RequestView for SessionView<'_> {
    fn method(&self) -> &str {
        self.0.req_header().method.as_str()
    }
    fn path(&self) -> &str {
        self.0.req_header().uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.0.req_header().uri.query()
    }
    fn header(&self, name: &str) -> Option<&str> {
        header_str(self.0, name)
    }
    fn header_values(&self, name: &str) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.0
            .req_header()
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
    }
    fn header_lines(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0
            .req_header()
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
    }
    fn host(&self) -> &str {
        request_host(self.0)
    }
    fn peer_ip(&self) -> Option<IpAddr> {
        client_ip(self.0)
    }
}

/// The TCP peer's address.
pub(super) fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// A request header as text (`None`: absent or not visible ASCII).
pub(super) fn header_str(session: &Session, name: impl http::header::AsHeaderName) -> Option<&str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

/// `Host`, or else the request target's authority, or empty.
pub(super) fn request_host(session: &Session) -> &str {
    header_str(session, header::HOST)
        .or_else(|| session.req_header().uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}
