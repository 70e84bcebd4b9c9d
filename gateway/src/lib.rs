//! The edge gateway: a Pingora server that answers link redirects from a
//! compiled rule set and forwards API routes to upstream pools.
//!
//! The binary (`main.rs`) is a thin command line over this library. The
//! modules, one folder per concern (`docs/architecture.md` draws how a
//! request and a reload go through them):
//!
//! - [`serve`]: a request on the redirect listener — the HTTP/1 fast
//!   path, the Pingora pipeline, the decision step, answers, forwarding
//!   headers, the access log.
//! - [`live`]: the live snapshot behind `arc-swap` and what replaces it —
//!   reload, file watch, SIGHUP, remote source.
//! - [`upstream`]: pools, load balancing, health checks, failure reasons.
//! - [`clicks`]: click events, their queue and their sinks.
//! - [`analytics`]: per-link click counters in the store, and reports.
//! - [`admin`], [`metrics`], [`config`], [`logging`], [`commands`]: the
//!   operator's side; [`server`] puts it all together.
//!
//! Modules are private but for [`commands`], the binary's subcommands;
//! what the binary, the tests, the benches and `loadtest` use is
//! re-exported here and nothing else.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod admin;
mod analytics;
mod api;
mod clicks;
pub mod commands;
mod config;
mod console;
mod limits;
mod live;
mod logging;
mod metrics;
mod serve;
mod server;
mod store;
mod tls;
mod upstream;
mod web;

pub use clicks::{Dedup as ClickDedup, Event as ClickEvent};
pub use config::Config;
pub use logging::init as init_logging;
pub use serve::{Answer, FastAnswer, Front, H1Request, Limits, Outcome};
pub use server::run;
pub use tls::{Certificates, Loaded as LoadedCertificate};
