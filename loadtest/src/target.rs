//! Where load goes: `http://host:port` URLs, resolved and restricted to
//! loopback addresses (this tool only ever loads servers on this machine).

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `http://host:port[/]` (or a bare `host:port`) to a loopback
/// socket address. Anything that is not loopback is refused.
pub fn resolve(url: &str) -> Result<SocketAddr> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.contains("://") {
        bail!("`{url}`: only http:// targets are supported");
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        bail!("`{url}` has no host:port");
    }
    let with_port = if authority.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
    }) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{url}`"))?
        .collect();
    match addrs.iter().find(|a| a.ip().is_loopback()) {
        Some(a) => Ok(*a),
        None => bail!("`{url}` is not a loopback address: load is only sent to this machine"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert_eq!(
            resolve("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            resolve("127.0.0.1:9").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert_eq!(resolve("http://127.0.0.1/x").unwrap().port(), 80);
        assert!(resolve("http://10.0.0.1:80").is_err());
        assert!(resolve("https://127.0.0.1:80").is_err());
    }
}
