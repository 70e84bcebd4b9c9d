//! The gateway's integration tests: one test binary (`cargo test -p
//! gateway --test it`), one module per area, and the shared harness that
//! starts the real `gateway` binary, test upstreams (and PostgreSQL and NATS
//! servers), and reads its metrics.
//! Run one area with `cargo test -p gateway --test it reload::`.

mod harness;

mod acme;
mod analytics;
mod api;
mod cli;
mod clicks;
mod clicks_nats;
mod client_ip;
mod console;
mod container;
mod fast_path;
mod forward;
mod observability;
mod observability_docs;
mod proxy;
mod redirects;
mod reload;
mod route_limits;
mod store;
mod tls;
mod tls_certificates;
