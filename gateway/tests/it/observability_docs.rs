//! Keeps the observability documents honest against the real binary:
//! `docs/alerts.yml` and `docs/grafana-dashboard.json` may only query
//! metrics that a running gateway exports, `docs/alerts.yml` must have the
//! shape `promtool check rules` accepts, and `docs/observability.md` must
//! describe every metric family the gateway exports. Every ```` ```toml ````
//! example in `docs/*.md` and `README.md` must load through the gateway's
//! own loaders (see `toml_examples_in_the_docs_load` for the convention
//! that marks deliberately invalid examples and other programs' files).

use crate::harness;

use crate::harness::{Behavior, Gateway, Options, Upstream};
use std::collections::BTreeSet;
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

/// A rule set with one of each kind of answer, and a route to `up`.
fn rules(up: &Upstream) -> String {
    format!(
        r#"
[[redirect]]
id = "home"
host = "go.example.com"
path = "/"
to = "https://www.example.com/"
status = 301

[[links]]
id = "go-links"
host = "go.example.com"
prefix = "/l/"
file = "links.csv"

[[respond]]
id = "robots"
path = "/robots.txt"
body = "User-agent: *\nDisallow: /\n"

[[route]]
id = "api"
host = "api.example.com"
prefix = "/"
upstream = "api"

[upstream.api]
servers = ["{addr}"]
connect_timeout = "500ms"
health_check = {{ type = "tcp", interval = "200ms", timeout = "200ms" }}
"#,
        addr = up.addr
    )
}

const LINKS: &[u8] = b"code,to\nspring,https://shop.example.com/spring\n";

/// Metric names a PromQL expression uses: identifiers outside string
/// literals that start with `gateway_` or `process_`, and `up`. Function
/// names, label names and keywords never start with those prefixes.
fn referenced_metrics(expr: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            // Skip a string literal (label values, regexes).
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            // A Grafana variable such as `$__rate_interval` is not a metric.
            let is_variable = start > 0 && chars[start - 1] == '$';
            let ident: String = chars[start..i].iter().collect();
            // `up` is a metric only where it is not a label name or a
            // keyword; here it is used only as a selector.
            if !is_variable
                && (ident.starts_with("gateway_") || ident.starts_with("process_") || ident == "up")
            {
                found.insert(ident);
            }
            continue;
        }
        i += 1;
    }
    found
}

/// Parentheses, brackets and braces outside string literals pair up.
fn balanced(expr: &str) -> bool {
    let mut stack = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(open) {
                    return false;
                }
            }
            _ => {}
        }
    }
    stack.is_empty() && quote.is_none()
}

/// Checks an expression's metrics against the scrape; returns problems.
fn check_expr(
    what: &str,
    expr: &str,
    exported: &BTreeSet<String>,
    used: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if expr.trim().is_empty() {
        problems.push(format!("{what}: empty expr"));
        return problems;
    }
    if !balanced(expr) {
        problems.push(format!("{what}: unbalanced brackets or quotes in {expr:?}"));
    }
    let metrics = referenced_metrics(expr);
    if metrics.is_empty() {
        problems.push(format!("{what}: queries no gateway metric: {expr:?}"));
    }
    for m in metrics {
        if m != "up" && !exported.contains(&m) {
            problems.push(format!("{what}: `{m}` is not exported by the gateway"));
        }
        used.insert(m);
    }
    problems
}

