//! What each scenario asks for. A [`Generator`] writes the bytes of the
//! next request and says which status answers it correctly; every
//! connection has its own generator, seeded from the run seed and the
//! connection number, so runs are reproducible.

use clap::ValueEnum;
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;

use crate::genlinks::{self, API_HOST, CODE_LEN, HOT};
use crate::rng::Rng;
use crate::zipf::Zipf;

/// The load scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One bulk link, again and again.
    RedirectHot,
    /// Uniform over all N bulk links (`--links N` as given to gen-links).
    RedirectSpread,
    /// Zipf-distributed over the N bulk links (a few very hot, a long tail).
    RedirectZipf,
    /// The pattern rule `/p/{sku}` with iOS, Android and desktop agents.
    Pattern,
    /// Through the gateway to an upstream, then straight to the upstream.
    Proxy,
    /// Links (Zipf), pattern, proxy and misses together.
    Mixed,
    /// Uniform links while the rules are replaced every 250 ms.
    Reload,
    /// Uniform over N links kept in the gateway's link store instead of a
    /// CSV (the same codes: import gen-links' CSV with `gateway store
    /// import`, on a `[[domain]]` with `store = true`).
    RedirectStore,
    /// The hot link with `Connection: close`: every request on a new
    /// connection (plain TCP, or TLS with `--tls`, resumed with `--resume`),
    /// a visitor's click.
    Fresh,
}

impl Scenario {
    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::RedirectHot => "redirect-hot",
            Scenario::RedirectSpread => "redirect-spread",
            Scenario::RedirectZipf => "redirect-zipf",
            Scenario::Pattern => "pattern",
            Scenario::Proxy => "proxy",
            Scenario::Mixed => "mixed",
            Scenario::Reload => "reload",
            Scenario::RedirectStore => "redirect-store",
            Scenario::Fresh => "fresh",
        }
    }

    /// Whether the scenario picks among all N links (so `--links` matters).
    pub fn needs_links(self) -> bool {
        matches!(
            self,
            Scenario::RedirectSpread
                | Scenario::RedirectZipf
                | Scenario::Mixed
                | Scenario::Reload
                | Scenario::RedirectStore
        )
    }
}

/// User-Agents of the `pattern` scenario.
pub const USER_AGENTS: [(&str, &str); 3] = [
    (
        "ios",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    ),
    (
        "android",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    ),
    (
        "desktop",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    ),
];

/// User-Agent of every other request.
pub const PLAIN_AGENT: &str = "loadtest/0.1";

/// Parameters shared by every connection of a run.
#[derive(Clone, Debug)]
pub struct Params {
    /// Number of bulk links (as given to gen-links).
    pub links: u64,
    /// Host of the links and the pattern rule.
    pub host: String,
    /// Zipf exponent.
    pub zipf_s: f64,
    /// Run seed.
    pub seed: u64,
    /// Every link request from a different `X-Forwarded-For` address.
    pub distinct_visitors: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            links: 1,
            host: genlinks::DEFAULT_HOST.into(),
            zipf_s: 1.0,
            seed: 1,
            distinct_visitors: false,
        }
    }
}

/// One kind of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Bulk link `i` (302).
    Link(u64),
    /// `/p/sku-<n>` with User-Agent `USER_AGENTS[ua]` (302).
    Pattern { sku: u64, ua: usize },
    /// `/api/item/<n>` on the API host (200 from the upstream).
    Api(u64),
    /// A path no rule matches (404).
    Miss(u64),
}

impl Pick {
    /// The status that answers it correctly.
    pub fn expected_status(self) -> u16 {
        match self {
            Pick::Link(_) | Pick::Pattern { .. } => 302,
            Pick::Api(_) => 200,
            Pick::Miss(_) => 404,
        }
    }
}

/// Writes the request for `pick` into `out`.
pub fn write_request(pick: Pick, host: &str, out: &mut Vec<u8>) {
    match pick {
        Pick::Link(i) => {
            let mut code = [0u8; CODE_LEN];
            genlinks::code_into(i, &mut code);
            out.extend_from_slice(b"GET /");
            out.extend_from_slice(&code);
            finish(out, host, PLAIN_AGENT);
        }
        Pick::Pattern { sku, ua } => {
            let _ = write!(out, "GET /p/sku-{sku}");
            finish(out, host, USER_AGENTS[ua % USER_AGENTS.len()].1);
        }
        Pick::Api(n) => {
            let _ = write!(out, "GET /api/item/{n}");
            finish(out, API_HOST, PLAIN_AGENT);
        }
        Pick::Miss(n) => {
            let _ = write!(out, "GET /no/such/link/{n}");
            finish(out, host, PLAIN_AGENT);
        }
    }
}

