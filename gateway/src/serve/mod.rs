//! Serving a request on the redirect listener, from the first byte to the
//! access-log line.
//!
//! ```text
//! bytes ─▶ front (HTTP/1 fast path) ──plain GET/HEAD──▶ decide ─▶ respond
//!            │ anything else, with the bytes read          ▲
//!            ▼                                             │
//!          Pingora's HttpProxy ─▶ proxy (ProxyHttp) ───────┘
//!                                   │ a route: forwarding headers,
//!                                   ▼ framing, body limits
//!                                 upstream pool
//! ```
//!
//! [`front`] reads every HTTP/1 connection first and answers what it can
//! from memory; [`proxy`] is the `ProxyHttp` for the rest. Both see the
//! request through [`decide::RequestView`] and decide with the one
//! [`Decider`], so a redirect is the same whichever read it. The client's
//! address ([`client_ip`]), the headers sent upstream ([`forwarding`],
//! [`framing`]), a route's own header changes ([`route_headers`]) and the
//! log line ([`access_log`]) are each in their own file.

mod access_log;
mod admission;
mod client_ip;
mod decide;
mod forward;
mod forwarding;
mod framing;
mod front;
mod h1;
mod headers;
mod proxy;
mod read_limit;
mod respond;
mod route_headers;
mod session_view;
mod wrapped_stream;

pub use access_log::AccessLog;
pub use client_ip::TrustedProxies;
pub use decide::{Decider, Options};
pub use front::{FastAnswer, Front, H1Request, Limits, Outcome, CONNECTIONS};
pub use proxy::Gateway;
pub use respond::Answer;
