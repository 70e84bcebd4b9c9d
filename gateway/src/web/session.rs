//! Browser sessions of the console: who logged in, behind an opaque
//! cookie, and the token every change must repeat in a header.
//!
//! The secret a user logs in with (the admin token, an API key) never
//! reaches the page's JavaScript after the login: the session id is in an
//! `HttpOnly` cookie, and the cookie is `SameSite=Strict`, so another site
//! cannot make a browser send it. A change (any method but GET, HEAD and
//! OPTIONS) must also carry the session's CSRF token in `X-CSRF-Token`,
//! which only a page of this origin can read, and a cross-origin `Origin`
//! is refused outright: two independent locks, as OWASP advises.
//!
//! Sessions live in the memory of one gateway for [`LIFETIME`]; a restart
//! or another gateway of the fleet asks for a new login.

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

use super::Problem;

/// How long a session lasts from its login.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// The header a change repeats the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// Logged in with the admin token.
    Operator,
    /// Logged in with an API key, kept by its hash (as the store keeps it),
    /// so each request finds the key again and a revocation ends the
    /// session.
    Key(String),
}

/// One login.
#[derive(Debug)]
pub struct Session {
    /// Who logged in.
    pub subject: Subject,
    /// What a change must send in `X-CSRF-Token`.
    pub csrf: String,
}

/// The sessions of one listener, under one cookie name: the admin and API
/// listeners share a host, and browsers send a host's cookies to every
/// port of it, so each listener has its own name and its own sessions.
pub struct Sessions {
    cookie: &'static str,
    open: moka::sync::Cache<String, Arc<Session>>,
}

/// 32 random bytes as hex, from the thread's CSPRNG.
fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Sessions kept under the cookie `cookie`.
    pub fn new(cookie: &'static str) -> Sessions {
        Sessions {
            cookie,
            open: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(LIFETIME)
                .build(),
        }
    }

    /// A new session for `subject`, and the `Set-Cookie` value that
    /// hands it to the browser.
    pub fn open(&self, subject: Subject) -> (Arc<Session>, HeaderValue) {
        let id = random_hex();
        let session = Arc::new(Session {
            subject,
            csrf: random_hex(),
        });
        self.open.insert(id.clone(), session.clone());
        let cookie = format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age={}",
            self.cookie,
            LIFETIME.as_secs()
        );
        // Hex and fixed text: always a valid header value.
        let value = HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""));
        (session, value)
    }

    /// Ends the session `headers` carry, if any; the `Set-Cookie` value
    /// that removes the cookie.
    pub fn close(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(id) = self.id(headers) {
            self.open.invalidate(id);
        }
        let cookie = format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0",
            self.cookie
        );
        HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""))
    }

    /// The session id in the request's cookies.
    fn id<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie)
            .map(|(_, value)| value.trim())
    }

    /// The session a request belongs to, with no check of the method:
    /// for reads of the session itself.
    pub fn current(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        self.open.get(self.id(headers)?)
    }

    /// The session a request belongs to, checked for a change: `Ok(None)`
    /// without a (live) session cookie; `403` for a change without the
    /// session's CSRF token or from another origin.
    pub fn authorize(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Session>>, Problem> {
        let Some(session) = self.current(headers) else {
            return Ok(None);
        };
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(Some(session));
        }
        same_origin(headers)?;
        let given = headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !bool::from(given.ct_eq(session.csrf.as_bytes())) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "a change from the console must carry the session's X-CSRF-Token",
            ));
        }
        Ok(Some(session))
    }
}

/// `403` when the request says it comes from a page of another origin
/// (`Origin` names a host other than the one it was sent to). A request
/// without `Origin` is not a browser's cross-origin request.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    if !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "cross-origin",
        format!("a request from the page `{origin}` may not change anything here"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie_of(set_cookie: &HeaderValue) -> String {
        set_cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure() {
        let sessions = Sessions::new("c");
        let (_, set) = sessions.open(Subject::Operator);
        let text = set.to_str().unwrap();
        assert!(text.starts_with("c="), "{text}");
        for attr in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=28800",
        ] {
            assert!(text.contains(attr), "{text} lacks {attr}");
        }
    }

    #[test]
    fn reads_need_the_cookie_changes_also_the_csrf_token() {
        let sessions = Sessions::new("c");
        let (session, set) = sessions.open(Subject::Key("h".into()));
        let cookie = cookie_of(&set);
        let read = headers(&[("cookie", &format!("other=1; {cookie}"))]);
        let got = sessions.authorize(&Method::GET, &read).unwrap().unwrap();
        assert_eq!(got.subject, Subject::Key("h".into()));
        let err = sessions.authorize(&Method::POST, &read).unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        let wrong = headers(&[("cookie", &cookie), ("x-csrf-token", "nope")]);
        assert!(sessions.authorize(&Method::DELETE, &wrong).is_err());
        let right = headers(&[("cookie", &cookie), ("x-csrf-token", &session.csrf)]);
        assert!(sessions
            .authorize(&Method::DELETE, &right)
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_change_from_another_origin_is_refused_even_with_the_token() {
        let sessions = Sessions::new("c");
        let (session, set) = sessions.open(Subject::Operator);
        let cookie = cookie_of(&set);
        let base = [
            ("cookie", cookie.as_str()),
            ("x-csrf-token", session.csrf.as_str()),
            ("host", "127.0.0.1:9901"),
        ];
        let mut same = headers(&base);
        same.insert("origin", HeaderValue::from_static("http://127.0.0.1:9901"));
        assert!(sessions.authorize(&Method::POST, &same).is_ok());
        let mut other = headers(&base);
        other.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(sessions.authorize(&Method::POST, &other).is_err());
    }

    #[test]
    fn unknown_and_closed_sessions_are_none() {
        let sessions = Sessions::new("c");
        let none = headers(&[("cookie", "c=0000")]);
        assert!(sessions.authorize(&Method::GET, &none).unwrap().is_none());
        let (_, set) = sessions.open(Subject::Operator);
        let h = headers(&[("cookie", &cookie_of(&set))]);
        assert!(sessions.current(&h).is_some());
        let cleared = sessions.close(&h);
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
        assert!(sessions.current(&h).is_none());
    }
}
