//! The command line of the real binary: `check`, `explain`, `health`,
//! `--help` and configuration errors of `run`.

use crate::harness;

use crate::harness::IPHONE;

use crate::harness::Gateway;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15";

/// The example rules of the repository.
fn example_rules() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/rules.toml"))
}

/// The binary, run in an empty directory (so no `config/gateway.toml` is
/// picked up by accident) with no `GATEWAY_*` or `RUST_LOG` variables.
fn gateway(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.current_dir(cwd).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs a command that must finish quickly; kills it and fails after 10 s.
fn run(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the gateway binary");
    let exited = harness::exit_within(&mut child, Duration::from_secs(10)).is_some();
    let out = child.wait_with_output().unwrap();
    assert!(
        exited,
        "{cmd:?} still running after 10 s (killed)\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    )
}

/// `gateway check <path>` in a scratch directory.
fn check(path: &Path) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = gateway(cwd.path());
    cmd.arg("check").arg(path);
    run(cmd)
}

/// Asserts `line` is `<file>:<line>:<col>: rule <id>: <message>` for `file`.
fn assert_error_line(line: &str, file: &Path) {
    let prefix = format!("{}:", file.display());
    let rest = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
    let mut parts = rest.splitn(3, ':');
    let l = parts.next().unwrap();
    let c = parts.next().unwrap_or("");
    let tail = parts.next().unwrap_or("");
    assert!(
        l.parse::<usize>().is_ok_and(|n| n >= 1),
        "bad line number in {line:?}"
    );
    assert!(
        c.parse::<usize>().is_ok_and(|n| n >= 1),
        "bad column in {line:?}"
    );
    let tail = tail
        .strip_prefix(" rule ")
        .unwrap_or_else(|| panic!("no ` rule ` after the position in {line:?}"));
    let (id, message) = tail
        .split_once(": ")
        .unwrap_or_else(|| panic!("no `<id>: <message>` in {line:?}"));
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "bad rule id in {line:?}"
    );
    assert!(!message.trim().is_empty(), "empty message in {line:?}");
}

