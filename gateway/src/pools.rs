//! Upstream pools: load balancers built from the rule set's `[upstream.*]`
//! definitions, their active health checks, and peer construction.

use async_trait::async_trait;
use pingora::lb::health_check::{HealthObserve, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::lb::{Backend, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::metrics::{Metrics, UpstreamMetrics};
use rules::{Balance, HealthCheckKind, Upstream};

/// How long an idle upstream connection stays in the keep-alive pool.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

enum Selector {
    RoundRobin(LoadBalancer<RoundRobin>),
    Consistent(LoadBalancer<Consistent>),
}

/// One upstream pool and its health.
pub struct Pool {
    /// The definition it was built from; an unchanged definition on reload
    /// keeps this pool (and its health state and connections).
    pub def: Upstream,
    selector: Selector,
    /// Set once a health-check task runs for this pool.
    checking: AtomicBool,
    /// Pre-resolved metrics.
    pub metrics: UpstreamMetrics,
}

impl Pool {
    /// Builds a pool; resolves server names (blocking DNS for names that
    /// are not addresses, which is why this runs off the request path).
    pub fn new(def: &Upstream, metrics: UpstreamMetrics) -> anyhow::Result<Pool> {
        let servers = def.servers.iter().map(String::as_str);
        let mut selector = match def.balance {
            Balance::RoundRobin => Selector::RoundRobin(LoadBalancer::try_from_iter(servers)?),
            Balance::Consistent => Selector::Consistent(LoadBalancer::try_from_iter(servers)?),
        };
        if let Some(hc) = &def.health_check {
            let check: Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> = match hc.kind
            {
                HealthCheckKind::Tcp => {
                    let mut c = TcpHealthCheck::new();
                    c.consecutive_failure = hc.unhealthy_after;
                    c.consecutive_success = hc.healthy_after;
                    c.peer_template.options.connection_timeout = Some(hc.timeout);
                    c.health_changed_callback = Some(Box::new(HealthLog(def.name.clone())));
                    c
                }
                HealthCheckKind::Http => {
                    let host = def
                        .sni
                        .clone()
                        .unwrap_or_else(|| host_of(&def.servers[0]).to_string());
                    let mut c = HttpHealthCheck::new(&host, def.tls);
                    c.consecutive_failure = hc.unhealthy_after;
                    c.consecutive_success = hc.healthy_after;
                    c.peer_template.options.connection_timeout = Some(hc.timeout);
                    c.peer_template.options.read_timeout = Some(hc.timeout);
                    let mut req =
                        pingora::http::RequestHeader::build("GET", hc.path.as_bytes(), None)?;
                    req.insert_header("Host", &host)?;
                    req.insert_header("User-Agent", "gateway-health-check")?;
                    c.req = req;
                    c.validator = Some(Box::new(|resp| {
                        if resp.status.is_success() {
                            Ok(())
                        } else {
                            pingora::Error::e_explain(
                                pingora::ErrorType::Custom("unhealthy status"),
                                format!("health check answered {}", resp.status),
                            )
                        }
                    }));
                    c.health_changed_callback = Some(Box::new(HealthLog(def.name.clone())));
                    Box::new(c)
                }
            };
            match &mut selector {
                Selector::RoundRobin(lb) => lb.set_health_check(check),
                Selector::Consistent(lb) => lb.set_health_check(check),
            }
        }
        Ok(Pool {
            def: def.clone(),
            selector,
            checking: AtomicBool::new(false),
            metrics,
        })
    }

    /// Picks a healthy backend not in `exclude` (backends that already
    /// failed for this request). `key` feeds consistent hashing.
    pub fn select(&self, key: &[u8], exclude: &[Backend]) -> Option<Backend> {
        let accept = |b: &Backend, healthy: bool| healthy && !exclude.contains(b);
        match &self.selector {
            Selector::RoundRobin(lb) => lb.select_with(key, 256, accept),
            Selector::Consistent(lb) => lb.select_with(key, 256, accept),
        }
    }

    /// Number of backends currently considered healthy.
    pub fn healthy_backends(&self) -> usize {
        let backends = self.backends();
        backends
            .get_backend()
            .iter()
            .filter(|b| backends.ready(b))
            .count()
    }

    /// Number of backends in the pool.
    pub fn total_backends(&self) -> usize {
        self.backends().get_backend().len()
    }

    fn backends(&self) -> &pingora::lb::Backends {
        match &self.selector {
            Selector::RoundRobin(lb) => lb.backends(),
            Selector::Consistent(lb) => lb.backends(),
        }
    }

    /// Runs one round of health checks over every backend.
    pub async fn check_once(&self) {
        self.backends().run_health_check(true).await;
    }

    /// The peer to connect to for `backend`, with the pool's timeouts.
    pub fn peer(&self, backend: &Backend) -> HttpPeer {
        let sni = match (&self.def.sni, self.def.tls) {
            (Some(s), _) => s.clone(),
            (None, true) => backend
                .addr
                .to_string()
                .rsplit_once(':')
                .map_or(String::new(), |(h, _)| h.to_string()),
            (None, false) => String::new(),
        };
        let mut peer = HttpPeer::new(backend, self.def.tls, sni);
        peer.options.connection_timeout = Some(self.def.connect_timeout);
        peer.options.total_connection_timeout = Some(self.def.connect_timeout);
        peer.options.read_timeout = Some(self.def.read_timeout);
        peer.options.write_timeout = Some(self.def.write_timeout);
        peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
        peer
    }
}

fn host_of(server: &str) -> &str {
    server.rsplit_once(':').map_or(server, |(h, _)| h)
}

/// Logs a backend going down or coming back.
struct HealthLog(String);

#[async_trait]
impl HealthObserve for HealthLog {
    async fn observe(&self, target: &Backend, healthy: bool) {
        if healthy {
            tracing::info!(upstream = %self.0, backend = %target.addr, "backend marked up");
        } else {
            tracing::warn!(upstream = %self.0, backend = %target.addr, "backend marked down after failed health checks");
        }
    }
}

/// All pools of one rule-set snapshot, by name.
pub type Pools = HashMap<String, Arc<Pool>>;

/// Builds the pools for `upstreams`, reusing any pool in `previous` whose
/// definition is unchanged so it keeps its health and connections.
pub fn build(
    upstreams: &std::collections::BTreeMap<String, Upstream>,
    previous: Option<&Pools>,
    metrics: &Metrics,
) -> anyhow::Result<Pools> {
    let mut pools = Pools::new();
    for (name, def) in upstreams {
        let reused = previous
            .and_then(|p| p.get(name))
            .filter(|p| p.def == *def)
            .cloned();
        let pool = match reused {
            Some(p) => p,
            None => Arc::new(
                Pool::new(def, metrics.upstream(name))
                    .map_err(|e| anyhow::anyhow!("upstream {name}: {e}"))?,
            ),
        };
        pools.insert(name.clone(), pool);
    }
    Ok(pools)
}

/// Starts a health-check loop for every pool that has a health check and no
/// loop yet. Loops hold a weak reference and end when their pool is dropped
/// (its rule set was replaced and no request still uses it).
pub fn spawn_health_checks(pools: &Pools) {
    for pool in pools.values() {
        let Some(hc) = &pool.def.health_check else {
            continue;
        };
        if pool.checking.swap(true, Ordering::AcqRel) {
            continue;
        }
        let weak: Weak<Pool> = Arc::downgrade(pool);
        let interval = hc.interval;
        tokio::spawn(async move {
            loop {
                let Some(pool) = weak.upgrade() else { break };
                pool.check_once().await;
                drop(pool);
                tokio::time::sleep(interval).await;
            }
        });
    }
}
