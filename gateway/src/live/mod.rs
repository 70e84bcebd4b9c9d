//! The live snapshot and everything that replaces it while the gateway
//! serves.
//!
//! ```text
//! file watch ─┐
//! SIGHUP ─────┤
//! admin API ──┼─▶ Reloader::apply ─▶ rules::RuleSet::from_source (compile,
//! remote URL ─┘        │              validate, run the [[test]]s)
//!                      ▼
//!                 policy (empty set? too large a drop?) ─▶ Snapshot::build
//!                      │                                  (pools, counters)
//!                      ▼
//!                 first health check of new pools ─▶ ArcSwap::store
//!                                                     └▶ metrics, history
//! ```
//!
//! [`snapshot`] is what requests read: one immutable rule set and its
//! pools behind `arc-swap`. [`reload`] is the one path every trigger goes
//! through; [`watch`], [`signals`] and [`remote`] are the triggers (the
//! admin API is in `crate::admin`). A refused change leaves the live
//! snapshot untouched.

mod refusal;
mod reload;
mod remote;
mod signals;
mod snapshot;
mod watch;

pub use refusal::Refusal;
pub use reload::{answering, Outcome, Policy, Reloader};
pub use remote::run as poll_remote;
pub use signals::Signals;
pub use snapshot::{share, Live, Meta, Snapshot, Trigger, VersionInfo};
pub use watch::{on_changes as watch_files, run as watch};
