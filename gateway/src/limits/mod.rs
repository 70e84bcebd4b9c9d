//! Request limits shared by the proxy and the Links API: per-client rate
//! limits of API routes ([`route`]), and the IETF `RateLimit-Policy` and
//! `RateLimit` headers both send ([`headers`]).

mod headers;
mod route;

pub use headers::{policy_header, state_header, write_state};
pub use route::{build, Limiters, RouteLimiter, Verdict};