/// A Prometheus duration (`5m`, `1h30m`, `90s`, `500ms`), as promtool parses it.
fn valid_duration(s: &str) -> bool {
    const UNITS: [&str; 7] = ["y", "w", "d", "h", "m", "s", "ms"];
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        // Longest unit first, so `ms` is not read as `m` then `s`.
        let Some(unit) = (0..UNITS.len())
            .rev()
            .find(|&u| rest.starts_with(UNITS[u]) && (UNITS[u] != "m" || !rest.starts_with("ms")))
        else {
            return false;
        };
        // Units must come in decreasing order, each at most once.
        if last_unit.is_some_and(|l| unit <= l) {
            return false;
        }
        last_unit = Some(unit);
        rest = &rest[UNITS[unit].len()..];
    }
    true
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A map of label names to string values; returns problems.
fn check_string_map(what: &str, y: &Yaml, problems: &mut Vec<String>) {
    let Some(map) = y.as_hash() else {
        problems.push(format!("{what}: must be a map"));
        return;
    };
    for (k, v) in map {
        match (k.as_str(), v.as_str()) {
            (Some(k), Some(v)) => {
                if !valid_label_name(k) {
                    problems.push(format!("{what}: `{k}` is not a valid label name"));
                }
                if v.matches("{{").count() != v.matches("}}").count() {
                    problems.push(format!("{what}.{k}: unbalanced template braces"));
                }
            }
            _ => problems.push(format!("{what}: {k:?}: {v:?} is not string to string")),
        }
    }
}

fn check_alerts(text: &str, exported: &BTreeSet<String>) -> (BTreeSet<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    let docs = YamlLoader::load_from_str(text).expect("docs/alerts.yml is valid YAML");
    assert_eq!(docs.len(), 1, "docs/alerts.yml holds one YAML document");
    let root = &docs[0];
    if let Some(map) = root.as_hash() {
        for k in map.keys() {
            if k.as_str() != Some("groups") {
                problems.push(format!("unknown top-level key {k:?}"));
            }
        }
    }
    let Some(groups) = root["groups"].as_vec().filter(|g| !g.is_empty()) else {
        return (used, vec!["`groups` must be a non-empty list".into()]);
    };
    let mut group_names = BTreeSet::new();
    let mut alert_count = 0;
    for (gi, group) in groups.iter().enumerate() {
        let Some(gmap) = group.as_hash() else {
            problems.push(format!("groups[{gi}] must be a map"));
            continue;
        };
        for k in gmap.keys() {
            let known = [
                "name",
                "interval",
                "rules",
                "limit",
                "query_offset",
                "labels",
            ];
            if !k.as_str().is_some_and(|k| known.contains(&k)) {
                problems.push(format!("groups[{gi}]: unknown key {k:?}"));
            }
        }
        let name = match group["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                problems.push(format!("groups[{gi}]: `name` must be a non-empty string"));
                format!("#{gi}")
            }
        };
        if !group_names.insert(name.clone()) {
            problems.push(format!("group {name}: duplicate group name"));
        }
        if let Some(interval) = group["interval"].as_str() {
            if !valid_duration(interval) {
                problems.push(format!("group {name}: bad interval {interval:?}"));
            }
        }
        let Some(rules) = group["rules"].as_vec().filter(|r| !r.is_empty()) else {
            problems.push(format!("group {name}: `rules` must be a non-empty list"));
            continue;
        };
        for (ri, rule) in rules.iter().enumerate() {
            let Some(rmap) = rule.as_hash() else {
                problems.push(format!("group {name} rule {ri}: must be a map"));
                continue;
            };
            for k in rmap.keys() {
                let known = [
                    "alert",
                    "record",
                    "expr",
                    "for",
                    "keep_firing_for",
                    "labels",
                    "annotations",
                ];
                if !k.as_str().is_some_and(|k| known.contains(&k)) {
                    problems.push(format!("group {name} rule {ri}: unknown key {k:?}"));
                }
            }
            if !rule["record"].is_badvalue() {
                problems.push(format!(
                    "group {name} rule {ri}: recording rules do not belong in alerts.yml"
                ));
            }
            let alert = match rule["alert"].as_str() {
                Some(a) if valid_label_name(a) => a.to_string(),
                other => {
                    problems.push(format!(
                        "group {name} rule {ri}: `alert` must be a name like HighErrorRate, got {other:?}"
                    ));
                    format!("#{ri}")
                }
            };
            alert_count += 1;
            let what = format!("alert {alert}");
            match rule["expr"].as_str() {
                Some(expr) => problems.extend(check_expr(&what, expr, exported, &mut used)),
                None => problems.push(format!("{what}: `expr` must be a string")),
            }
            for key in ["for", "keep_firing_for"] {
                match &rule[key] {
                    Yaml::BadValue => {}
                    Yaml::String(d) if valid_duration(d) => {}
                    other => problems.push(format!("{what}: `{key}` {other:?} is not a duration")),
                }
            }
            check_string_map(&format!("{what} labels"), &rule["labels"], &mut problems);
            check_string_map(
                &format!("{what} annotations"),
                &rule["annotations"],
                &mut problems,
            );
            let severity = rule["labels"]["severity"].as_str().unwrap_or("");
            if !["critical", "warning", "info"].contains(&severity) {
                problems.push(format!(
                    "{what}: labels.severity must be critical, warning or info"
                ));
            }
            for key in ["summary", "description"] {
                if rule["annotations"][key].as_str().is_none_or(str::is_empty) {
                    problems.push(format!("{what}: annotations.{key} is missing"));
                }
            }
        }
    }
    if alert_count == 0 {
        problems.push("no alerting rule".into());
    }
    (used, problems)
}

