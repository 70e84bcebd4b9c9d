//! Assembling and running the Pingora server.

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::admin::{self, AdminState};
use crate::analytics;
use crate::api::{self, ApiState};
use crate::clicks::Pipeline;
use crate::config::Config;
use crate::console::{self, Console, Gate};
use crate::live::{self, Live, Meta, Policy, Reloader, Signals, Snapshot, Trigger};
use crate::metrics::Metrics;
use crate::serve::{self, AccessLog, Decider, Front, Gateway, Limits, Options, TrustedProxies};
use crate::store::{self, Store};
use crate::tls::acme::{Acme, AcmeService, Challenges};
use crate::tls::{CertWatch, Tls};
use crate::upstream;
use crate::web::{self, WebService};
use rules::RuleSet;

/// The read buffer of a TLS connection: one TLS record.
const TLS_READ_BUFFER: usize = 16 * 1024 + 512;

/// Longest a request on the health and metrics listener may take: a
/// scrape renders from memory, well under this.
const METRICS_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts health-check loops for the pools of whatever snapshot is live,
/// including pools that a reload adds later.
struct HealthChecks {
    live: Live,
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            upstream::spawn_health_checks(&self.live.load().pools);
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}

/// Follows the link store's change log.
struct Follower {
    store: Arc<Store>,
    live: Live,
}

#[async_trait]
impl BackgroundService for Follower {
    async fn start(&self, shutdown: ShutdownWatch) {
        store::follow(self.store.clone(), self.live.clone(), shutdown).await;
    }
}

/// Watches the rules files and polls the remote source, when configured.
struct Sources {
    reloader: Arc<Reloader>,
    watch: Option<Duration>,
    remote: Option<(String, Duration)>,
}

#[async_trait]
impl BackgroundService for Sources {
    async fn start(&self, shutdown: ShutdownWatch) {
        let watch = async {
            if let Some(debounce) = self.watch {
                live::watch(self.reloader.clone(), debounce, shutdown.clone()).await;
            }
        };
        let remote = async {
            if let Some((url, every)) = &self.remote {
                live::poll_remote(self.reloader.clone(), url.clone(), *every, shutdown.clone())
                    .await;
            }
        };
        tokio::join!(watch, remote);
    }
}

/// Writes this process's id to `path`, never through a symlink planted
/// there (the default lives in /tmp).
/// The admin token: `admin.token`, or with `admin.generate_token` one
/// made for this run and printed, so the console works on the bundled
/// config without a secret in it (only whoever reads the log can use it);
/// `None`: the admin API and the console are off.
fn admin_token(admin: &crate::config::AdminSection) -> Option<Arc<str>> {
    if let Some(token) = &admin.token {
        return Some(Arc::from(token.as_str()));
    }
    if !admin.generate_token {
        return None;
    }
    let token = crate::store::random_text(32);
    tracing::warn!(
        console = %format!("http://{}/console/", admin.listen),
        token = %token,
        "admin.token is not set: made one for this run (admin.generate_token); log in to the console with it, or set admin.token (GATEWAY_ADMIN_TOKEN) to keep one"
    );
    Some(Arc::from(token))
}

/// Makes `crypto` rustls's provider for this process. Pingora installs
/// `ring` when it builds a TLS acceptor or connector, unless a provider is
/// already installed, so installing ours first decides which one
/// handshakes.
fn install_crypto(crypto: crate::config::TlsCrypto) {
    let provider = match crypto {
        crate::config::TlsCrypto::AwsLcRs => rustls::crypto::aws_lc_rs::default_provider(),
        crate::config::TlsCrypto::Ring => rustls::crypto::ring::default_provider(),
    };
    if provider.install_default().is_err() {
        tracing::warn!(
            crypto = crypto.as_str(),
            "a TLS crypto provider was already installed; tls.crypto has no effect"
        );
    } else {
        tracing::info!(crypto = crypto.as_str(), "TLS crypto provider");
    }
}

fn write_pid_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o644)
        .open(path)?;
    writeln!(f, "{}", std::process::id())
}

