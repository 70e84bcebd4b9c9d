//! `loadtest responder`: a minimal Pingora server that answers every
//! request with the same `302` and `Location`, with no lookup at all. It
//! runs the same Pingora HTTP proxy service and `request_filter` path as the
//! gateway's redirects, so it is the ceiling the gateway is compared with:
//! whatever the gateway costs beyond it is rules, metrics and bookkeeping.
//!
//! `--engine front` answers on the gateway's own HTTP/1 fast path
//! (`gateway::front`) with the same fixed answer: the ceiling for the
//! gateway's redirects, which take that path too. Two other shapes exist to
//! measure what Pingora itself costs: `--engine app` answers from a
//! `ServeHttp` app (no proxy phases, no per-request context), and
//! `--no-work-stealing` runs each worker thread on its own single-threaded
//! runtime.

use anyhow::Result;
use async_trait::async_trait;
use clap::ValueEnum;
use gateway::{Answer, FastAnswer, Front, H1Request, Limits, Outcome};
use http::HeaderValue;
use pingora::apps::http_app::ServeHttp;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use std::net::SocketAddr;

/// Default `Location` of the responder.
pub const DEFAULT_LOCATION: &str = "https://shop.example.com/item/0?utm_source=go";

/// Which Pingora service answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// The HTTP proxy service, answering in `request_filter` (as the
    /// gateway does).
    Proxy,
    /// A `ServeHttp` app.
    App,
    /// The gateway's HTTP/1 fast path (`gateway::front::Front`), with the
    /// proxy service behind it as in the gateway.
    Front,
}

impl Engine {
    /// The name `--engine` takes.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Proxy => "proxy",
            Engine::App => "app",
            Engine::Front => "front",
        }
    }
}

/// How the responder runs.
#[derive(Clone, Debug)]
pub struct ResponderOptions {
    /// Listen address.
    pub listen: SocketAddr,
    /// Worker threads.
    pub threads: usize,
    /// `Location` of every answer.
    pub location: String,
    /// The service type.
    pub engine: Engine,
    /// Pingora's work-stealing runtime (its default) or one runtime per
    /// thread.
    pub work_stealing: bool,
}

/// The fixed-302 service.
#[derive(Clone)]
pub struct Responder {
    location: HeaderValue,
    cache_control: HeaderValue,
}

impl Responder {
    /// A responder that redirects everything to `location`.
    pub fn new(location: &str) -> Result<Responder> {
        Ok(Responder {
            location: HeaderValue::from_str(location)?,
            cache_control: HeaderValue::from_static("private, max-age=90"),
        })
    }
}

#[async_trait]
impl ProxyHttp for Responder {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> pingora::Result<bool> {
        let mut resp = ResponseHeader::build(302, Some(3))?;
        resp.insert_header("Location", self.location.clone())?;
        resp.insert_header("Cache-Control", self.cache_control.clone())?;
        resp.insert_header("Content-Length", 0usize)?;
        session.write_response_header(Box::new(resp), true).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Error::e_explain(ErrorType::InternalError, "the responder has no upstream")
    }
}

#[async_trait]
impl ServeHttp for Responder {
    async fn response(&self, _session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let mut resp = http::Response::new(Vec::new());
        *resp.status_mut() = http::StatusCode::FOUND;
        let h = resp.headers_mut();
        h.insert(http::header::LOCATION, self.location.clone());
        h.insert(http::header::CACHE_CONTROL, self.cache_control.clone());
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        resp
    }
}

impl FastAnswer for Responder {
    fn answer(&self, _req: &H1Request<'_>, keep_alive: bool, out: &mut Vec<u8>) -> Outcome {
        let answer = Answer {
            status: 302,
            location: Some(self.location.clone()),
            content_type: None,
            cache_control: Some(&self.cache_control),
            extra: &[],
            body: bytes::Bytes::new(),
            rules_version: None,
        };
        answer.encode_h1(false, keep_alive, out);
        Outcome::Answered
    }
}

/// `loadtest responder`: serves until killed.
pub fn run(o: &ResponderOptions) -> Result<()> {
    let (listen, threads) = (o.listen, o.threads);
    let responder = Responder::new(&o.location)?;
    let scratch = std::env::temp_dir().join(format!("loadtest-responder-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let conf = ServerConf {
        threads: threads.max(1),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: scratch.join("upgrade.sock").display().to_string(),
        pid_file: scratch.join("responder.pid").display().to_string(),
        work_stealing: o.work_stealing,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    match o.engine {
        Engine::Proxy => {
            let mut service = pingora::proxy::http_proxy_service(&server.configuration, responder);
            service.add_tcp(&listen.to_string());
            server.add_service(service);
        }
        Engine::Front => {
            let proxy = pingora::proxy::http_proxy(&server.configuration, responder.clone());
            let front = Front::new(responder, proxy, true, Limits::default(), None);
            let mut service =
                pingora::services::listening::Service::new("responder".to_string(), front);
            service.threads = Some(threads.max(1));
            service.add_tcp(&listen.to_string());
            server.add_service(service);
        }
        Engine::App => {
            let mut service =
                pingora::services::listening::Service::new("responder".to_string(), responder);
            service.threads = Some(threads.max(1));
            service.add_tcp(&listen.to_string());
            server.add_service(service);
        }
    }
    eprintln!("loadtest responder ({:?}) listening on {listen}", o.engine);
    server.run_forever()
}
