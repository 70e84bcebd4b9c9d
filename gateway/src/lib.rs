//! The edge gateway: a Pingora server that answers link redirects from a
//! compiled rule set and forwards API routes to upstream pools.
//!
//! The binary (`main.rs`) is a thin command line over these modules:
//! [`server`] assembles the Pingora services; [`front`] reads each HTTP/1
//! connection first and answers plain redirects itself, handing the rest to
//! [`proxy`], the `ProxyHttp` implementation; both decide through
//! [`decide`] and answer through [`respond`]. [`state`] holds the live
//! snapshot behind `arc-swap`, [`reload`] swaps in new rules, [`pools`]
//! runs the upstream pools and their health checks.

pub mod access_log;
pub mod admin;
pub mod clicks;
pub mod client_ip;
pub mod commands;
pub mod config;
pub mod decide;
pub mod forwarding;
mod framing;
pub mod front;
pub mod logging;
pub mod metrics;
pub mod pools;
pub mod proxy;
mod read_limit;
pub mod reload;
pub mod remote;
pub mod respond;
pub mod server;
pub mod signals;
pub mod state;
pub mod watch;