/// Loads the rules, builds every service and runs until a shutdown signal.
pub fn run(config: Config, upgrade: bool) -> Result<()> {
    // Before anything makes a TLS connector (pools do), which would
    // install Pingora's default.
    install_crypto(config.tls.as_ref().map(|t| t.crypto).unwrap_or_default());
    let policy = Policy::of(&config);
    let rules = match RuleSet::load_with(&config.rules.path, &policy.load) {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                tracing::error!(file = %e.file, line = e.line, column = e.column, rule = %e.rule, "{}", e.message);
                eprintln!("{e}");
            }
            bail!(
                "{} error(s) in {}; not starting",
                errors.len(),
                config.rules.path.display()
            );
        }
    };
    let counts = rules.counts();
    if live::answering(&rules) == 0 && !policy.allow_empty {
        bail!(
            "{} has no rules and no links; not starting (set rules.allow_empty = true if that is meant)",
            config.rules.path.display()
        );
    }
    let text = std::fs::read_to_string(&config.rules.path)
        .with_context(|| format!("cannot read {}", config.rules.path.display()))?;
    let meta = Meta {
        version: 1,
        source: config.rules.path.display().to_string(),
        trigger: Trigger::Startup,
        text: text.into(),
    };
    let metrics = Metrics::new().context("cannot register metrics")?;
    let snapshot = Snapshot::build(rules, None, meta, &metrics)?;
    let store = match &config.store {
        Some(section) => {
            let store = Store::open(section, metrics.clone())
                .with_context(|| format!("cannot open the link store {}", section.display_url()))?;
            tracing::info!(kind = store.kind(), "link store open");
            Some(store)
        }
        None => {
            if snapshot.rules.store_domains().next().is_some() {
                tracing::warn!("the rules have [[domain]]s with store = true but there is no [store]: their codes answer as unknown");
            }
            None
        }
    };
    tracing::info!(
        rules = %config.rules.path.display(),
        hash = %snapshot.rules.content_hash(),
        redirects = counts.redirects,
        links = counts.links,
        routes = counts.routes,
        responds = counts.responds,
        upstreams = counts.upstreams,
        listen = ?config.server.listen,
        tls = config.tls.as_ref().map(|t| t.listen.as_str()),
                admin = %config.admin.listen,
        metrics = config.metrics.listen.as_deref(),
        clicks = config.clicks.enabled,
        fast_path = config.server.fast_path,
        threads = config.server.threads,
        "gateway starting"
    );
    let live = live::share(snapshot);
    let reloader = Reloader::new(
        live.clone(),
        config.rules.path.clone(),
        policy,
        metrics.clone(),
    );
    let access = AccessLog::new(config.log.access, config.log.sample);
    let clicks = if config.clicks.enabled {
        let p = Pipeline::start(&config.clicks, metrics.clone())?;
        tracing::info!(sink = config.clicks.sink.as_str(), dir = %config.clicks.dir.display(), "click events on");
        Some(p)
    } else {
        None
    };
    // Config validation saw to `[clicks]` and `[store]` being there.
    let analytics = match (&store, config.analytics.enabled) {
        (Some(store), true) => {
            let p = analytics::Pipeline::start(&config.analytics, store.clone(), metrics.clone())
                .context("cannot start the analytics flusher")?;
            tracing::info!(flush_every = ?config.analytics.flush_every, "link analytics on");
            Some(p)
        }
        _ => None,
    };
    // ACME's HTTP-01 answers, from the store: any gateway of the fleet
    // answers the CA (config validation saw to `[store]` being there).
    let challenges = match (&config.acme, &store) {
        (Some(_), Some(store)) => Some(Arc::new(Challenges::new(store.clone()))),
        _ => None,
    };
    let trusted = Arc::new(TrustedProxies::parse(&config.server.trusted_proxies)?);
    let decider = Arc::new(Decider::new(
        live.clone(),
        metrics.clone(),
        Options {
            version_header: config.rules.version_header,
            access,
            clicks: clicks.as_ref().map(|p| p.clicks.clone()),
            analytics: analytics.as_ref().map(|p| p.analytics.clone()),
            trusted_proxies: trusted,
            store: store.clone(),
            challenges: challenges.clone(),
        },
    ));

    let grace = config.server.grace_period.as_secs_f64().ceil() as u64;
    let conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: config.server.upgrade_sock.clone(),
        pid_file: config.server.pid_file.clone(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let conf = server.configuration.clone();
    let front = |tls: bool| {
        let proxy = pingora::proxy::http_proxy(
            &conf,
            Gateway::new(decider.clone(), tls, config.server.body_timeout),
        );
        let limits = Limits {
            header_timeout: config.server.header_timeout,
            keepalive_timeout: config.server.keepalive_timeout,
            max_head: config.server.max_head_bytes,
            max_line: config.server.max_line_bytes,
        };
        Front::new(
            decider.clone(),
            proxy,
            config.server.fast_path,
            limits,
            Some(&metrics.connections_closed),
        )
        .tls(tls)
    };
    if !config.server.listen.is_empty() {
        let mut service = Service::new("gateway".to_string(), front(false));
        for addr in &config.server.listen {
            // The front reads into its own small buffer: Pingora's default
            // 64 KiB read buffer per connection would only copy, and made
            // each idle keep-alive connection cost about 85 KB.
            service.add_listener(
                ListenerConfig::tcp(addr.as_str())
                    .l4_buffer(L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE)),
            );
        }
        server.add_service(service);
    }
    let mut acme = None;
    if let Some(tls) = &config.tls {
        let certs = Arc::new(Tls::start(tls, metrics.clone())?);
        if let (Some(section), Some(store), Some(challenges)) = (&config.acme, &store, &challenges)
        {
            acme = Some(Arc::new(Acme::new(
                section.clone(),
                store.clone(),
                certs.certificates.clone(),
                challenges.clone(),
                metrics.clone(),
            )));
            tracing::info!(directory = %section.directory, "automatic certificates for custom domains on");
        }
        // The front does the handshakes, with a rustls configuration of
        // ours (Pingora's TLS listener allows no session store or tickets).
        let tls_front = front(true).terminate_tls(certs.server_config(tls)?);
        let mut service = Service::new("gateway tls".to_string(), tls_front);
        server.add_service(background_service("certificate watch", CertWatch(certs)));
        // TLS reads whole records (up to 16 KiB); a buffer of one record
        // keeps those reads to one syscall without Pingora's 64 KiB default.
        service.add_listener(ListenerConfig::tcp(tls.listen.as_str()).l4_buffer(
            L4BufferSettings::new(TLS_READ_BUFFER, DEFAULT_L4_WRITE_BUFFER_SIZE),
        ));
        server.add_service(service);
    }
    // Not Pingora services: axum routers on their own listeners
    // (`web::WebService`), bound here so a taken port stops the start.
    // After `bootstrap`, which in an upgrade waits for the old process's
    // listeners: bound earlier, the new socket would share the port's
    // connections while nothing serves it yet. The old process serves its
    // own for 5 s after the handover, so there is no gap either.
    // One state for the Links API on its listener and for the operator's
    // link routes on the admin listener: one key cache, one set of limits.
    let api_state = store.as_ref().map(|store| {
        Arc::new(
            ApiState::new(
                store.clone(),
                live.clone(),
                config.api.clone().unwrap_or_default(),
                metrics.clone(),
            )
            .with_acme(acme.clone()),
        )
    });
    let admin_router = admin::router(AdminState {
        reloader: reloader.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        token: admin_token(&config.admin),
        max_body: config.admin.max_body_bytes,
        sessions: Arc::new(web::Sessions::new("gateway_console_admin")),
        links: api_state.clone(),
    });
    // A reload runs up to reload_timeout and may then wait for a new
    // pool's first health checks; `gateway reload` waits 30 s longer than
    // reload_timeout, and so does the listener before it gives up.
    let admin_timeout = config.rules.reload_timeout + Duration::from_secs(30);
    let mut service = background_service(
        "admin",
        WebService::new(
            "admin",
            web::bind("admin.listen", &config.admin.listen, upgrade)?,
            admin_router,
            config.admin.max_body_bytes,
            admin_timeout,
        ),
    );
    service.threads = Some(1);
    server.add_service(service);
    if let Some(addr) = &config.metrics.listen {
        let mut service = background_service(
            "metrics",
            WebService::new(
                "metrics",
                web::bind("metrics.listen", addr, upgrade)?,
                admin::metrics_router(metrics.clone(), live.clone()),
                // Nothing here reads a body; a probe that sends one anyway
                // is not refused for it.
                64 << 10,
                METRICS_TIMEOUT,
            ),
        );
        service.threads = Some(1);
        server.add_service(service);
    }
    server.add_service(background_service(
        "health checks",
        HealthChecks { live: live.clone() },
    ));
    if let (Some(section), Some(state)) = (&config.api, &api_state) {
        let listener = web::bind("api.listen", &section.listen, upgrade)?;
        let observer = api::observer(metrics.clone());
        let console = console::router(Console {
            sessions: state.sessions.clone(),
            gate: Gate::Partners(state.clone()),
            live: live.clone(),
        });
        let app = WebService::new(
            "links api",
            listener,
            api::router(state.clone(), console),
            usize::try_from(section.max_body_bytes).unwrap_or(usize::MAX),
            section.timeout,
        )
        .nice(section.nice)
        .observed(observer);
        let mut service = background_service("links api", app);
        // Its own runtime: the redirect workers never run API work.
        service.threads = Some(section.threads);
        server.add_service(service);
        tracing::info!(listen = %section.listen, "links API on");
    }
    if let Some(acme) = acme {
        // Its own runtime (one thread): orders and DNS lookups never run
        // on a worker that answers requests.
        let mut service = background_service("acme", AcmeService(acme));
        service.threads = Some(1);
        server.add_service(service);
    }
    if let Some(store) = store {
        server.add_service(background_service(
            "store follower",
            Follower {
                store,
                live: live.clone(),
            },
        ));
    }
    server.add_service(background_service(
        "rules sources",
        Sources {
            reloader: reloader.clone(),
            watch: config.rules.watch.then_some(config.rules.debounce),
            remote: config
                .rules
                .url
                .clone()
                .map(|u| (u, config.rules.poll_interval)),
        },
    ));

    // Pingora writes its pid file only when it daemonizes; `kill -HUP
    // "$(cat pid_file)"` and supervisors need it in the foreground too.
    let pid_file = std::path::PathBuf::from(&config.server.pid_file);
    if !config.server.pid_file.is_empty() {
        // Not a reason to refuse to serve (a read-only root file system):
        // say so and go on.
        if let Err(e) = write_pid_file(&pid_file) {
            tracing::warn!(pid_file = %pid_file.display(), error = %e, "cannot write the pid file");
        }
    }
    let finish = Arc::new(Finish {
        clicks: Mutex::new(clicks),
        analytics: Mutex::new(analytics),
        pid_file,
    });
    let phases = server.watch_execution_phase();
    {
        let finish = finish.clone();
        let grace = config.server.grace_period;
        std::thread::Builder::new()
            .name("drain".into())
            .spawn(move || exit_when_drained(phases, grace, &finish))
            .context("cannot start the drain watcher")?;
    }
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals { reloader }),
    });
    finish.run();
    Ok(())
}

