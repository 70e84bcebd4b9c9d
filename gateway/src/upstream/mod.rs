//! Upstream pools for API routes: backends, load balancing, health checks
//! and `max_inflight` ([`pool`]), idle keep-alive connections of the
//! fast path's own forwarding ([`idle`]), passive outlier ejection ([`outlier`]),
//! and what a failed proxied request is reported as ([`failure`]). The
//! per-request proxying itself is `crate::serve`'s.

mod failure;
mod idle;
mod outlier;
mod pool;

pub use failure::{classify, ALL_FAILED, NO_HEALTHY};
pub use pool::{build, spawn_health_checks, Admitted, BackendState, Pool, Pools};
