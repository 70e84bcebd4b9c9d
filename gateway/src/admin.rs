//! The admin listener: health endpoints for orchestrators, on loopback by
//! default.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::state::Live;

/// The admin HTTP application.
pub struct Admin {
    live: Live,
}

impl Admin {
    /// An admin app over the live snapshot.
    pub fn new(live: Live) -> Self {
        Admin { live }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    let body = body.as_bytes().to_vec();
    let len = body.len();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    resp
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        match (req.method.as_str(), req.uri.path()) {
            ("GET" | "HEAD", "/live") => text(StatusCode::OK, "live\n"),
            ("GET" | "HEAD", "/ready") => {
                // The rules are loaded before any listener is added, so a
                // snapshot with a version means ready.
                let snap = self.live.load();
                let mut body = format!(
                    "ready: rules version {} from {}, live since {}\n",
                    snap.version,
                    snap.source,
                    humantime::format_rfc3339_seconds(snap.loaded_at)
                );
                let mut pools: Vec<_> = snap.pools.iter().collect();
                pools.sort_by(|a, b| a.0.cmp(b.0));
                for (name, pool) in pools {
                    body.push_str(&format!(
                        "upstream {name}: {}/{} backends healthy\n",
                        pool.healthy_backends(),
                        pool.total_backends()
                    ));
                }
                text(StatusCode::OK, &body)
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}
