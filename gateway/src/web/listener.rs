//! A listener for an `axum` router, run by Pingora as a background service.

use anyhow::{Context, Result};
use async_trait::async_trait;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::{FieldError, Problem};

/// The route template a router answered a request with, put in the
/// response's extensions so an [`Observer`] outside the router can read it.
#[derive(Clone)]
pub struct Route(pub Arc<str>);

/// Told of every answer of a listener: its route template (none: no route
/// answered it), method, status and how long it took.
pub type Observer =
    Arc<dyn Fn(Option<&str>, &http::Method, http::StatusCode, Duration) + Send + Sync>;

/// Binds `addr` now, so a port in use or a bad address stops the start
/// with a clear error instead of a background task failing later.
///
/// The socket has `SO_REUSEPORT`, so that during a binary upgrade
/// (`upgrading`) the new process binds beside the old one, which drains
/// (Pingora's own listeners are handed over instead). Outside an upgrade
/// the port is first tried without it: a second gateway started by mistake
/// on the same ports must fail, not share them.
pub fn bind(what: &str, addr: &str, upgrading: bool) -> Result<TcpListener> {
    let parsed: SocketAddr = addr
        .parse()
        .with_context(|| format!("{what}: `{addr}` is not an address:port"))?;
    let socket = |reuse_port: bool| -> Result<socket2::Socket> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(parsed),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .with_context(|| format!("{what}: cannot open a socket"))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(reuse_port)?;
        socket.set_nonblocking(true)?;
        socket.bind(&parsed.into()).with_context(|| {
            format!("{what}: cannot listen on {addr} (another gateway on it? an upgrade runs `gateway run --upgrade`)")
        })?;
        Ok(socket)
    };
    if !upgrading {
        drop(socket(false)?);
    }
    let socket = socket(true)?;
    socket
        .listen(1024)
        .with_context(|| format!("{what}: cannot listen on {addr}"))?;
    Ok(socket.into())
}

/// An `axum` router on a bound listener, with the layers every endpoint
/// of this project gets: a body limit, a timeout, request tracing,
/// response compression, and a `500` instead of a dropped connection
/// should a handler panic.
pub struct WebService {
    name: &'static str,
    listener: Mutex<Option<TcpListener>>,
    router: Router,
    nice: Option<i32>,
}

impl WebService {
    /// Serves `router` on `listener`; requests with bodies over `max_body`
    /// bytes get `413`, requests running longer than `timeout` get `408`.
    pub fn new(
        name: &'static str,
        listener: TcpListener,
        router: Router,
        max_body: usize,
        timeout: Duration,
    ) -> WebService {
        let router = router
            .layer(CompressionLayer::new())
            .layer(RequestBodyLimitLayer::new(max_body))
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| too_large_as_problem(req, next, max_body),
            ))
            .layer(TimeoutLayer::with_status_code(
                http::StatusCode::REQUEST_TIMEOUT,
                timeout,
            ))
            .layer(TraceLayer::new_for_http())
            .layer(CatchPanicLayer::new());
        WebService {
            name,
            listener: Mutex::new(Some(listener)),
            router,
            nice: None,
        }
    }

    /// Tells `observer` of every answer, those of the outer layers (a
    /// timeout, a body refused by its declared length, a panic) included.
    pub fn observed(mut self, observer: Observer) -> WebService {
        self.router = self.router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let observer = observer.clone();
                async move {
                    let method = req.method().clone();
                    let started = std::time::Instant::now();
                    let resp = next.run(req).await;
                    let route = resp.extensions().get::<Route>().map(|r| r.0.clone());
                    observer(route.as_deref(), &method, resp.status(), started.elapsed());
                    resp
                }
            },
        ));
        self
    }

    /// Runs its threads at nice value `nice` ([`super::priority`]).
    pub fn nice(mut self, nice: i32) -> WebService {
        self.nice = Some(nice);
        self
    }
}

/// The body limit refuses a declared length over it with a plain-text
/// `413` of its own; every error here is a [`Problem`], that one too.
async fn too_large_as_problem(req: Request, next: Next, max_body: usize) -> Response {
    let resp = next.run(req).await;
    let is_problem = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes() == b"application/problem+json");
    if resp.status() != http::StatusCode::PAYLOAD_TOO_LARGE || is_problem {
        return resp;
    }
    Problem::new(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        format!("body larger than {max_body} bytes"),
    )
    .errors(vec![FieldError {
        field: None,
        message: format!("body larger than {max_body} bytes"),
    }])
    .into_response()
}

#[async_trait]
impl BackgroundService for WebService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Some(nice) = self.nice {
            super::priority::lower_this_runtime(nice);
        }
        let taken = match self.listener.lock() {
            Ok(mut l) => l.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(std_listener) = taken else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(service = self.name, error = %e, "cannot serve the listener");
                return;
            }
        };
        let app = self.router.clone();
        let stop = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(service = self.name, error = %e, "listener failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A declared length over the limit is refused before the router sees
    /// the request, and still as a problem.
    #[tokio::test]
    async fn a_declared_body_over_the_limit_gets_a_413_problem() {
        let listener = bind("test", "127.0.0.1:0", false).unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::put(|| async { "read" }));
        let service = WebService::new("test", listener, router, 16, Duration::from_secs(5));
        let (stop, watch) = tokio::sync::watch::channel(false);
        let served = tokio::spawn(async move { service.start(watch).await });

        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/problem+json\r\n"),
            "{answer}"
        );
        assert!(lower.contains("cache-control: no-store\r\n"), "{answer}");
        assert!(
            answer.contains(r#""message":"body larger than 16 bytes""#),
            "{answer}"
        );

        stop.send(true).unwrap();
        served.await.unwrap();
    }
}
