//! How this gateway serves its own HTTP endpoints — the admin API, the
//! metrics listener and the Links API: `axum` routers behind `tower-http`
//! layers, each on its own listener, run as a Pingora background service
//! so its work never lands on the redirect workers' runtimes.
//!
//! [`body`] reads JSON bodies and queries into values or problems naming
//! the field; [`listener`] binds the socket (at start, so a taken port fails the
//! start) and runs a router on it until shutdown; [`problem`] is the error
//! body every endpoint answers with; [`session`] is the console's cookie
//! sessions and their CSRF check.

mod body;
mod listener;
mod priority;
mod problem;
mod session;

pub use body::{json as read_json, parse as parse_json, query as read_query, unreadable};
pub use listener::{bind, Observer, Route, WebService};
pub use problem::{FieldError, Problem};
pub use session::{same_origin, Session, Sessions, Subject};
