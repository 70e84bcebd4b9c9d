//! The offline commands: `check`, `explain` and `health`.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use rules::{Request, RuleSet};

/// `gateway check`: validates a rules file and runs its tests. Prints every
/// error as `file:line:col: rule <id>: message`.
pub fn check(path: &Path) -> ExitCode {
    match RuleSet::load(path) {
        Ok(set) => {
            let c = set.counts();
            println!(
                "{}: ok ({} redirects, {} links in {} sets, {} routes, {} responds, {} upstreams; {} tests passed)",
                path.display(),
                c.redirects,
                c.links,
                c.link_sets,
                c.routes,
                c.responds,
                c.upstreams,
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
    let (host, path, query) = rules::split_url(args.url).map_err(anyhow::Error::msg)?;
    let client_ip = match args.ip {
        Some(ip) => Some(
            ip.parse()
                .with_context(|| format!("--ip {ip} is not an IP address"))?,
        ),
        None => None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let req = Request {
        method: args.method,
        host,
        path,
        query,
        user_agent: args.ua.unwrap_or(""),
        country: args.country,
        client_ip,
        click_id: None,
        now,
    };
    let e = set.explain(&req);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `gateway health`: probes the admin `/ready` endpoint; exit 0 when ready.
/// Needs no curl in the container image.
pub fn health(admin_listen: &str) -> Result<ExitCode> {
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
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) == Some("200") {
        println!("ready");
        Ok(ExitCode::SUCCESS)
    } else if status.is_empty() {
        bail!("no answer from {addr}")
    } else {
        println!("not ready: {status}");
        Ok(ExitCode::from(1))
    }
}
