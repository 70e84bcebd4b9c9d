//! Upstream pools: load balancers built from the rule set's `[upstream.*]`
//! definitions, their active health checks, and peer construction.

use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, HealthObserve, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::lb::{Backend, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::idle::{IdleConns, IDLE_FOR};
use super::outlier::Outliers;
use crate::metrics::{Metrics, UpstreamMetrics};
use rules::{Balance, HealthCheckKind, Upstream};

/// How long an idle upstream connection stays in the keep-alive pool.
const UPSTREAM_IDLE_TIMEOUT: Duration = IDLE_FOR;

/// Least time between two health-check rounds that requests start (see
/// [`Pool::recheck_when_down`]), so traffic to a dead pool does not turn
/// into a probe per request.
const RECHECK_EVERY: Duration = Duration::from_millis(100);

enum Selector {
    RoundRobin(LoadBalancer<RoundRobin>),
    Consistent(LoadBalancer<Consistent>),
}

/// A backend as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackendState {
    /// `ip:port`.
    pub address: String,
    /// Whether health checks find it up (presumed up before the first).
    pub healthy: bool,
    /// Whether outlier ejection keeps it out of the pool now.
    pub ejected: bool,
}

/// One upstream pool and its health.
pub struct Pool {
    /// The definition it was built from; an unchanged definition on reload
    /// keeps this pool (and its health state and connections).
    pub def: Upstream,
    selector: Selector,
    /// Set once a health-check task runs for this pool.
    checking: AtomicBool,
    /// Shared with the pool's [`Decisive`] check.
    decisive: Arc<AtomicBool>,
    /// Whether a round has completed: until then every backend is
    /// presumed up, and the first round's verdict counts at once.
    checked: AtomicBool,
    /// Rounds run one at a time; holds when the last request-started one
    /// began.
    round: tokio::sync::Mutex<Option<Instant>>,
    /// Pre-resolved metrics.
    pub metrics: Arc<UpstreamMetrics>,
    /// Passive outlier ejection, when `eject_after` is set.
    outliers: Option<Arc<Outliers>>,
    /// Keep-alive connections of requests the fast path forwarded.
    pub idle: IdleConns,
    /// Requests in flight, counted only when `max_inflight` is set.
    inflight: AtomicU32,
    /// When a request over `max_inflight` may be logged next (ms since
    /// `created`): one line a second, not one per refused request.
    overload_logged: AtomicU64,
    created: Instant,
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
        let decisive = Arc::new(AtomicBool::new(false));
        if let Some(hc) = &def.health_check {
            let check: Box<dyn HealthCheck + Send + Sync> = match hc.kind {
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
            let check = Box::new(Decisive {
                inner: check,
                decisive: decisive.clone(),
                unhealthy_after: hc.unhealthy_after,
                healthy_after: hc.healthy_after,
            });
            match &mut selector {
                Selector::RoundRobin(lb) => lb.set_health_check(check),
                Selector::Consistent(lb) => lb.set_health_check(check),
            }
        }
        let outliers = def.ejection.clone().map(|e| {
            let backends = match &selector {
                Selector::RoundRobin(lb) => lb.backends().get_backend(),
                Selector::Consistent(lb) => lb.backends().get_backend(),
            };
            Arc::new(Outliers::new(e, &def.name, backends.iter().cloned()))
        });
        Ok(Pool {
            def: def.clone(),
            selector,
            checking: AtomicBool::new(false),
            decisive,
            checked: AtomicBool::new(false),
            round: tokio::sync::Mutex::new(None),
            metrics: Arc::new(metrics),
            outliers,
            idle: IdleConns::default(),
            inflight: AtomicU32::new(0),
            overload_logged: AtomicU64::new(0),
            created: Instant::now(),
        })
    }

    /// Picks a healthy backend not in `exclude` (backends that already
    /// failed for this request). `key` feeds consistent hashing.
    ///
    /// Ejected backends are passed over while another can serve; when none
    /// can (the active check took the rest down since), they serve rather
    /// than nothing, as Envoy's panic threshold does.
    pub fn select(&self, key: &[u8], exclude: &[Backend]) -> Option<Backend> {
        let pick = |accept: &dyn Fn(&Backend, bool) -> bool| match &self.selector {
            Selector::RoundRobin(lb) => lb.select_with(key, 256, accept),
            Selector::Consistent(lb) => lb.select_with(key, 256, accept),
        };
        let usable = |b: &Backend, healthy: bool| healthy && !exclude.contains(b);
        match &self.outliers {
            Some(o) if o.any_ejected() => {
                pick(&|b, healthy| usable(b, healthy) && !o.is_ejected(b, &self.metrics))
                    .or_else(|| pick(&usable))
            }
            _ => pick(&usable),
        }
    }

