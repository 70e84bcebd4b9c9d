//! Logging in and out of the console, and what the page asks of its
//! session: who it is, its CSRF token, the hosts its links may go on.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use crate::api::ApiState;
use crate::live::Live;
use crate::store::{secret_hash, ApiKey};
use crate::web::{read_json, same_origin, Problem, Session, Sessions, Subject};

/// Who may log in on a listener, and with what.
#[derive(Clone)]
pub enum Gate {
    /// The admin listener: the admin token; `None`: the admin API is off.
    Operator(Option<Arc<str>>),
    /// The API listener: partners' API keys.
    Partners(Arc<ApiState>),
}

/// The console of one listener.
#[derive(Clone)]
pub struct Console {
    /// The listener's sessions (also read by its authentication).
    pub sessions: Arc<Sessions>,
    /// Who may log in.
    pub gate: Gate,
    /// The live rules: their store domains are where links may go.
    pub live: Live,
}

/// `POST /console/session`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    /// The admin token or an API key.
    token: String,
}

/// What the page knows of its session.
#[derive(Serialize)]
struct Whoami {
    /// `operator` or `partner`.
    kind: &'static str,
    name: String,
    /// The API key's id (a partner).
    key: Option<String>,
    /// Hosts its links may go on (`*`: every store domain).
    hosts: Vec<String>,
    can_write: bool,
    /// What every change must send as `X-CSRF-Token`.
    csrf: String,
}

fn unauthorized(detail: &str) -> Response {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).into_response()
}

/// No cache keeps an answer about a session.
fn private(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

impl Console {
    /// The key behind a partner's session, if it is still valid; `Err`:
    /// the answer to give instead.
    async fn key(&self, hash: &str) -> Result<Arc<ApiKey>, Response> {
        let Gate::Partners(api) = &self.gate else {
            return Err(unauthorized("log in on the API listener"));
        };
        match api.keys.find_hash(&api.store, hash.to_string()).await {
            Ok(Some(key)) if key.revoked_at.is_none() => Ok(key),
            Ok(Some(key)) => Err(unauthorized(&format!("API key `{}` is revoked", key.id))),
            Ok(None) => Err(unauthorized("unknown API key")),
            Err(e) => Err(crate::api::store_problem(&e).into_response()),
        }
    }

    /// What the page may know of `session`.
    async fn whoami(&self, session: &Session) -> Result<Whoami, Response> {
        Ok(match &session.subject {
            Subject::Operator => Whoami {
                kind: "operator",
                name: "operator".into(),
                key: None,
                hosts: vec!["*".into()],
                can_write: true,
                csrf: session.csrf.clone(),
            },
            Subject::Key(hash) => {
                let key = self.key(hash).await?;
                Whoami {
                    kind: "partner",
                    name: key.name.clone(),
                    key: Some(key.id.clone()),
                    hosts: key.hosts.clone(),
                    can_write: key.can_write,
                    csrf: session.csrf.clone(),
                }
            }
        })
    }

    /// Who `token` logs in as on this listener.
    async fn subject(&self, token: &str) -> Result<Subject, Response> {
        match &self.gate {
            Gate::Operator(None) => Err(Problem::new(
                StatusCode::NOT_FOUND,
                "admin-disabled",
                "the admin API is disabled",
            )
            .into_response()),
            Gate::Operator(Some(admin)) => {
                if bool::from(token.as_bytes().ct_eq(admin.as_bytes())) {
                    Ok(Subject::Operator)
                } else {
                    Err(unauthorized("wrong admin token"))
                }
            }
            Gate::Partners(_) => {
                let hash = secret_hash(token);
                self.key(&hash).await?;
                Ok(Subject::Key(hash))
            }
        }
    }
}

/// `POST /console/session`: a login with the admin token (admin listener)
/// or an API key (API listener); the session comes back in a cookie.
pub async fn log_in(
    State(console): State<Console>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(p) = same_origin(&headers) {
        return p.into_response();
    }
    let credentials: Credentials = match read_json(body) {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    let subject = match console.subject(credentials.token.trim()).await {
        Ok(s) => s,
        Err(resp) => return private(resp),
    };
    let (session, cookie) = console.sessions.open(subject);
    match console.whoami(&session).await {
        Ok(me) => {
            let mut resp = private(axum::Json(me).into_response());
            resp.headers_mut().insert(header::SET_COOKIE, cookie);
            resp
        }
        Err(resp) => private(resp),
    }
}

/// `GET /console/session`: who is logged in, and the CSRF token.
pub async fn current(State(console): State<Console>, headers: HeaderMap) -> Response {
    let Some(session) = console.sessions.current(&headers) else {
        return private(unauthorized("not logged in"));
    };
    match console.whoami(&session).await {
        Ok(me) => private(axum::Json(me).into_response()),
        Err(resp) => private(resp),
    }
}

/// `DELETE /console/session`: log out (a change: the CSRF token needed).
pub async fn log_out(State(console): State<Console>, headers: HeaderMap) -> Response {
    if let Err(p) = console.sessions.authorize(&http::Method::DELETE, &headers) {
        return p.into_response();
    }
    let cleared = console.sessions.close(&headers);
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cleared);
    private(resp)
}

/// `GET /console/domains`: the store domains a link of this session may
/// go on.
pub async fn domains(State(console): State<Console>, headers: HeaderMap) -> Response {
    let Some(session) = console.sessions.current(&headers) else {
        return private(unauthorized("not logged in"));
    };
    let key = match &session.subject {
        Subject::Operator => None,
        Subject::Key(hash) => match console.key(hash).await {
            Ok(key) => Some(key),
            Err(resp) => return private(resp),
        },
    };
    let rules = console.live.load().rules.clone();
    let hosts: Vec<&str> = rules
        .store_domains()
        .filter(|h| key.as_ref().is_none_or(|k| k.covers(h)))
        .collect();
    private(axum::Json(serde_json::json!({ "hosts": hosts })).into_response())
}
