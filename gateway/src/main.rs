//! `gateway`: the edge gateway binary, a thin command line around the
//! `gateway` library.
//!
//! Link redirects and API routing from a hot-reloadable rule set, on
//! Pingora. See the README and `docs/` for how to run and operate it.

use gateway::{commands, Config};

/// mimalloc instead of glibc malloc: allocation is a measurable share of
/// the request path, and glibc kept most of every replaced rule set
/// (a million small allocations per million links) instead of returning it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "Edge gateway: link redirects and API routing"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Server configuration (for the default `run`).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run {
        /// Take over the listening sockets of a running gateway (send the
        /// old process SIGQUIT after starting this one).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a rules file and run its embedded tests.
    Check {
        /// The rules file.
        rules: PathBuf,
    },
    /// Show which rule answers a URL, and why.
    Explain {
        /// The rules file.
        rules: PathBuf,
        /// The URL, e.g. http://go.example.com/p/123?x=1
        url: String,
        /// User-Agent.
        #[arg(long)]
        ua: Option<String>,
        /// ISO country code.
        #[arg(long)]
        country: Option<String>,
        /// Client IP (for sticky splits).
        #[arg(long)]
        ip: Option<String>,
        /// HTTP method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Probe the admin /ready endpoint (for container health checks).
    Health,
    /// The link store (`[store]` in the config): migrate, status, import,
    /// export.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// API keys of the Links API (`[api]`): create, list, revoke.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Ask the running gateway to reload its rules (like `nginx -s reload`).
    Reload {
        /// Apply rules that would empty the set or remove more of it than
        /// `rules.max_drop` allows.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Create or upgrade the store's tables (the gateway also does this
    /// when it starts).
    Migrate,
    /// Where the store is, its migrations, how many links, the change log.
    Status,
    /// Import links from a CSV (columns as `export` writes them; `code`
    /// and `to` at least), checked like the rules' bulk links; all or
    /// nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Host of rows without a `host` column.
        #[arg(long)]
        host: Option<String>,
        /// Check every row, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Every link as CSV on stdout.
    Export,
    /// Create one link.
    Add {
        /// Its host (a `[[domain]]` with `store = true`).
        #[arg(long)]
        host: String,
        /// Its code (the path after `/`).
        #[arg(long)]
        code: String,
        /// Where it redirects.
        #[arg(long)]
        to: String,
        /// 301, 302, 303, 307 or 308.
        #[arg(long, default_value_t = 302)]
        status: u16,
    },
    /// Delete one link.
    Remove {
        /// Its host.
        #[arg(long)]
        host: String,
        /// Its code.
        #[arg(long)]
        code: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key and print its secret (shown once; the store keeps only
    /// its hash).
    Create {
        /// Who it is for, e.g. `partner-a`.
        #[arg(long)]
        name: String,
        /// Hosts it may create links on (comma-separated; `*.example.com`
        /// covers subdomains).
        #[arg(long, required = true, value_delimiter = ',')]
        hosts: Vec<String>,
        /// Sustained request rate, e.g. `50/s`.
        #[arg(long)]
        rate: Option<String>,
        /// Requests at once above the rate (twice the rate by default).
        #[arg(long)]
        burst: Option<u32>,
        /// It may read links, not write them.
        #[arg(long)]
        read_only: bool,
        /// Links it may create per calendar month (UTC).
        #[arg(long)]
        monthly_quota: Option<i64>,
    },
    /// Every key (never a secret).
    List {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id (or by name); every gateway refuses it within
    /// the store's poll interval.
    Revoke {
        /// The key's id or name.
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run { upgrade: false }) {
        Command::Check { rules } => {
            // With a config, its allow_dirs (and deny list) apply as when
            // the gateway loads these rules.
            let opts = match &cli.config {
                Some(p) => match Config::load(Some(p), std::env::vars()) {
                    Ok(c) => c.load_options(),
                    Err(e) => {
                        eprintln!("gateway: {e:#}");
                        return ExitCode::from(2);
                    }
                },
                None => rules::LoadOptions::default(),
            };
            return commands::check(&rules, &opts);
        }
        Command::Explain {
            rules,
            url,
            ua,
            country,
            ip,
            method,
            json,
        } => {
            // With a config that has a [store], codes on store domains are
            // looked up in it.
            let config = match &cli.config {
                Some(p) => match Config::load(Some(p), std::env::vars()) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        eprintln!("gateway: {e:#}");
                        return ExitCode::from(2);
                    }
                },
                None => None,
            };
            commands::explain(commands::ExplainArgs {
                rules: &rules,
                url: &url,
                ua: ua.as_deref(),
                country: country.as_deref(),
                ip: ip.as_deref(),
                method: &method,
                json,
                store: config.as_ref().and_then(|c| c.store.as_ref()),
            })
        }
        Command::Store { command } => Config::load(cli.config.as_deref(), std::env::vars())
            .and_then(|c| match command {
                StoreCommand::Migrate => commands::store::migrate(&c),
                StoreCommand::Status => commands::store::status(&c),
                StoreCommand::Import {
                    file,
                    host,
                    dry_run,
                } => commands::store::import(&c, &file, host.as_deref(), dry_run),
                StoreCommand::Export => commands::store::export(&c),
                StoreCommand::Add {
                    host,
                    code,
                    to,
                    status,
                } => commands::store::add(&c, &host, &code, &to, status),
                StoreCommand::Remove { host, code } => commands::store::remove(&c, &host, &code),
            }),
        Command::Keys { command } => Config::load(cli.config.as_deref(), std::env::vars())
            .and_then(|c| match command {
                KeysCommand::Create {
                    name,
                    hosts,
                    rate,
                    burst,
                    read_only,
                    monthly_quota,
                } => commands::keys::create(
                    &c,
                    &commands::keys::CreateArgs {
                        name: &name,
                        hosts: &hosts,
                        rate: rate.as_deref(),
                        burst,
                        read_only,
                        monthly_quota,
                    },
                ),
                KeysCommand::List { json } => commands::keys::list(&c, json),
                KeysCommand::Revoke { id } => commands::keys::revoke(&c, &id),
            }),
        Command::Health => Config::load(cli.config.as_deref(), std::env::vars())
            .and_then(|c| commands::health(&c.admin.listen)),
        Command::Reload { force } => Config::load(cli.config.as_deref(), std::env::vars())
            .and_then(|c| {
                commands::reload(
                    &c.admin.listen,
                    c.admin.token.as_deref(),
                    force,
                    c.rules.reload_timeout,
                )
            }),
        Command::Run { upgrade } => run(cli.config, upgrade).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gateway: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(config_path: Option<PathBuf>, upgrade: bool) -> anyhow::Result<()> {
    let config = Config::load(config_path.as_deref(), std::env::vars())?;
    gateway::init_logging(&config.log)?;
    std::thread::Builder::new()
        .name("allocator".into())
        .spawn(return_freed_memory)?;
    gateway::run(config, upgrade)
}

/// mimalloc gives freed memory back to the system only when an
/// allocation or a collection notices that its purge delay has passed; a
/// worker that falls quiet after a burst (thousands of connections
/// closed at once) would keep it all. A collection every second purges
/// what has been free that long, process-wide.
fn return_freed_memory() {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        // SAFETY: mi_collect takes no pointers and may be called from any
        // thread at any time.
        unsafe { libmimalloc_sys::mi_collect(false) };
    }
}
