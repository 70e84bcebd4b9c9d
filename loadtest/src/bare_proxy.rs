//! `loadtest bare-proxy`: the ceiling for the gateway's API routing — a
//! Pingora `ProxyHttp` that only picks its one upstream peer, in the
//! spirit of Pingora's own `load_balancer` example: no rules, no
//! forwarding headers, no metrics, no access log, Pingora's upstream
//! connection pool (keep-alive) as it comes.

use anyhow::Result;
use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use std::net::SocketAddr;

/// How the bare proxy runs.
#[derive(Clone, Debug)]
pub struct BareProxyOptions {
    /// Listen address.
    pub listen: SocketAddr,
    /// The upstream every request goes to.
    pub upstream: SocketAddr,
    /// Worker threads.
    pub threads: usize,
}

/// Forwards every request to one upstream over plain HTTP/1.1.
pub struct BareProxy {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for BareProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// `loadtest bare-proxy`: serves until killed.
pub fn run(o: &BareProxyOptions) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("loadtest-bare-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let conf = ServerConf {
        threads: o.threads.max(1),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: scratch.join("upgrade.sock").display().to_string(),
        pid_file: scratch.join("bare-proxy.pid").display().to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut service = pingora::proxy::http_proxy_service(
        &server.configuration,
        BareProxy {
            upstream: o.upstream,
        },
    );
    service.add_tcp(&o.listen.to_string());
    server.add_service(service);
    eprintln!(
        "loadtest bare-proxy listening on {}, forwarding to {}",
        o.listen, o.upstream
    );
    server.run_forever()
}