/// Every panel, including those nested in collapsed rows.
fn panels(v: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(panels(p));
    }
    out
}

fn check_dashboard(text: &str, exported: &BTreeSet<String>) -> (BTreeSet<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    let d: serde_json::Value =
        serde_json::from_str(text).expect("docs/grafana-dashboard.json is valid JSON");
    if d["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        problems.push("schemaVersion must be 36 or later".into());
    }
    if d["title"].as_str().is_none_or(str::is_empty) {
        problems.push("the dashboard needs a title".into());
    }
    let input = d["__inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["type"] == "datasource" && i["pluginId"] == "prometheus");
    let variable = d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v["type"] == "datasource" && v["query"] == "prometheus");
    if !input && !variable {
        problems.push("no Prometheus datasource input or variable".into());
    }
    let all = panels(&d);
    if all.is_empty() {
        problems.push("no panels".into());
    }
    let mut ids = BTreeSet::new();
    for p in all {
        let title = p["title"].as_str().unwrap_or("<untitled>");
        match p["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            _ => problems.push(format!("panel {title}: missing or duplicate id")),
        }
        if p["gridPos"]["w"].as_u64().is_none() || p["gridPos"]["h"].as_u64().is_none() {
            problems.push(format!("panel {title}: no gridPos"));
        }
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().map_or(&[][..], Vec::as_slice);
        if targets.is_empty() {
            problems.push(format!("panel {title}: no targets"));
        }
        for (i, t) in targets.iter().enumerate() {
            let what = format!("panel {title} target {i}");
            match t["expr"].as_str() {
                Some(expr) => problems.extend(check_expr(&what, expr, exported, &mut used)),
                None => problems.push(format!("{what}: no expr")),
            }
        }
    }
    // Annotation queries and query variables must name real metrics too.
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = a["expr"].as_str() {
            let what = format!("annotation {}", a["name"].as_str().unwrap_or("?"));
            problems.extend(check_expr(&what, expr, exported, &mut used));
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]["query"].as_str().or(v["query"].as_str());
        let what = format!("variable {}", v["name"].as_str().unwrap_or("?"));
        match query {
            Some(q) => problems.extend(check_expr(&what, q, exported, &mut used)),
            None => problems.push(format!("{what}: no query")),
        }
    }
    (used, problems)
}