/// Writes `text` as `name` in `dir`, runs `check`, expects exit 1 and
/// returns the error lines printed on stdout (each checked for the format).
fn check_broken(dir: &Path, name: &str, text: &str) -> (PathBuf, Vec<String>) {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    let o = check(&p);
    assert_eq!(o.status.code(), Some(1), "check {name}: {}", show(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert!(
        !lines.is_empty(),
        "check {name} printed no error: {}",
        show(&o)
    );
    for l in &lines {
        assert_error_line(l, &p);
    }
    (p, lines)
}

// ---------------------------------------------------------------------------
// check
// ---------------------------------------------------------------------------

#[test]
fn check_example_rules_ok_with_counts() {
    let rules = example_rules();
    let o = check(&rules);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    let line = out.lines().next().unwrap_or("");
    assert!(line.contains(": ok ("), "{}", show(&o));
    for what in [
        "11 redirects",
        "20 links in 1 sets",
        "2 routes",
        "3 responds",
        "1 upstreams",
        "tests passed",
    ] {
        assert!(line.contains(what), "summary lacks {what:?}: {line}");
    }
    // The test count is the number of [[test]] tables in the file.
    let tests = std::fs::read_to_string(&rules)
        .unwrap()
        .lines()
        .filter(|l| l.trim() == "[[test]]")
        .count();
    assert!(
        line.contains(&format!("; {tests} tests passed)")),
        "expected {tests} tests in {line}"
    );
}

#[test]
fn check_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let (p, lines) = check_broken(
        dir.path(),
        "syntax.toml",
        "[[redirect]]\nid = \"a\"\npath = \"/a\"\nto = \"https://x.example.com/\"\n[[redirect\nid = \"b\"\n",
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{}:5:", p.display())),
        "syntax error not on line 5: {}",
        lines[0]
    );
    assert!(lines[0].contains(": rule -: "), "{}", lines[0]);
}

#[test]
fn check_duplicate_id_full_line() {
    let dir = tempfile::tempdir().unwrap();
    let (p, lines) = check_broken(
        dir.path(),
        "dup.toml",
        "[[redirect]]\nid = \"a\"\npath = \"/a\"\nto = \"https://x.example.com/\"\n\n\
         [[redirect]]\nid = \"a\"\npath = \"/b\"\nto = \"https://y.example.com/\"\n",
    );
    let f = p.display();
    assert_eq!(
        lines,
        vec![format!(
            "{f}:7:6: rule a: duplicate id `a` (first defined at {f}:2:6)"
        )]
    );
}

#[test]
fn check_unknown_upstream_full_line() {
    let dir = tempfile::tempdir().unwrap();
    let (p, lines) = check_broken(
        dir.path(),
        "upstream.toml",
        "[[route]]\nid = \"r\"\nhost = \"api.example.com\"\nprefix = \"/v1/\"\nupstream = \"nope\"\n",
    );
    assert_eq!(
        lines,
        vec![format!(
            "{}:5:12: rule r: unknown upstream `nope` (defined: none)",
            p.display()
        )]
    );
}

#[test]
fn check_failing_tests_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (p, lines) = check_broken(
        dir.path(),
        "tests.toml",
        "[[redirect]]\nid = \"a\"\npath = \"/a\"\nto = \"https://x.example.com/\"\n\n\
         [[test]]\nname = \"wrong location\"\nurl = \"https://h.example.com/a\"\nexpect_location = \"https://wrong.example.com/\"\n\n\
         [[test]]\nname = \"passes\"\nurl = \"https://h.example.com/a\"\nexpect_status = 302\n\n\
         [[test]]\nname = \"wrong status\"\nurl = \"https://h.example.com/a\"\nexpect_status = 301\nexpect_rule = \"a\"\n",
    );
    let f = p.display();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        format!(
            "{f}:6:1: rule -: test `wrong location` (https://h.example.com/a): expected location https://wrong.example.com/, got https://x.example.com/"
        )
    );
    assert!(
        lines[1].starts_with(&format!("{f}:16:1: rule a: test `wrong status`")),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("expected status 301"), "{}", lines[1]);
}

#[test]
fn check_reports_every_error_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (p, lines) = check_broken(
        dir.path(),
        "multi.toml",
        "[[redirect]]\nid = \"a\"\npath = \"/a\"\nto = \"https://x.example.com/\"\n\n\
         [[redirect]]\nid = \"a\"\npath = \"/b\"\nto = \"https://y.example.com/\"\n\n\
         [[route]]\nid = \"r\"\nprefix = \"/v1/\"\nupstream = \"nope\"\n\n\
         [[route]]\nid = \"s\"\nprefix = \"/v2/\"\nupstream = \"other\"\n",
    );
    let f = p.display();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{f}:7:6: rule a: duplicate id")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{f}:14:12: rule r: unknown upstream `nope`"))),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{f}:19:12: rule s: unknown upstream `other`"))),
        "{lines:?}"
    );
}

#[test]
fn check_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("does-not-exist.toml");
    let o = check(&p);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains(&p.display().to_string()), "{}", show(&o));
    assert!(
        all.contains("cannot read") && all.contains("No such file"),
        "no clear message: {}",
        show(&o)
    );
}

// ---------------------------------------------------------------------------
// explain
// ---------------------------------------------------------------------------

fn explain(url: &str, extra: &[&str]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = gateway(cwd.path());
    cmd.arg("explain").arg(example_rules()).arg(url).args(extra);
    run(cmd)
}

