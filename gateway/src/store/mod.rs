//! Links kept in a database — SQLite embedded, PostgreSQL for a fleet —
//! resolved on the request path through a cache and kept fresh by following
//! the store's change log, so a change reaches every gateway without a
//! reload.
//!
//! ```text
//! request on a [[domain]] with store = true
//!   └─ rules: exact paths and bulk links first
//!        └─ LinkSource::link(host, code) ─▶ cache.peek (no allocation)
//!             ├─ fresh link / known unknown ─▶ decided now (fast path)
//!             └─ missing or stale ─▶ handed to the pipeline:
//!                  Store::load ─▶ one query per key at a time ─▶ decide again
//!                  store down: a stale link answers; nothing cached: 503
//! follower (background): change log after `applied` ─▶ cache.changed(key)
//! ```
//!
//! [`backend`] runs the SQL on SQLite or PostgreSQL, [`cache`] holds what
//! was read, [`resolve`] reads a link through it ([`Store`]), [`follower`]
//! applies the change log, [`shadow`] counts links rules answer instead,
//! [`record`] is a link as stored, [`view`] is what the rules see of the
//! store for one request. For the Links API: [`links`] writes and lists
//! links, [`keys`] keeps API keys, [`idempotency`] keeps answers to
//! retried creates; [`stats`] keeps the per-link click counters. For
//! custom domains: [`domains`] keeps them and their certificates, [`acme`]
//! what the fleet shares to order them (challenges, the lease, the account).

mod acme;
mod backend;
mod batch;
mod cache;
mod domains;
mod error;
mod follower;
mod idempotency;
mod keys;
mod links;
mod record;
mod resolve;
mod shadow;
mod stats;
mod view;

pub use backend::Backend;
pub use domains::{Domain, NewCertificate};
pub use error::StoreError;
pub use follower::follow;
pub use idempotency::Claim;
pub use keys::{random_text, secret_hash, sha256_hex, ApiKey, NewKey};
pub use links::{LinkFilter, Updated};
pub use record::{LinkRecord, NewLink};
pub use resolve::{Resolved, Store};
pub use stats::{Split, StatKey, StatSum, Subject, SubjectKind, Tally};
pub use view::StoreView;
