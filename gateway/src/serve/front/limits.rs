//! What a client may make a connection hold, and the reasons the front
//! closes a connection itself.

use std::time::{Duration, Instant};

/// Bounds on what a client may make a connection hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a whole request head: from the connection's start for
    /// the first request, from its first byte for later ones.
    pub header_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub keepalive_timeout: Duration,
    /// Largest request head (request line and headers together): `431`.
    pub max_head: usize,
    /// Longest line of a head: `414` for the request line, `431` for a
    /// header.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(60),
            max_head: 64 * 1024,
            max_line: 8 * 1024,
        }
    }
}

/// Why the front closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The head did not arrive within `header_timeout`.
    HeaderTimeout,
    /// No next request within `keepalive_timeout`.
    KeepaliveTimeout,
    /// The head grew past `max_head`, or a header line past `max_line`.
    HeadTooLarge,
    /// The request line grew past `max_line`.
    UriTooLong,
}

impl Close {
    /// Every reason, in label order.
    pub const ALL: [Close; 4] = [
        Close::HeaderTimeout,
        Close::KeepaliveTimeout,
        Close::HeadTooLarge,
        Close::UriTooLong,
    ];

    /// Label value of `gateway_connections_closed_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Close::HeaderTimeout => "header_timeout",
            Close::KeepaliveTimeout => "keepalive_timeout",
            Close::HeadTooLarge => "head_too_large",
            Close::UriTooLong => "uri_too_long",
        }
    }

    /// The answer sent before closing, if any (a timed-out client gets
    /// none, as from nginx).
    pub(super) fn answer(self) -> Option<(u16, &'static str)> {
        match self {
            Close::HeaderTimeout | Close::KeepaliveTimeout => None,
            Close::HeadTooLarge => Some((431, "request header fields too large\n")),
            Close::UriTooLong => Some((414, "uri too long\n")),
        }
    }
}

impl Limits {
    /// When the wait for the next request ends, once one is done: an idle
    /// connection gets `keepalive_timeout`; one holding the start of the
    /// next head (pipelined) gets `header_timeout` for it.
    pub(super) fn next_deadline(&self, input: &[u8]) -> Instant {
        Instant::now()
            + if input.is_empty() {
                self.keepalive_timeout
            } else {
                self.header_timeout
            }
    }

    /// Whether a head (complete, or all that was read of one) breaks a
    /// limit. Lines that ended before `from` were checked by an earlier
    /// call, so a head arriving in many pieces is not scanned again and
    /// again.
    pub(super) fn oversized(&self, head: &[u8], from: usize) -> Option<Close> {
        if head.len() <= self.max_line {
            return None;
        }
        let first_line = memchr::memchr(b'\n', head).unwrap_or(head.len());
        if first_line > self.max_line {
            return Some(Close::UriTooLong);
        }
        if head.len() > self.max_head {
            return Some(Close::HeadTooLarge);
        }
        let checked = from.min(head.len());
        let mut start = memchr::memrchr(b'\n', &head[..checked])
            .unwrap_or(0)
            .max(first_line);
        while start < head.len() {
            let next =
                memchr::memchr(b'\n', &head[start + 1..]).map_or(head.len(), |i| start + 1 + i);
            if next - start > self.max_line {
                return Some(Close::HeadTooLarge);
            }
            start = next;
        }
        None
    }
}