/// What the process does last, whichever way the graceful stop ends.
struct Finish {
    clicks: Mutex<Option<Pipeline>>,
    analytics: Mutex<Option<analytics::Pipeline>>,
    pid_file: PathBuf,
}

impl Finish {
    /// Runs once; a second call finds nothing left to do.
    fn run(&self) {
        let clicks = taken(&self.clicks);
        // Every listener is closed and every request finished: write out
        // what is still queued before the process ends.
        if let Some(p) = clicks {
            p.shutdown();
        }
        // And add the counters still in memory to the store.
        if let Some(p) = taken(&self.analytics) {
            p.shutdown();
        }
        // Only our own: after an upgrade the new process has rewritten it.
        let ours = std::fs::read_to_string(&self.pid_file)
            .is_ok_and(|t| t.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.pid_file);
        }
    }
}

/// What `slot` held, leaving it empty (a panic elsewhere does not keep
/// the last flush from running).
fn taken<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    match slot.lock() {
        Ok(mut s) => s.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    }
}

/// Pingora's graceful stop closes the listeners and then sleeps for the
/// whole `grace_period_seconds` (a plain `thread::sleep` in `Server::run`,
/// with no way to end it early), so an idle gateway took the full grace
/// period to stop. This watches for that sleep to begin and ends the
/// process once no connection is left, finishing as `run` would.
fn exit_when_drained(
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    grace: Duration,
    finish: &Finish,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::ShutdownGracePeriod) => break,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
    let deadline = Instant::now() + grace;
    // A connection accepted just before the listeners closed may still be
    // in its TLS handshake, not yet counted by the front: only a zero
    // that lasts a few polls counts.
    let mut idle_polls = 0;
    while Instant::now() < deadline {
        if serve::CONNECTIONS.load(std::sync::atomic::Ordering::Acquire) == 0 {
            idle_polls += 1;
            if idle_polls >= 3 {
                tracing::info!("no request in flight; stopping before the grace period ends");
                finish.run();
                std::process::exit(0);
            }
        } else {
            idle_polls = 0;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
