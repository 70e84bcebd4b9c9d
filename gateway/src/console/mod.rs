//! The console (docs/console.md): a web UI at `/console/`, for operators
//! on the admin listener (logged in with the admin token) and for
//! partners on the API listener (logged in with their API key, seeing
//! only their links).
//!
//! It is a page of the built front end ([`assets`]) that calls the same
//! endpoints as `curl` would — the admin API and the Links API — with a
//! session cookie instead of a bearer token. This module only logs people
//! in and out ([`login`]); the cookie and CSRF checks are
//! [`crate::web::Sessions`], asked by each listener's own authentication.

mod assets;
mod login;

use axum::response::Redirect;
use axum::routing::get;
use axum::Router;

pub use login::{Console, Gate};

/// The console's routes on one listener: the page, its files, the
/// session and the hosts a link may be put on.
pub fn router(console: Console) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(assets::index))
        .route(
            "/console/session",
            get(login::current)
                .post(login::log_in)
                .delete(login::log_out),
        )
        .route("/console/domains", get(login::domains))
        .route("/console/{*path}", get(assets::asset))
        .with_state(console)
}