fn explain_json(url: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = extra.to_vec();
    args.push("--json");
    let o = explain(url, &args);
    assert_eq!(o.status.code(), Some(0), "explain {url}: {}", show(&o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("explain {url} --json: not JSON ({e}): {}", show(&o)))
}

#[test]
fn explain_json_redirect_with_device_country_ip_method() {
    let v = explain_json(
        "https://go.example.com/p/SKU-1042",
        &[
            "--ua",
            IPHONE,
            "--country",
            "DE",
            "--ip",
            "203.0.113.7",
            "--method",
            "GET",
        ],
    );
    assert_eq!(v["action"], "redirect", "{v:#}");
    assert_eq!(v["rule"], "product", "{v:#}");
    assert_eq!(v["rule_kind"], "redirect", "{v:#}");
    assert_eq!(v["status"], 302, "{v:#}");
    // The example rules append `btn_ref`; explain shows where.
    assert_eq!(
        v["location"], "shopapp://product/SKU-1042?btn_ref=<click id>",
        "{v:#}"
    );
    assert_eq!(v["device"], "ios", "{v:#}");
    assert_eq!(v["country"], "DE", "{v:#}");
    assert_eq!(v["target"], "device", "{v:#}");
    assert_eq!(v["captures"]["sku"], "SKU-1042", "{v:#}");
    assert!(v["upstream"].is_null(), "{v:#}");
}

#[test]
fn explain_json_country_destination() {
    let v = explain_json("http://go.example.com/sale", &["--country", "FR"]);
    assert_eq!(v["action"], "redirect", "{v:#}");
    assert_eq!(v["rule"], "summer-sale", "{v:#}");
    assert_eq!(v["status"], 302, "{v:#}");
    assert_eq!(
        v["location"], "https://shop.example.com/fr/soldes?btn_ref=<click id>",
        "{v:#}"
    );
    assert_eq!(v["target"], "country", "{v:#}");
}

#[test]
fn explain_json_sticky_split_by_ip() {
    // Same visitor as the [[test]] "split variant is sticky per visitor".
    let v = explain_json(
        "https://go.example.com/new",
        &["--ip", "203.0.113.7", "--ua", MAC],
    );
    assert_eq!(v["rule"], "new-arrivals-ab", "{v:#}");
    assert_eq!(
        v["location"], "https://shop.example.com/new?layout=grid&btn_ref=<click id>",
        "{v:#}"
    );
    assert_eq!(v["target"], "split", "{v:#}");
    assert_eq!(v["variant"], 0, "{v:#}");
}

#[test]
fn explain_json_method_post_keeps_308() {
    let v = explain_json(
        "https://shop.example.com/help/articles/returns",
        &["--method", "POST"],
    );
    assert_eq!(v["action"], "redirect", "{v:#}");
    assert_eq!(v["rule"], "help-moved", "{v:#}");
    assert_eq!(v["status"], 308, "{v:#}");
    assert_eq!(
        v["location"], "https://support.example.com/hc/en-us/articles/returns?btn_ref=<click id>",
        "{v:#}"
    );
}

#[test]
fn explain_json_proxy() {
    let v = explain_json("https://api.example.com/v1/orders/123?expand=items", &[]);
    assert_eq!(v["action"], "proxy", "{v:#}");
    assert_eq!(v["rule"], "api-v1", "{v:#}");
    assert_eq!(v["rule_kind"], "route", "{v:#}");
    assert_eq!(v["upstream"], "api", "{v:#}");
    assert_eq!(v["upstream_path"], "/v1/orders/123?expand=items", "{v:#}");
    assert!(v["status"].is_null(), "{v:#}");
    assert!(v["location"].is_null(), "{v:#}");

    let v = explain_json("https://shop.example.com/api/v1/cart?currency=EUR", &[]);
    assert_eq!(v["rule"], "shop-api", "{v:#}");
    assert_eq!(v["upstream"], "api", "{v:#}");
    assert_eq!(v["upstream_path"], "/v1/cart?currency=EUR", "{v:#}");
}

#[test]
fn explain_json_not_found_and_bad_request() {
    let v = explain_json("https://go.example.com/no-such-link", &[]);
    assert_eq!(v["action"], "not_found", "{v:#}");
    assert_eq!(v["status"], 404, "{v:#}");
    assert!(v["rule"].is_null(), "{v:#}");

    let v = explain_json("https://bad_host!/x", &[]);
    assert_eq!(v["action"], "bad_request", "{v:#}");
    assert_eq!(v["status"], 400, "{v:#}");
    assert!(v["rule"].is_null(), "{v:#}");
    assert!(v["reason"].is_string(), "{v:#}");
}

#[test]
fn explain_plain_text() {
    let o = explain("https://go.example.com/p/SKU-1042", &["--ua", IPHONE]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("product"), "{out}");
    assert!(out.contains("decision:"), "{out}");
    assert!(out.contains("shopapp://product/SKU-1042"), "{out}");

    let o = explain("https://api.example.com/v1/orders/1", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    assert!(out.contains("api-v1"), "{out}");
    assert!(out.contains("decision:"), "{out}");
    assert!(out.contains("upstream api"), "{out}");
}

#[test]
fn explain_bad_arguments_fail() {
    let o = explain("https://go.example.com/", &["--ip", "not-an-ip"]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(stderr(&o).contains("not-an-ip"), "{}", show(&o));

    let o = explain("go.example.com/", &[]);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(stderr(&o).contains("http://"), "{}", show(&o));
}

/// Rules for the explain tests: a click id parameter, a destination with
/// its own query and a fragment, expiring rules and no any-host rule.
const EXPLAIN_RULES: &str = r#"[settings]
click_id_param = "btn_ref"

[[redirect]]
id = "grid"
host = "go.example.com"
path = "/new"
to = "https://shop.example.com/new?layout=grid#top"

[[redirect]]
id = "over"
host = "go.example.com"
path = "/over"
to = "https://shop.example.com/over"
expires_at = "2020-01-01T00:00:00Z"

[[redirect]]
id = "over-to"
host = "go.example.com"
path = "/over-to"
to = "https://shop.example.com/over"
expires_at = "2020-01-01T00:00:00+02:00"
expired_to = "https://shop.example.com/deals"

[[redirect]]
id = "later"
host = "go.example.com"
path = "/later"
to = "https://shop.example.com/later"
expires_at = "2099-01-01T00:00:00Z"
"#;

/// `gateway explain` of `url` against the rules file `rules`: plain text
/// and JSON.
fn explain_file(rules: &Path, url: &str) -> (String, serde_json::Value) {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = gateway(cwd.path());
    cmd.arg("explain").arg(rules).arg(url);
    let o = run(cmd);
    assert_eq!(o.status.code(), Some(0), "explain {url}: {}", show(&o));
    let mut cmd = gateway(cwd.path());
    cmd.arg("explain").arg(rules).arg(url).arg("--json");
    let j = run(cmd);
    assert_eq!(
        j.status.code(),
        Some(0),
        "explain {url} --json: {}",
        show(&j)
    );
    let v = serde_json::from_slice(&j.stdout)
        .unwrap_or_else(|e| panic!("explain {url} --json: not JSON ({e}): {}", show(&j)));
    (stdout(&o), v)
}

fn explain_rules_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rules.toml");
    std::fs::write(&p, EXPLAIN_RULES).unwrap();
    (dir, p)
}

/// Regression (issue 12): the live answer appends `btn_ref=<id>`, explain
/// left it out. Compared with a real redirect of the real binary.
#[test]
fn explain_shows_the_click_id_where_the_live_redirect_has_it() {
    let gw = Gateway::start(EXPLAIN_RULES);
    let live = gw.get("go.example.com", "/new?utm_source=mail");
    assert_eq!(live.status, 302, "{live:?}");
    let live = live.location().to_string();
    let start = live.find("btn_ref=").unwrap_or_else(|| panic!("{live}")) + "btn_ref=".len();
    let end = live[start..]
        .find(['&', '#'])
        .map_or(live.len(), |i| start + i);
    assert!(end > start, "{live}");
    let expected = format!("{}<click id>{}", &live[..start], &live[end..]);

    let (text, v) = explain_file(
        &gw.path("rules.toml"),
        "https://go.example.com/new?utm_source=mail",
    );
    assert_eq!(v["location"], expected.as_str(), "live {live}: {v:#}");
    assert_eq!(
        expected,
        "https://shop.example.com/new?layout=grid&utm_source=mail&btn_ref=<click id>#top"
    );
    assert!(text.contains(&format!("-> {expected}")), "{text}");
}

/// Regression (issue 12): a host with rules but none for the path was
/// reported as "no rule for this host".
#[test]
fn explain_tells_an_unknown_host_from_an_unmatched_path() {
    let (_dir, rules) = explain_rules_file();
    let (text, v) = explain_file(&rules, "https://go.example.com/nope");
    assert_eq!(v["action"], "not_found", "{v:#}");
    assert_eq!(v["reason"], "no rule matches this path", "{v:#}");
    assert_eq!(v["host_rules"], "exact", "{v:#}");
    assert!(text.contains("no rule matches this path"), "{text}");
    assert!(!text.contains("no rule for this host"), "{text}");

    let (text, v) = explain_file(&rules, "https://other.example.org/new");
    assert_eq!(v["action"], "not_found", "{v:#}");
    assert_eq!(v["reason"], "no rule for this host", "{v:#}");
    assert!(v["host_rules"].is_null(), "{v:#}");
    assert!(text.contains("no rule for this host"), "{text}");
    assert!(!text.contains("no rule matches this path"), "{text}");
}

/// Regression (issue 12): an expired rule was explained as `reason: null`.
#[test]
fn explain_says_when_a_rule_expired_and_what_it_answers() {
    let (_dir, rules) = explain_rules_file();
    let (text, v) = explain_file(&rules, "https://go.example.com/over");
    assert_eq!(v["action"], "gone", "{v:#}");
    assert_eq!(v["status"], 410, "{v:#}");
    assert_eq!(v["expired"], true, "{v:#}");
    assert_eq!(v["expires_at"], "2020-01-01T00:00:00Z", "{v:#}");
    assert_eq!(
        v["reason"], "expired at 2020-01-01T00:00:00Z; answers 410 Gone, as it has no expired_to",
        "{v:#}"
    );
    assert!(text.contains("expired at 2020-01-01T00:00:00Z"), "{text}");
    assert!(text.contains("410"), "{text}");

    let (text, v) = explain_file(&rules, "https://go.example.com/over-to");
    assert_eq!(v["action"], "redirect", "{v:#}");
    assert_eq!(v["target"], "expired", "{v:#}");
    assert_eq!(
        v["location"], "https://shop.example.com/deals?btn_ref=<click id>",
        "{v:#}"
    );
    // Shown in UTC whatever zone the rule was written in.
    assert_eq!(
        v["reason"], "expired at 2019-12-31T22:00:00Z; answers its expired_to destination",
        "{v:#}"
    );
    assert!(text.contains("expired at 2019-12-31T22:00:00Z"), "{text}");
    assert!(text.contains("expired_to"), "{text}");

    let (text, v) = explain_file(&rules, "https://go.example.com/later");
    assert_eq!(v["action"], "redirect", "{v:#}");
    assert_eq!(v["expired"], false, "{v:#}");
    assert_eq!(v["expires_at"], "2099-01-01T00:00:00Z", "{v:#}");
    assert!(v["reason"].is_null(), "{v:#}");
    assert!(
        text.contains("2099-01-01T00:00:00Z (not yet expired)"),
        "{text}"
    );
}

#[test]
fn explain_with_broken_rules_fails() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("broken.toml");
    std::fs::write(
        &p,
        "[[route]]\nid = \"r\"\nprefix = \"/v1/\"\nupstream = \"nope\"\n",
    )
    .unwrap();
    let mut cmd = gateway(dir.path());
    cmd.arg("explain")
        .arg(&p)
        .arg("https://api.example.com/v1/x");
    let o = run(cmd);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        stderr(&o).contains(&format!(
            "{}:4:12: rule r: unknown upstream `nope`",
            p.display()
        )),
        "{}",
        show(&o)
    );
}

