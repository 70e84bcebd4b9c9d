//! Load testing for the edge gateway: a low-overhead HTTP/1.1 load
//! generator (closed- and open-loop, HdrHistogram percentiles, errors by
//! kind), deterministic bulk links, the nginx comparison, and two reference
//! servers (an upstream and a fixed-302 Pingora responder).
//!
//! See `docs/performance.md` for how the figures there were measured.

pub mod api;
pub mod bare_proxy;
pub mod clicks;
pub mod client;
pub mod compare;
pub mod compare_proxy;
pub mod genlinks;
pub mod load;
pub mod nginx;
pub mod plot;
pub mod procfs;
pub mod reload;
pub mod report;
pub mod responder;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod servers;
pub mod target;
pub mod tls;
pub mod upstream;
pub mod zipf;

/// A tokio runtime with `threads` workers (a current-thread runtime for 1,
/// which is the cheapest for a single-core load generator).
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