fn finish(out: &mut Vec<u8>, host: &str, agent: &str) {
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: ");
    out.extend_from_slice(agent.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// The request stream of one connection.
pub struct Generator {
    scenario: Scenario,
    params: Arc<Params>,
    zipf: Option<Arc<Zipf>>,
    rng: Rng,
}

impl Generator {
    /// Generators for `conns` connections of one run.
    pub fn for_run(scenario: Scenario, params: &Params, conns: usize) -> Vec<Generator> {
        let params = Arc::new(params.clone());
        let zipf = matches!(scenario, Scenario::RedirectZipf | Scenario::Mixed)
            .then(|| Arc::new(Zipf::new(params.links.max(1), params.zipf_s)));
        (0..conns)
            .map(|c| Generator {
                scenario,
                params: params.clone(),
                zipf: zipf.clone(),
                rng: Rng::new(
                    params
                        .seed
                        .wrapping_mul(0x2545_F491_4F6C_DD1D)
                        .wrapping_add(c as u64),
                ),
            })
            .collect()
    }

    /// The next request of this connection.
    pub fn pick(&mut self) -> Pick {
        let n = self.params.links.max(1);
        match self.scenario {
            Scenario::RedirectHot | Scenario::Fresh => Pick::Link(HOT),
            Scenario::RedirectSpread | Scenario::Reload | Scenario::RedirectStore => {
                Pick::Link(self.rng.below(n))
            }
            Scenario::RedirectZipf => Pick::Link(self.zipf_index()),
            Scenario::Pattern => self.pattern(),
            Scenario::Proxy => Pick::Api(self.rng.below(1_000_000)),
            Scenario::Mixed => match self.rng.below(100) {
                0..=49 => Pick::Link(self.zipf_index()),
                50..=74 => self.pattern(),
                75..=89 => Pick::Api(self.rng.below(1_000_000)),
                _ => Pick::Miss(self.rng.below(1_000_000)),
            },
        }
    }

    /// Writes the next request into `out` (cleared first) and returns the
    /// status that answers it correctly.
    pub fn next_request(&mut self, out: &mut Vec<u8>) -> u16 {
        let pick = self.pick();
        out.clear();
        write_request(pick, &self.params.host, out);
        if self.params.distinct_visitors && matches!(pick, Pick::Link(_)) {
            // Before the blank line that ends the head.
            out.truncate(out.len() - 2);
            let ip = self.rng.below(1 << 32) as u32;
            let [a, b, c, d] = ip.to_be_bytes();
            let _ = write!(out, "X-Forwarded-For: {a}.{b}.{c}.{d}\r\n\r\n");
        }
        if self.scenario == Scenario::Fresh {
            out.truncate(out.len() - 2);
            out.extend_from_slice(b"Connection: close\r\n\r\n");
        }
        pick.expected_status()
    }

    fn zipf_index(&mut self) -> u64 {
        let z = self.zipf.as_ref().expect("zipf scenario");
        z.sample(&mut self.rng) - 1
    }

    fn pattern(&mut self) -> Pick {
        Pick::Pattern {
            sku: self.rng.below(100_000),
            ua: self.rng.below(USER_AGENTS.len() as u64) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_well_formed_and_reproducible() {
        let params = Params {
            links: 1000,
            ..Params::default()
        };
        for s in Scenario::value_variants() {
            let mut a = Generator::for_run(*s, &params, 2);
            let mut b = Generator::for_run(*s, &params, 2);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for _ in 0..50 {
                let sx = a[1].next_request(&mut x);
                let sy = b[1].next_request(&mut y);
                assert_eq!((sx, &x), (sy, &y));
                let text = String::from_utf8(x.clone()).unwrap();
                assert!(text.starts_with("GET /"), "{text}");
                assert!(text.ends_with("\r\n\r\n"), "{text}");
            }
        }
        let mut g = Generator::for_run(Scenario::RedirectHot, &params, 1);
        let mut out = Vec::new();
        assert_eq!(g[0].next_request(&mut out), 302);
        assert!(String::from_utf8(out).unwrap().starts_with(&format!(
            "GET /{} HTTP/1.1\r\nHost: go.example.com\r\n",
            genlinks::code(HOT)
        )));
    }

    #[test]
    fn fresh_is_the_hot_link_with_connection_close() {
        let params = Params::default();
        let mut hot = Generator::for_run(Scenario::RedirectHot, &params, 1);
        let mut fresh = Generator::for_run(Scenario::Fresh, &params, 1);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert_eq!(hot[0].next_request(&mut a), 302);
        assert_eq!(fresh[0].next_request(&mut b), 302);
        let (a, b) = (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        assert_eq!(b, format!("{}Connection: close\r\n\r\n", &a[..a.len() - 2]));
        assert_eq!(b.matches("\r\n\r\n").count(), 1);
    }
}