// ---------------------------------------------------------------------------
// help
// ---------------------------------------------------------------------------

#[test]
fn help() {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = gateway(cwd.path());
    cmd.arg("--help");
    let o = run(cmd);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    for sub in ["run", "check", "explain", "health"] {
        assert!(out.contains(sub), "--help lacks {sub}: {out}");
    }

    let mut cmd = gateway(cwd.path());
    cmd.args(["explain", "--help"]);
    let o = run(cmd);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let out = stdout(&o);
    for opt in ["--ua", "--country", "--ip", "--method", "--json"] {
        assert!(out.contains(opt), "explain --help lacks {opt}: {out}");
    }
}

// ---------------------------------------------------------------------------
// health
// ---------------------------------------------------------------------------

#[test]
fn health_against_running_gateway() {
    let gw = Gateway::start(
        "[[redirect]]\nid = \"home\"\nhost = \"go.example.com\"\npath = \"/\"\nto = \"https://www.example.com/\"\n",
    );
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = gateway(cwd.path());
    cmd.arg("health")
        .env("GATEWAY_ADMIN_LISTEN", gw.admin.to_string());
    let o = run(cmd);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), "ready", "{}", show(&o));

    // An unspecified listen address (as in a container) is probed on loopback.
    let mut cmd = gateway(cwd.path());
    cmd.arg("health").env(
        "GATEWAY_ADMIN_LISTEN",
        format!("0.0.0.0:{}", gw.admin.port()),
    );
    let o = run(cmd);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(stdout(&o).trim(), "ready", "{}", show(&o));
}

