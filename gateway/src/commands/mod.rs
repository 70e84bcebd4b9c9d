//! The commands besides `run`: `check` and `explain` (offline), `health`
//! and `reload` (talking to a running gateway's admin listener), and
//! `store` (the link store: [`store`]).

pub mod keys;
pub mod store;

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use rules::{LoadOptions, Probe, RuleSet};

/// `gateway check`: validates a rules file and runs its tests. Prints every
/// error as `file:line:col: rule <id>: message`.
pub fn check(path: &Path, opts: &LoadOptions) -> ExitCode {
    match RuleSet::load_with(path, opts) {
        Ok(set) => {
            let c = set.counts();
            println!(
                "{}: ok ({} redirects, {} links in {} sets, {} routes, {} responds, {} upstreams, {} domains; {} tests passed)",
                path.display(),
                c.redirects,
                c.links,
                c.link_sets,
                c.routes,
                c.responds,
                c.upstreams,
                c.domains,
                c.tests
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                println!("{e}");
            }
            eprintln!("{}: {} error(s)", path.display(), errors.len());
            ExitCode::from(1)
        }
    }
}

/// What `gateway explain` is asked.
pub struct ExplainArgs<'a> {
    /// Rules file.
    pub rules: &'a Path,
    /// `http://host/path?query`.
    pub url: &'a str,
    /// User-Agent.
    pub ua: Option<&'a str>,
    /// Country code.
    pub country: Option<&'a str>,
    /// Client IP.
    pub ip: Option<&'a str>,
    /// Method.
    pub method: &'a str,
    /// JSON output.
    pub json: bool,
    /// The link store to ask for codes on store domains (`-c` with a
    /// `[store]`).
    pub store: Option<&'a crate::config::StoreSection>,
}

/// `gateway explain`: which rule answers a URL, and why.
pub fn explain(args: ExplainArgs<'_>) -> Result<ExitCode> {
    let set = match RuleSet::load(args.rules) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let req = Probe {
        url: args.url,
        method: Some(args.method),
        user_agent: args.ua,
        country: args.country,
        ip: args.ip,
        click_id: None,
    }
    .request(rules::unix_now())
    .map_err(anyhow::Error::msg)?;
    let mut e = set.explain(&req);
    if let (Some(section), Some(rules::StoreStep::Absent { .. })) = (args.store, &e.store) {
        e = store::explain_stored(&set, &req, section)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// One request to the admin listener at `admin_listen` (an unspecified
/// address means this host); returns the status and the body.
fn admin_call(
    admin_listen: &str,
    method: &str,
    target: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(u16, String)> {
    let mut addr: SocketAddr = admin_listen
        .parse()
        .with_context(|| format!("admin.listen `{admin_listen}` is not an address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("cannot connect to the admin listener at {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("no complete answer from {addr}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    match status {
        Some(code) => Ok((code, body.to_string())),
        None => bail!("no answer from {addr}"),
    }
}

/// `gateway reload`: asks the running gateway (found by its config's
/// admin listener and token) to reload its rules files, like
/// `nginx -s reload`; `force` applies rules the reload policy would hold
/// back. Exit 0 when the rules are live (new or unchanged).
pub fn reload(
    admin_listen: &str,
    token: Option<&str>,
    force: bool,
    reload_timeout: Duration,
) -> Result<ExitCode> {
    let Some(token) = token else {
        bail!("the admin API needs a token: set admin.token in the config or GATEWAY_ADMIN_TOKEN");
    };
    let target = if force {
        "/admin/reload?force=true"
    } else {
        "/admin/reload"
    };
    // The server bounds a reload by reload_timeout (and may then run a new
    // pool's first health checks): wait a little longer than that.
    let wait = reload_timeout + Duration::from_secs(30);
    let (status, body) = admin_call(admin_listen, "POST", target, Some(token), wait)?;
    print!("{body}");
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        eprintln!("gateway reload: the gateway answered {status}");
        ExitCode::from(1)
    })
}

/// `gateway health`: probes the admin `/ready` endpoint; exit 0 when ready.
/// Needs no curl in the container image.
pub fn health(admin_listen: &str) -> Result<ExitCode> {
    let (status, _) = admin_call(admin_listen, "GET", "/ready", None, Duration::from_secs(2))?;
    if status == 200 {
        println!("ready");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("not ready: {status}");
        Ok(ExitCode::from(1))
    }
}