    /// Records how a request to `backend` went, for outlier ejection: a
    /// failure is a 5xx answer, a failed connect, a timeout or a reset.
    pub fn outcome(&self, backend: &Backend, ok: bool) {
        let Some(o) = &self.outliers else {
            return;
        };
        if ok {
            o.success(backend);
        } else {
            let backends = self.backends();
            o.failure(backend, |b| backends.ready(b), &self.metrics);
        }
    }

    /// Takes a place among the pool's requests in flight: `None` when
    /// `max_inflight` are already (the request gets a 503), otherwise a
    /// place held until the request ends. Pools without `max_inflight`
    /// count nothing.
    pub fn admit(self: &Arc<Self>) -> Option<Admitted> {
        let Some(max) = self.def.max_inflight else {
            return Some(Admitted(None));
        };
        let before = self.inflight.fetch_add(1, Ordering::AcqRel);
        if before < max {
            return Some(Admitted(Some(self.clone())));
        }
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.overload_logged.load(Ordering::Relaxed);
        if now >= next
            && self
                .overload_logged
                .compare_exchange(next, now + 1000, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                upstream = %self.def.name,
                max_inflight = max,
                "upstream at max_inflight: requests answered 503 (logged once a second)"
            );
        }
        None
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

    /// Each backend's address, whether health checks find it up, and
    /// whether outlier ejection has it out now; in address order.
    pub fn backend_states(&self) -> Vec<BackendState> {
        let backends = self.backends();
        let mut out: Vec<BackendState> = backends
            .get_backend()
            .iter()
            .map(|b| BackendState {
                address: b.addr.to_string(),
                healthy: backends.ready(b),
                ejected: self
                    .outliers
                    .as_ref()
                    .is_some_and(|o| o.is_ejected(b, &self.metrics)),
            })
            .collect();
        out.sort_by(|a, b| a.address.cmp(&b.address));
        out
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
        let _one_at_a_time = self.round.lock().await;
        self.round_locked().await;
    }

    async fn round_locked(&self) {
        // Pingora starts every backend healthy and then needs
        // `unhealthy_after` failures: the first round alone must be able
        // to take a dead backend out (and a pool with nothing up needs one
        // success, not `healthy_after`, to serve again, as Envoy does at
        // start-up).
        let decisive = !self.checked.load(Ordering::Acquire) || self.healthy_backends() == 0;
        self.decisive.store(decisive, Ordering::Release);
        self.backends().run_health_check(true).await;
        self.checked.store(true, Ordering::Release);
    }

    /// For a request that found no healthy backend: runs a round now
    /// (unless the round it waited for brought one up, or a request
    /// started one less than [`RECHECK_EVERY`] ago), so a backend that
    /// came back serves this request instead of a 503 until the next
    /// interval.
    pub async fn recheck_when_down(&self) {
        let Some(hc) = &self.def.health_check else {
            return;
        };
        let mut last = self.round.lock().await;
        if self.healthy_backends() > 0 || last.is_some_and(|t| t.elapsed() < RECHECK_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        // A probe may connect and then read, each for up to `timeout`.
        let _ = tokio::time::timeout(hc.timeout * 2, self.round_locked()).await;
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

/// A request's place among its pool's requests in flight (see
/// [`Pool::admit`]); given back when dropped.
pub struct Admitted(Option<Arc<Pool>>);

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(pool) = &self.0 {
            pool.inflight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn host_of(server: &str) -> &str {
    server.rsplit_once(':').map_or(server, |(h, _)| h)
}

/// The configured check, with thresholds of one while its pool's round is
/// decisive (see [`Pool::check_once`]).
struct Decisive {
    inner: Box<dyn HealthCheck + Send + Sync>,
    decisive: Arc<AtomicBool>,
    unhealthy_after: usize,
    healthy_after: usize,
}

#[async_trait]
impl HealthCheck for Decisive {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        self.inner.check(target).await
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        self.inner.health_status_change(target, healthy).await
    }

    fn backend_summary(&self, target: &Backend) -> String {
        self.inner.backend_summary(target)
    }

    fn health_threshold(&self, success: bool) -> usize {
        if self.decisive.load(Ordering::Acquire) {
            1
        } else if success {
            self.healthy_after
        } else {
            self.unhealthy_after
        }
    }
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