#[test]
fn health_against_closed_port() {
    let port = harness::free_port();
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = gateway(cwd.path());
    cmd.arg("health")
        .env("GATEWAY_ADMIN_LISTEN", format!("127.0.0.1:{port}"));
    let o = run(cmd);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(!stdout(&o).contains("ready"), "{}", show(&o));
    assert!(
        stderr(&o).contains(&format!("127.0.0.1:{port}")),
        "error does not name the address: {}",
        show(&o)
    );
}

// ---------------------------------------------------------------------------
// configuration errors
// ---------------------------------------------------------------------------

/// `gateway run -c <config>` must fail fast, naming `needle` on stderr.
fn run_fails(config: &str, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gateway.toml");
    std::fs::write(&p, config).unwrap();
    let mut cmd = gateway(dir.path());
    cmd.arg("run").arg("-c").arg(&p);
    let o = run(cmd);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(
        stderr(&o).contains(needle),
        "stderr lacks {needle:?}: {}",
        show(&o)
    );
}

#[test]
fn run_rejects_unknown_keys() {
    let port = harness::free_port();
    let admin = harness::free_port();
    let base = format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n"
    );
    run_fails(
        &format!("{base}[rules]\npath = \"r.toml\"\nreload_interval = 5\n"),
        "reload_interval",
    );
    run_fails(
        &format!("[server]\nlisten = [\"127.0.0.1:{port}\"]\nlisen_tls = 1\n"),
        "lisen_tls",
    );
    run_fails(
        &format!("{base}[metric]\nlisten = \"127.0.0.1:1\"\n"),
        "metric",
    );
}

#[test]
fn run_rejects_missing_rules_file() {
    let port = harness::free_port();
    let admin = harness::free_port();
    run_fails(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[rules]\npath = \"/nonexistent/rules.toml\"\n[log]\nformat = \"text\"\n"
        ),
        "/nonexistent/rules.toml",
    );
}