#[test]
fn alerts_dashboard_and_docs_match_the_exported_metrics() {
    let up = Upstream::start("api", Behavior::Ok);
    // Click events on (file sink), so the click metrics have series too.
    let clicks = tempfile::tempdir().unwrap();
    let clicks_config = format!(
        "[clicks]\nenabled = true\nsink = \"file\"\ndir = \"{}\"\nflush_interval = \"50ms\"\n",
        clicks.path().display()
    );
    // A TLS listener, so the certificate metrics have series too.
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["go.example.com".to_string()]).unwrap();
    let gw = Gateway::start_with(
        &rules(&up),
        Options {
            files: &[("links.csv", LINKS)],
            extra_config: &clicks_config,
            tls: Some((cert.pem(), key_pair.serialize_pem())),
            ..Options::default()
        },
    );
    // One of each: redirect, bulk link, fixed response, 404, proxied call.
    let browser = [(
        "User-Agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    )];
    assert_eq!(gw.req("GET", "go.example.com", "/", &browser).status, 301);
    assert_eq!(
        gw.req("GET", "go.example.com", "/l/spring", &browser)
            .status,
        302
    );
    assert_eq!(gw.get("any.example.com", "/robots.txt").status, 200);
    assert_eq!(gw.get("go.example.com", "/nothing-here").status, 404);
    assert_eq!(gw.get("api.example.com", "/v1/items").status, 200);

    // The click writer flushes in the background, and a proxied request
    // is counted once its answer is sent: wait for both.
    let scraped = gw.scrape_until(
        Duration::from_secs(10),
        "both clicks written and the proxied request counted",
        |s| {
            s.get("gateway_click_events_delivered_total", &[("sink", "file")]) == Some(2.0)
                && s.get(
                    "gateway_requests_total",
                    &[("code", "200"), ("kind", "proxy")],
                )
                .is_some()
        },
    );
    let text = &scraped.text;
    // The series this test relies on are there at all...
    type Series<'a> = (&'a str, &'a [(&'a str, &'a str)]);
    let present: [Series; 5] = [
        (
            "gateway_requests_total",
            &[("code", "301"), ("kind", "redirect")],
        ),
        (
            "gateway_requests_total",
            &[("code", "404"), ("kind", "not_found")],
        ),
        (
            "gateway_requests_total",
            &[("code", "200"), ("kind", "proxy")],
        ),
        ("gateway_rule_hits_total", &[("rule", "go-links")]),
        (
            "gateway_upstream_requests_total",
            &[("code", "200"), ("upstream", "api")],
        ),
    ];
    for (name, labels) in present {
        assert!(
            scraped.get(name, labels).is_some(),
            "no {name}{labels:?} in the scrape:\n{text}"
        );
    }
    // ...and these with this value.
    let valued: [(Series, f64); 7] = [
        (("gateway_upstream_backends", &[("upstream", "api")]), 1.0),
        (
            (
                "gateway_upstream_errors_total",
                &[("reason", "no_healthy"), ("upstream", "api")],
            ),
            0.0,
        ),
        (
            ("gateway_rules_reloads_total", &[("result", "failure")]),
            0.0,
        ),
        (("gateway_rules_loaded", &[("kind", "route")]), 1.0),
        (
            (
                "gateway_click_events_total",
                &[("bot", "false"), ("device", "desktop")],
            ),
            2.0,
        ),
        (
            ("gateway_click_events_delivered_total", &[("sink", "file")]),
            2.0,
        ),
        (("gateway_click_events_dropped_total", &[]), 0.0),
    ];
    for ((name, labels), want) in valued {
        assert_eq!(
            scraped.get(name, labels),
            Some(want),
            "no {name}{labels:?} {want} in the scrape:\n{text}"
        );
    }

    let exported = scraped.names();
    let docs = harness::workspace("docs");
    let read = |name: &str| {
        std::fs::read_to_string(docs.join(name)).unwrap_or_else(|e| panic!("docs/{name}: {e}"))
    };
    let mut problems = Vec::new();

    let (alert_metrics, p) = check_alerts(&read("alerts.yml"), &exported);
    problems.extend(p.into_iter().map(|p| format!("docs/alerts.yml: {p}")));

    let (panel_metrics, p) = check_dashboard(&read("grafana-dashboard.json"), &exported);
    problems.extend(
        p.into_iter()
            .map(|p| format!("docs/grafana-dashboard.json: {p}")),
    );

    // The alerts and the dashboard cover what operators need.
    for m in [
        "gateway_rules_reloads_total",
        "gateway_upstream_healthy_backends",
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_click_events_dropped_total",
        "up",
    ] {
        if !alert_metrics.contains(m) {
            problems.push(format!("docs/alerts.yml: no alert uses {m}"));
        }
    }
    for m in [
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_rule_hits_total",
        "gateway_upstream_healthy_backends",
        "gateway_upstream_backends",
        "gateway_upstream_errors_total",
        "gateway_upstream_retries_total",
        "gateway_upstream_duration_seconds_bucket",
        "gateway_rules_reloads_total",
        "gateway_rules_last_reload_success_timestamp_seconds",
        "gateway_rules_info",
        "gateway_rules_loaded",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        if !panel_metrics.contains(m) {
            problems.push(format!("docs/grafana-dashboard.json: no panel uses {m}"));
        }
    }

    // The reference page names every family the gateway exports.
    let guide = read("observability.md");
    let families = scraped.families.keys();
    for family in families {
        if !guide.contains(&format!("`{family}`")) {
            problems.push(format!(
                "docs/observability.md: `{family}` is not described"
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n\nscrape:\n{text}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn expression_scanner() {
    let m = referenced_metrics(
        r#"sum by (upstream) (rate(gateway_upstream_errors_total{reason="gateway_x"}[$__rate_interval])) / on() group_left up"#,
    );
    assert_eq!(
        m.into_iter().collect::<Vec<_>>(),
        ["gateway_upstream_errors_total", "up"]
    );
    assert!(balanced(r#"sum(rate(x{code=~"5.."}[5m]))"#));
    assert!(!balanced("sum(rate(x[5m])"));
    for ok in ["5m", "1h30m", "90s", "500ms", "1d", "0s"] {
        assert!(valid_duration(ok), "{ok}");
    }
    for bad in ["", "5", "m", "5min", "30s1m", "1.5h", "5m5m"] {
        assert!(!valid_duration(bad), "{bad}");
    }
}

/// One ```` ```toml ```` fenced block of a document.
struct TomlBlock {
    /// `docs/rules.md:35`: where the fence opens.
    place: String,
    /// The words after `toml` on the fence line (`invalid`, `external`).
    marker: String,
    text: String,
}

/// Every ```` ```toml ```` block of `docs/*.md` and `README.md`.
fn toml_blocks() -> Vec<TomlBlock> {
    let mut files: Vec<String> = std::fs::read_dir(harness::workspace("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    files.sort();
    files.push("README.md".into());
    let mut blocks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(harness::workspace(&file)).unwrap();
        let mut open: Option<(usize, String, String)> = None;
        for (n, line) in text.lines().enumerate() {
            let fence = line.trim_start();
            match &mut open {
                None => {
                    if let Some(info) = fence.strip_prefix("```toml") {
                        open = Some((n + 1, info.trim().to_string(), String::new()));
                    }
                }
                Some((start, marker, body)) => {
                    if fence.starts_with("```") {
                        blocks.push(TomlBlock {
                            place: format!("{file}:{start}"),
                            marker: std::mem::take(marker),
                            text: std::mem::take(body),
                        });
                        open = None;
                    } else {
                        body.push_str(line);
                        body.push('\n');
                    }
                }
            }
        }
        assert!(open.is_none(), "{file}: unclosed ```toml block");
    }
    blocks
}

/// Top-level tables of the server configuration (`gateway::Config`).
const CONFIG_SECTIONS: [&str; 11] = [
    "server",
    "tls",
    "admin",
    "rules",
    "log",
    "metrics",
    "clicks",
    "store",
    "api",
    "analytics",
    "acme",
];
/// Top-level tables of a rule set (`rules::RuleSet`).
const RULES_SECTIONS: [&str; 8] = [
    "settings", "redirect", "links", "route", "respond", "upstream", "test", "domain",
];

/// A rules error that only says a referenced file is missing, for a path
/// that really does not exist inside `rules_dir` (the rules file's own
/// directory): `cannot read <key> <path>: No such file or directory (os
/// error 2)`, or, when its directory is missing too, the loader's answer
/// for a path that does not resolve, `… it is not inside the rules file's
/// directory …`. A file that exists but cannot be used, or a path outside
/// `rules_dir`, is a real problem.
fn only_missing_file(e: &rules::RuleError, rules_dir: &std::path::Path) -> bool {
    // `cannot read links file <path>` or `cannot read body_file <path>`.
    let Some(rest) = e.message.strip_prefix("cannot read ") else {
        return false;
    };
    let Some(start) = rest.find(" /") else {
        return false;
    };
    let rest = &rest[start + 1..];
    let path = [
        ": No such file or directory (os error 2)",
        ": it is not inside the rules file's directory or an allowed directory (allow_dirs)",
    ]
    .iter()
    .find_map(|reason| rest.strip_suffix(reason));
    let Some(path) = path.map(std::path::Path::new) else {
        return false;
    };
    let inside = path.strip_prefix(rules_dir).is_ok_and(|p| {
        p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    });
    inside && !path.exists()
}

/// Loads a block through the loader its top-level tables name. `Ok` with
/// the loader's name, or `Err` with what it refused.
fn load_toml_block(block: &TomlBlock) -> Result<&'static str, String> {
    let table: toml::Table = toml::from_str(&block.text).map_err(|e| format!("not TOML: {e}"))?;
    if block.marker == "external" {
        return Ok("TOML syntax only");
    }
    let keys: Vec<&str> = table.keys().map(String::as_str).collect();
    if !keys.is_empty() && keys.iter().all(|k| CONFIG_SECTIONS.contains(k)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, &block.text).unwrap();
        gateway::Config::load(Some(&path), Vec::new())
            .map_err(|e| format!("gateway::Config: {e:#}"))?;
        Ok("gateway::Config")
    } else if !keys.is_empty() && keys.iter().all(|k| RULES_SECTIONS.contains(k)) {
        // As if the block were a file next to the bundled rules, so the
        // files it names resolve to the bundled ones where they exist.
        let dir = std::fs::canonicalize(harness::workspace("config")).unwrap();
        let path = dir.join("docs-example.toml");
        let missing = |e: &rules::RuleError| only_missing_file(e, &dir);
        match rules::RuleSet::from_source(&block.text, &path, &rules::LoadOptions::default()) {
            Ok(_) => Ok("rules::RuleSet"),
            Err(errors) if errors.iter().all(missing) => {
                Ok("rules::RuleSet (referenced files missing)")
            }
            Err(errors) => Err(format!(
                "rules::RuleSet:\n      {}",
                errors
                    .iter()
                    .filter(|e| !missing(e))
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n      ")
            )),
        }
    } else {
        Err(format!(
            "top-level tables {keys:?} are neither all server configuration ({CONFIG_SECTIONS:?}) \
             nor all rules ({RULES_SECTIONS:?}); mark another program's configuration ```toml external"
        ))
    }
}

/// Every TOML example in the docs loads through the gateway's own loaders.
///
/// Convention for the fence line of a block:
///
/// - ```` ```toml ````: a whole document (a partial example of one section
///   is still one) that must load. Its top-level tables decide the loader:
///   server configuration sections go through `gateway::Config::load`
///   (from a temporary file, no environment), rule tables through
///   `rules::RuleSet::from_source` as if the block sat in `config/`, so
///   `links/go.csv` and `static/…` resolve to the bundled files. The only
///   error tolerated is a referenced file that does not exist.
/// - ```` ```toml invalid ````: an example of a refused document (an error
///   message section); it must be valid TOML and its loader must refuse it.
/// - ```` ```toml external ````: another program's configuration (a Vector
///   collector): only its TOML syntax is checked.
#[test]
fn toml_examples_in_the_docs_load() {
    let blocks = toml_blocks();
    assert!(blocks.len() >= 10, "found only {} blocks", blocks.len());
    let mut problems = Vec::new();
    for block in &blocks {
        let result = load_toml_block(block);
        match (block.marker.as_str(), result) {
            ("" | "external", Ok(loader)) => println!("{}: {loader}", block.place),
            ("" | "external", Err(e)) => problems.push(format!("{}: {e}", block.place)),
            ("invalid", Err(e)) if !e.starts_with("not TOML") && !e.starts_with("top-level") => {}
            ("invalid", Err(e)) => problems.push(format!(
                "{}: marked invalid, but fails for the wrong reason: {e}",
                block.place
            )),
            ("invalid", Ok(loader)) => problems.push(format!(
                "{}: marked invalid, but {loader} accepts it",
                block.place
            )),
            (other, _) => problems.push(format!(
                "{}: unknown marker `{other}` (use invalid or external)",
                block.place
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "{} TOML block(s) in the docs do not load:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn missing_file_errors_are_told_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    let missing = |e: &rules::RuleError| only_missing_file(e, &dir);
    let load = |src: &str| {
        rules::RuleSet::from_source(src, dir.join("rules.toml"), &rules::LoadOptions::default())
            .err()
            .unwrap_or_default()
    };
    let links = "[[links]]\nid = \"l\"\nfile = \"links/none.csv\"\n";
    let errors = load(links);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(missing(&errors[0]), "{errors:?}");
    // The same with the directory there: the I/O error is told.
    std::fs::create_dir(dir.join("static")).unwrap();
    let body = "[[respond]]\nid = \"r\"\npath = \"/\"\nbody_file = \"static/none.html\"\n";
    let errors = load(body);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(missing(&errors[0]), "{errors:?}");
    // A file that exists but cannot be used is a real problem.
    std::fs::create_dir(dir.join("links")).unwrap();
    std::fs::create_dir(dir.join("links/none.csv")).unwrap();
    let errors = load(links);
    assert!(
        !errors.is_empty() && !errors.iter().any(missing),
        "{errors:?}"
    );
    // So is a file outside the rules file's directory, missing or not.
    for outside in ["/nonexistent/x.csv", "../none.csv", "/etc/hostname"] {
        let errors = load(&format!("[[links]]\nid = \"l\"\nfile = \"{outside}\"\n"));
        assert!(
            !errors.is_empty() && !errors.iter().any(missing),
            "{errors:?}"
        );
    }
    let errors = load("[[redirect]]\nid = \"r\"\npath = \"/\"\nto = \"nope\"\n");
    assert!(
        !errors.is_empty() && !errors.iter().any(missing),
        "{errors:?}"
    );
}

#[test]
fn toml_blocks_are_classified_by_their_tables() {
    let block = |text: &str| TomlBlock {
        place: "test".into(),
        marker: String::new(),
        text: text.into(),
    };
    assert_eq!(
        load_toml_block(&block("[log]\nlevel = \"warn\"\n")),
        Ok("gateway::Config")
    );
    let e = load_toml_block(&block("[server]\nlisen = []\n")).unwrap_err();
    assert!(e.contains("lisen"), "{e}");
    let e = load_toml_block(&block(
        "[[redirect]]\nid = \"r\"\npath = \"/\"\nto = \"nope\"\n",
    ))
    .unwrap_err();
    assert!(e.starts_with("rules::RuleSet"), "{e}");
    // A section of neither kind, or a mix, needs `external`.
    for text in ["[sinks.x]\ntype = \"a\"\n", "[log]\n[[redirect]]\n", ""] {
        let e = load_toml_block(&block(text)).unwrap_err();
        assert!(e.starts_with("top-level tables"), "{e}");
    }
    let mut external = block("[sinks.x]\ntype = \"a\"\n");
    external.marker = "external".into();
    assert!(load_toml_block(&external).is_ok());
    assert!(load_toml_block(&block("[log\n"))
        .unwrap_err()
        .starts_with("not TOML"));
}
