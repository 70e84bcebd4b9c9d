//! The one reader of the Prometheus text format (version 0.0.4) in the
//! tests: every test that reads `/metrics` goes through it.
//!
//! It is strict, so every scrape also checks the exposition itself: each
//! sample has a valid metric name, well-formed labels (quoted values with
//! only the `\n`, `\\` and `\"` escapes, no label twice) and a number (or
//! `+Inf`, `-Inf`, `NaN`), and belongs to a family declared by a `# TYPE`
//! line (a histogram's or summary's `_bucket`, `_sum` and `_count` series
//! count as its own).

use super::gateway::Gateway;
use super::http::request;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Label name to value.
pub type Labels = BTreeMap<String, String>;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

/// A parsed `/metrics` scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// The text as served.
    pub text: String,
    pub samples: Vec<Sample>,
    /// Family name to type (`counter`, `gauge`, `histogram`, ...), from
    /// the `# TYPE` lines.
    pub families: BTreeMap<String, String>,
    /// Families with a `# HELP` line.
    pub helped: BTreeSet<String>,
}

impl Scrape {
    /// `GET /metrics` on `addr` (an admin or metrics listener, no token):
    /// 200, `text/plain`, parsed.
    pub fn fetch(addr: SocketAddr, host: &str) -> Scrape {
        let r = request(addr, "GET", "/metrics", host, &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/plain")),
            "{:?}",
            r.headers
        );
        Scrape::parse(&r.text())
    }

    /// Parses and checks a scrape; panics on anything malformed.
    pub fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        let mut families = BTreeMap::new();
        let mut helped = BTreeSet::new();
        for line in text.lines() {
            let line = line.trim_end();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                    panic!("bad TYPE line {line:?}");
                };
                families.insert(name.to_string(), kind.to_string());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_else(|| panic!("bad HELP line {line:?}"));
                helped.insert(name.to_string());
            } else if !line.is_empty() && !line.starts_with('#') {
                samples.push(parse_sample(line));
            }
        }
        let scrape = Scrape {
            text: text.to_string(),
            samples,
            families,
            helped,
        };
        let names = scrape.names();
        for sample in &scrape.samples {
            assert!(
                names.contains(&sample.name),
                "sample {} has no # TYPE line",
                sample.name
            );
        }
        scrape
    }

    /// Every name a query may use: family names and sample names (so the
    /// `_bucket`, `_sum` and `_count` series of histograms count too).
    pub fn names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.families.keys().cloned().collect();
        for (name, kind) in &self.families {
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
        names
    }

    /// Every series of `name`.
    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the series of `name` with exactly these labels.
    pub fn get(&self, name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        let want: Labels = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert!(found.len() <= 1, "{name}{want:?} appears twice");
        found.first().map(|s| s.value)
    }

    /// Like [`Scrape::get`], panicking with the scrape when absent.
    pub fn value(&self, name: &str, pairs: &[(&str, &str)]) -> f64 {
        self.get(name, pairs).unwrap_or_else(|| {
            panic!(
                "no series {name}{pairs:?} in the scrape:\n{}",
                self.gateway_lines()
            )
        })
    }

    /// Asserts the series exists with exactly `want`.
    pub fn expect(&self, name: &str, pairs: &[(&str, &str)], want: f64) {
        let got = self.value(name, pairs);
        assert_eq!(
            got,
            want,
            "{name}{pairs:?}\n{}",
            self.lines_of(name).join("\n")
        );
    }

    /// Sum over the series of `name` that carry all of `pairs` (and maybe
    /// more labels); 0 when there is none. `&[]` sums the whole metric.
    pub fn sum(&self, name: &str, pairs: &[(&str, &str)]) -> f64 {
        self.series(name)
            .iter()
            .filter(|s| {
                pairs
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Number of sample lines of the gateway's own metrics.
    pub fn gateway_series(&self) -> usize {
        self.samples
            .iter()
            .filter(|s| s.name.starts_with("gateway_"))
            .count()
    }

    /// The sample lines of `name`, as served (for messages).
    pub fn lines_of(&self, name: &str) -> Vec<&str> {
        self.text
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
            })
            .collect()
    }

    /// The sample lines of the gateway's own metrics (for messages).
    pub fn gateway_lines(&self) -> String {
        self.text
            .lines()
            .filter(|l| l.starts_with("gateway_"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Gateway {
    /// `GET /metrics` on the admin listener, no token.
    pub fn scrape(&self) -> Scrape {
        Scrape::fetch(self.admin, "admin")
    }

    /// Scrapes until `ready` holds, returning that scrape; panics with the
    /// last scrape and the log's tail after `timeout`.
    pub fn scrape_until(
        &self,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.scrape();
            if ready(&s) {
                return s;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}; last scrape:\n{}\nlog tail:\n{}",
                    s.gateway_lines(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`Self::scrape_until`] the series of `name` carrying `pairs` sum to
    /// at least `at_least`: for what the gateway counts after a client
    /// already has its answer (a proxied request, a delivered event).
    pub fn scrape_until_sum(
        &self,
        timeout: Duration,
        name: &str,
        pairs: &[(&str, &str)],
        at_least: f64,
    ) -> Scrape {
        self.scrape_until(timeout, &format!("{name}{pairs:?} >= {at_least}"), |s| {
            s.sum(name, pairs) >= at_least
        })
    }

    /// The value of the series of `name` with exactly these labels, e.g.
    /// `("gateway_rules_reloads_total", &[("result", "failure")])`; panics
    /// when absent.
    pub fn metric(&self, name: &str, pairs: &[(&str, &str)]) -> f64 {
        self.scrape().value(name, pairs)
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line
                .rfind('}')
                .unwrap_or_else(|| panic!("unbalanced braces in {line:?}"));
            (
                &line[..open],
                parse_labels(&line[open + 1..close], line),
                &line[close + 1..],
            )
        }
        None => {
            let sp = line
                .find(' ')
                .unwrap_or_else(|| panic!("no value in {line:?}"));
            (&line[..sp], Labels::new(), &line[sp..])
        }
    };
    let value = parse_value(
        rest.split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value in {line:?}")),
        line,
    );
    assert!(
        name.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':'),
        "bad metric name in {line:?}"
    );
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `s` is what is between the braces of `line`.
fn parse_labels(s: &str, line: &str) -> Labels {
    let mut labels = Labels::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let eq = s[i..]
            .find('=')
            .unwrap_or_else(|| panic!("bad labels in {line:?}"))
            + i;
        let key = s[i..eq].trim().to_string();
        assert_eq!(b.get(eq + 1), Some(&b'"'), "bad label value in {line:?}");
        let mut j = eq + 2;
        let mut value = String::new();
        loop {
            let c = *b
                .get(j)
                .unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
            match c {
                b'\\' => {
                    match b.get(j + 1) {
                        Some(b'n') => value.push('\n'),
                        Some(b'\\') => value.push('\\'),
                        Some(b'"') => value.push('"'),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    }
                    j += 2;
                }
                b'"' => {
                    j += 1;
                    break;
                }
                _ => {
                    // Label values are UTF-8; copy whole characters.
                    let ch = s[j..].chars().next().unwrap();
                    value.push(ch);
                    j += ch.len_utf8();
                }
            }
        }
        assert!(
            labels.insert(key.clone(), value).is_none(),
            "label {key} twice in {line:?}"
        );
        i = j;
    }
    labels
}

fn parse_value(v: &str, line: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => v
            .parse()
            .unwrap_or_else(|e| panic!("bad value {v:?} in {line:?}: {e}")),
    }
}
