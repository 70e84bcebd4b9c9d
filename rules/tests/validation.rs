//! Validation errors: every problem in a rule set is reported with the exact
//! file, 1-based line and column, rule id and a message that says what is
//! wrong (and, for conflicts, where the other party is).
//!
//! Each test writes a small rules document (and CSV files where needed) into
//! a temporary directory. Documents start on the line after `r#"`, so
//! that line is line 1 and positions are easy to count.
//!
//! Four tests describe behaviour the implementation does not have yet (see
//! their doc comments): `duplicate_id_route_before_redirect_reports_the_later_one`,
//! `duplicate_country_code_is_reported_at_the_second_one`,
//! `errors_come_in_file_order` and
//! `redirect_with_bad_host_still_reports_its_other_problems`.

use std::path::PathBuf;

use rules::{LoadOptions, RuleError, RuleSet};
use tempfile::TempDir;

/// 2026-06-15T12:00:00Z: the clock embedded `[[test]]`s run at.
const NOW: i64 = 1_781_524_800;

/// A rules file (`rules.toml`) and optional side files in a temp directory.
struct Fixture {
    dir: TempDir,
    rules: PathBuf,
}

impl Fixture {
    /// Writes `src` (a leading newline is dropped, so documents can start on
    /// the line after the opening quote) as `rules.toml`.
    fn new(src: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules.toml");
        std::fs::write(&rules, doc(src)).expect("write rules.toml");
        Fixture { dir, rules }
    }

    /// Adds a side file (CSV, body) next to the rules file.
    fn with(self, name: &str, content: &str) -> Self {
        std::fs::write(self.dir.path().join(name), doc(content)).expect("write side file");
        self
    }

    /// How a file in the fixture is named in errors.
    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// How the rules file is named in errors.
    fn rules_file(&self) -> String {
        self.rules.display().to_string()
    }

    fn load(&self) -> Result<RuleSet, Vec<RuleError>> {
        self.load_opts(LoadOptions::default())
    }

    fn load_opts(&self, opts: LoadOptions) -> Result<RuleSet, Vec<RuleError>> {
        let opts = LoadOptions {
            now: Some(NOW),
            ..opts
        };
        RuleSet::load_with(&self.rules, &opts)
    }

    /// The errors of a load that must fail.
    #[track_caller]
    fn errors(&self) -> Vec<RuleError> {
        match self.load() {
            Ok(_) => panic!(
                "expected errors, but the rule set loaded:\n{}",
                std::fs::read_to_string(&self.rules).unwrap()
            ),
            Err(errors) => errors,
        }
    }

    /// A load that must succeed.
    #[track_caller]
    fn ok(&self) -> RuleSet {
        match self.load() {
            Ok(set) => set,
            Err(errors) => panic!("expected the rule set to load, got:\n{}", dump(&errors)),
        }
    }
}

fn doc(s: &str) -> &str {
    s.strip_prefix('\n').unwrap_or(s)
}

fn dump(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}\n"))
        .collect::<String>()
}

/// The error at `file:line:column`; checks its rule and that its message
/// contains `needle`.
#[track_caller]
fn at<'e>(
    errors: &'e [RuleError],
    file: &str,
    line: usize,
    column: usize,
    rule: &str,
    needle: &str,
) -> &'e RuleError {
    let Some(e) = errors
        .iter()
        .find(|e| e.file == file && e.line == line && e.column == column)
    else {
        panic!(
            "no error at {file}:{line}:{column} (wanted rule {rule}: …{needle}…); got:\n{}",
            dump(errors)
        );
    };
    assert_eq!(e.rule, rule, "rule of {e}\nall errors:\n{}", dump(errors));
    assert!(
        e.message.contains(needle),
        "message of {e}\n  does not contain: {needle}\nall errors:\n{}",
        dump(errors)
    );
    e
}

/// Like [`at`], but the message must be exactly `message`.
#[track_caller]
fn exact<'e>(
    errors: &'e [RuleError],
    file: &str,
    line: usize,
    column: usize,
    rule: &str,
    message: &str,
) -> &'e RuleError {
    let e = at(errors, file, line, column, rule, "");
    assert_eq!(
        e.message,
        message,
        "message of {e}\nall errors:\n{}",
        dump(errors)
    );
    e
}

#[track_caller]
fn count(errors: &[RuleError], n: usize) {
    assert_eq!(
        errors.len(),
        n,
        "expected {n} error(s), got:\n{}",
        dump(errors)
    );
}

// ---------------------------------------------------------------------------
// TOML syntax, unknown keys and tables
// ---------------------------------------------------------------------------

#[test]
fn toml_syntax_error_has_position_and_rule_dash() {
    let f = Fixture::new(
        r#"
[settings]
trailing_slash = "ignore"

[[redirect]
id = "a"
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    at(&errors, &f.rules_file(), 4, 12, "-", "unclosed array table");
}

#[test]
fn toml_duplicate_key_is_a_syntax_error_at_the_second_key() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "a"
path = "/a"
path = "/b"
to = "https://a.example.com/"
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    at(&errors, &f.rules_file(), 4, 1, "-", "duplicate key");
}

#[test]
fn unknown_key_in_redirect_is_reported_at_the_key_under_the_redirect_id() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "sale"
path = "/sale"
to = "https://shop.example.com/"
expires = "2030-01-01T00:00:00Z"

[[redirect]]
id = "ab"
path = "/ab"
split = [{ to = "https://a.example.com/", weigth = 1 }]
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 2);
    let e = at(&errors, &rules, 5, 1, "sale", "unknown field `expires`");
    assert!(e.message.contains("`expires_at`"), "{e}");
    // Inside an inline table of `split`: at that key, still under the rule id.
    at(&errors, &rules, 10, 43, "ab", "unknown field `weigth`");
}

#[test]
fn unknown_keys_in_settings_and_upstream_name_their_table() {
    let f = Fixture::new(
        r#"
[settings]
trailing_slashes = "strict"

[upstream.api]
servers = ["127.0.0.1:8080"]
timeout = "1s"

[[test]]
url = "https://x/"
expect_stauts = 200
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 3);
    at(
        &errors,
        &rules,
        2,
        1,
        "-",
        "unknown field `trailing_slashes`",
    );
    at(&errors, &rules, 6, 1, "api", "unknown field `timeout`");
    at(&errors, &rules, 10, 1, "-", "unknown field `expect_stauts`");
}

#[test]
fn unknown_top_level_table() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "a"
path = "/a"
to = "https://a.example.com/"

[[tests]]
url = "https://x/a"
expect_status = 302

[setting]
app_schemes = []
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 2);
    exact(
        &errors,
        &rules,
        6,
        3,
        "-",
        "unknown table `tests` (expected settings, redirect, links, route, respond, upstream, domain or test)",
    );
    at(&errors, &rules, 10, 2, "-", "unknown table `setting`");
}

// ---------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------

const DUPLICATE_IDS: &str = r#"
[[redirect]]
id = "sale"
path = "/a"
to = "https://a.example.com/"

[[redirect]]
id = "sale"
path = "/b"
to = "https://b.example.com/"
"#;

#[test]
fn duplicate_ids_name_the_first_definition() {
    let f = Fixture::new(DUPLICATE_IDS);
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 1);
    exact(
        &errors,
        &rules,
        7,
        6,
        "sale",
        &format!("duplicate id `sale` (first defined at {rules}:2:6)"),
    );
}

#[test]
fn duplicate_ids_across_kinds() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "home"
path = "/"
to = "https://a.example.com/"

[[respond]]
id = "home"
path = "/robots.txt"
body = "User-agent: *"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 1);
    exact(
        &errors,
        &rules,
        7,
        6,
        "home",
        &format!("duplicate id `home` (first defined at {rules}:2:6)"),
    );
}

/// The first definition is the first in the file, whatever the kinds: a
/// route written before a redirect is the original, and the redirect the
/// duplicate.
#[test]
fn duplicate_id_route_before_redirect_reports_the_later_one() {
    let f = Fixture::new(
        r#"
[upstream.api]
servers = ["127.0.0.1:8080"]

[[route]]
id = "shop"
prefix = "/api/"
upstream = "api"

[[redirect]]
id = "shop"
path = "/shop"
to = "https://shop.example.com/"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 1);
    exact(
        &errors,
        &rules,
        10,
        6,
        "shop",
        &format!("duplicate id `shop` (first defined at {rules}:5:6)"),
    );

    // The same with a link set written before a redirect.
    let f = Fixture::new(
        r#"
[[links]]
id = "sale"
file = "links.csv"

[[redirect]]
id = "sale"
path = "/sale"
to = "https://shop.example.com/"
"#,
    )
    .with(
        "links.csv",
        "code,to
a,https://a.example.com/\n",
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 1);
    exact(
        &errors,
        &rules,
        6,
        6,
        "sale",
        &format!("duplicate id `sale` (first defined at {rules}:2:6)"),
    );
}

#[test]
fn ids_must_be_given_and_not_empty() {
    let f = Fixture::new(
        r#"
[[redirect]]
path = "/a"
to = "https://a.example.com/"

[[redirect]]
id = ""
path = "/b"
to = "https://a.example.com/"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 2);
    at(&errors, &rules, 1, 1, "-", "missing field `id`");
    exact(&errors, &rules, 6, 6, "-", "id must not be empty");
}

// ---------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------

#[test]
fn same_host_and_path_conflict_names_the_other_rule() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "a"
host = "go.example.com"
path = "/sale"
to = "https://a.example.com/"

[[respond]]
id = "b"
host = "GO.example.com"
path = "/sale/"
body = "hi"

[[redirect]]
id = "other-host"
host = "other.example.com"
path = "/sale"
to = "https://a.example.com/"

[[redirect]]
id = "any-host"
path = "/sale"
to = "https://a.example.com/"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 1);
    exact(
        &errors,
        &rules,
        10,
        8,
        "b",
        &format!(
            "path `/sale/` on host `go.example.com` is already claimed by rule `a` at {rules}:2:6"
        ),
    );
}

#[test]
fn same_pattern_conflict() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "p"
host = "go.example.com"
pattern = "/p/{sku}"
to = "https://shop.example.com/p/{sku}"

[[redirect]]
id = "p2"
host = "go.example.com"
pattern = "/p/{code}"
to = "https://shop.example.com/q/{code}"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 1);
    exact(
        &errors,
        &rules,
        10,
        11,
        "p2",
        &format!("pattern `/p/{{code}}` on host `go.example.com` is already claimed by rule `p` at {rules}:2:6"),
    );
}

#[test]
fn same_prefix_conflict() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "a"
prefix = "/docs/"
to = "https://docs.example.com/{rest}"

[[redirect]]
id = "b"
prefix = "/docs/"
to = "https://docs2.example.com/"

[[redirect]]
id = "c"
host = "docs.example.com"
prefix = "/docs/"
to = "https://docs3.example.com/"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 1);
    exact(
        &errors,
        &rules,
        8,
        10,
        "b",
        &format!("prefix `/docs/` on host `*` is already claimed by rule `a` at {rules}:2:6"),
    );
}

#[test]
fn csv_code_colliding_with_redirect_path_is_reported_in_the_csv() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "sale"
path = "/sale"
to = "https://shop.example.com/"

[[links]]
id = "bulk"
file = "links.csv"
"#,
    )
    .with(
        "links.csv",
        "code,to\nok1,https://a.example.com/1\nsale,https://a.example.com/2\n",
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 1);
    exact(
        &errors,
        &f.file("links.csv"),
        3,
        1,
        "bulk",
        &format!("code `sale` (path /sale) is already claimed by rule `sale` at {rules}:2:6"),
    );
}

#[test]
fn identical_codes_in_one_csv() {
    let f = Fixture::new(
        r#"
[[links]]
id = "bulk"
file = "links.csv"
"#,
    )
    .with(
        "links.csv",
        "code,to\n\
         ok1,https://a.example.com/1\n\
         ok2,https://a.example.com/2\n\
         ok1,https://a.example.com/3\n",
    );
    let errors = f.errors();
    count(&errors, 1);
    exact(
        &errors,
        &f.file("links.csv"),
        4,
        1,
        "bulk",
        "code `ok1` (path /ok1) is already claimed by line 2 of this file",
    );
}

#[test]
fn csv_line_numbers_count_blank_lines() {
    let f = Fixture::new(
        r#"
[[links]]
id = "bulk"
file = "links.csv"
"#,
    )
    .with(
        "links.csv",
        "code,to\n\
         ok1,https://a.example.com/1\n\
         \n\
         ok2,https://a.example.com/2\n\
         ok1,https://a.example.com/3\n",
    );
    let errors = f.errors();
    count(&errors, 1);
    exact(
        &errors,
        &f.file("links.csv"),
        5,
        1,
        "bulk",
        "code `ok1` (path /ok1) is already claimed by line 2 of this file",
    );
}

// ---------------------------------------------------------------------------
// Destinations
// ---------------------------------------------------------------------------

#[test]
fn template_using_a_capture_the_rule_does_not_define() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "p"
pattern = "/p/{sku}"
to = "https://shop.example.com/products/{id}"

[[redirect]]
id = "exact"
path = "/x"
to = "https://shop.example.com/{x}"

[[redirect]]
id = "pre"
prefix = "/help/"
to = "https://help.example.com/{path}"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 3);
    exact(
        &errors,
        &rules,
        4,
        6,
        "p",
        "destination `https://shop.example.com/products/{id}` uses `{id}`, which the rule does not capture (captures: sku)",
    );
    exact(
        &errors,
        &rules,
        9,
        6,
        "exact",
        "destination `https://shop.example.com/{x}` uses `{x}`, which the rule does not capture (captures: none)",
    );
    at(&errors, &rules, 14, 6, "pre", "(captures: rest)");
}

#[test]
fn placeholders_in_host_and_scheme_are_refused() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "hosty"
pattern = "/s/{sub}"
to = "https://{sub}.example.com/"

[[redirect]]
id = "glued"
pattern = "/g/{sub}"
to = "https://example.com{sub}"

[[redirect]]
id = "scheme"
pattern = "/c/{s}"
to = "{s}://example.com/"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 3);
    exact(
        &errors,
        &rules,
        4,
        6,
        "hosty",
        "destination `https://{sub}.example.com/` placeholders are not allowed in the host: the host is fixed by the rule",
    );
    at(
        &errors,
        &rules,
        9,
        6,
        "glued",
        "placeholders are not allowed in the host",
    );
    exact(
        &errors,
        &rules,
        14,
        6,
        "scheme",
        "destination `{s}://example.com/` placeholders are not allowed in the scheme",
    );
}

#[test]
fn disallowed_schemes() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "ftp"
path = "/ftp"
to = "ftp://files.example.com/x"

[[redirect]]
id = "js"
path = "/js"
to = "javascript://alert(1)"

[[redirect]]
id = "js2"
path = "/js2"
to = "javascript:alert(1)"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 3);
    exact(
        &errors,
        &rules,
        4,
        6,
        "ftp",
        "destination `ftp://files.example.com/x` scheme `ftp` is not allowed (allowed: http, https; add app schemes to settings.app_schemes)",
    );
    at(
        &errors,
        &rules,
        9,
        6,
        "js",
        "scheme `javascript` is not allowed",
    );
    // `javascript:` without `//` must be refused too, whatever the wording.
    at(&errors, &rules, 14, 6, "js2", "`javascript:alert(1)`");
}

#[test]
fn dangerous_app_schemes_are_refused_in_settings() {
    let f = Fixture::new(
        r#"
[settings]
app_schemes = ["shopapp", "javascript"]
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    exact(
        &errors,
        &f.rules_file(),
        2,
        27,
        "-",
        "`javascript` cannot be an app scheme",
    );
}

const APP_SCHEME_RULE: &str = r#"
[[redirect]]
id = "app"
path = "/app"
to = "shopapp://product/1"

[[test]]
url = "https://go.example.com/app"
expect_location = "shopapp://product/1"
"#;

#[test]
fn app_scheme_allowed_via_settings() {
    let set = Fixture::new(&format!(
        "[settings]\napp_schemes = [\"shopapp\"]\n{}",
        APP_SCHEME_RULE
    ))
    .ok();
    assert_eq!(set.settings().app_schemes, vec!["shopapp".to_string()]);
    assert_eq!(set.counts().tests, 1);

    // Without the setting the same rule is refused.
    let f = Fixture::new(APP_SCHEME_RULE);
    let errors = f.errors();
    count(&errors, 1);
    at(
        &errors,
        &f.rules_file(),
        4,
        6,
        "app",
        "scheme `shopapp` is not allowed (allowed: http, https;",
    );
}

// ---------------------------------------------------------------------------
// Statuses, upstream references, split, expiry, countries, placement
// ---------------------------------------------------------------------------

#[test]
fn bad_redirect_status() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "ok"
path = "/ok"
to = "https://a.example.com/"
status = 200
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    exact(
        &errors,
        &f.rules_file(),
        5,
        10,
        "ok",
        "status 200 is not allowed here (use 301, 302, 303, 307, 308)",
    );
}

#[test]
fn bad_links_set_status() {
    let f = Fixture::new(
        r#"
[[links]]
id = "bulk"
file = "links.csv"
status = 200
"#,
    )
    .with("links.csv", "code,to\na,https://a.example.com/\n");
    let errors = f.errors();
    count(&errors, 1);
    exact(
        &errors,
        &f.rules_file(),
        4,
        10,
        "bulk",
        "status 200 is not allowed here (use 301, 302, 303, 307, 308)",
    );
}

#[test]
fn csv_row_errors_have_the_csv_line() {
    let f = Fixture::new(
        r#"
[[links]]
id = "bulk"
file = "links.csv"
"#,
    )
    .with(
        "links.csv",
        "code,to,status\n\
         fine,https://a.example.com/,301\n\
         st,https://a.example.com/,299\n\
         js,javascript://alert(1),\n\
         js2,javascript:alert(1),\n\
         ,https://a.example.com/,\n\
         nodest,,\n",
    );
    let errors = f.errors();
    let csv = f.file("links.csv");
    count(&errors, 5);
    exact(
        &errors,
        &csv,
        3,
        1,
        "bulk",
        "code `st`: status `299` must be 301, 302, 303, 307 or 308",
    );
    exact(
        &errors,
        &csv,
        4,
        1,
        "bulk",
        "code `js`: destination `javascript://alert(1)` has scheme `javascript`, which is not allowed",
    );
    at(
        &errors,
        &csv,
        5,
        1,
        "bulk",
        "code `js2`: destination `javascript:alert(1)`",
    );
    exact(&errors, &csv, 6, 1, "bulk", "empty code");
    exact(
        &errors,
        &csv,
        7,
        1,
        "bulk",
        "code `nodest` has no destination",
    );
}

/// A respond status outside 200..=599 is refused; the message should name
/// the range, not list four hundred numbers.
#[test]
fn bad_respond_status_message_is_short() {
    let f = Fixture::new(
        r#"
[[respond]]
id = "r"
path = "/r"
status = 700
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    let e = at(
        &errors,
        &f.rules_file(),
        4,
        10,
        "r",
        "status 700 must be between 200 and 599",
    );
    assert!(
        e.message.contains("200") && e.message.contains("599"),
        "{e}"
    );
    assert!(
        e.message.len() < 120,
        "message is {} characters long: {}",
        e.message.len(),
        e.message
    );
}

#[test]
fn unknown_upstream_lists_the_defined_pools() {
    let f = Fixture::new(
        r#"
[upstream.web]
servers = ["127.0.0.1:8081"]

[upstream.api]
servers = ["127.0.0.1:8080"]

[[route]]
id = "r1"
prefix = "/api/"
upstream = "apii"
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    exact(
        &errors,
        &f.rules_file(),
        10,
        12,
        "r1",
        "unknown upstream `apii` (defined: api, web)",
    );

    let f = Fixture::new(
        r#"
[[route]]
id = "r1"
prefix = "/api/"
upstream = "api"
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    exact(
        &errors,
        &f.rules_file(),
        4,
        12,
        "r1",
        "unknown upstream `api` (defined: none)",
    );
}

#[test]
fn split_weights_zero_and_sum_zero() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "w0"
path = "/w"
split = [
  { to = "https://a.example.com/", weight = 0 },
  { to = "https://b.example.com/", weight = 0 },
]

[[redirect]]
id = "w1"
path = "/w1"
split = [
  { to = "https://a.example.com/", weight = 5 },
  { to = "https://b.example.com/", weight = -3 },
]

[[redirect]]
id = "w2"
path = "/w2"
split = []
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 5);
    exact(
        &errors,
        &rules,
        5,
        45,
        "w0",
        "weight 0 must be a positive whole number",
    );
    exact(
        &errors,
        &rules,
        6,
        45,
        "w0",
        "weight 0 must be a positive whole number",
    );
    exact(&errors, &rules, 4, 9, "w0", "split weights sum to zero");
    exact(
        &errors,
        &rules,
        14,
        45,
        "w1",
        "weight -3 must be a positive whole number",
    );
    exact(&errors, &rules, 20, 9, "w2", "split has no variants");
}

#[test]
fn to_and_split_both_or_neither() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "both"
path = "/both"
to = "https://a.example.com/"
split = [{ to = "https://b.example.com/", weight = 1 }]

[[redirect]]
id = "none"
path = "/none"
status = 301
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 2);
    exact(
        &errors,
        &rules,
        5,
        9,
        "both",
        "give either `to` or `split`, not both",
    );
    // No value to point at: the rule's [[redirect]] line.
    exact(
        &errors,
        &rules,
        7,
        1,
        "none",
        "needs a destination: `to` or `split`",
    );
}

#[test]
fn expiry_errors() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "exp"
path = "/exp"
to = "https://a.example.com/"
expires_at = "next tuesday"

[[redirect]]
id = "exp2"
path = "/exp2"
to = "https://a.example.com/"
expired_to = "https://b.example.com/"

[[redirect]]
id = "exp3"
path = "/exp3"
to = "https://a.example.com/"
expires_at = "2030-09-01T00:00:00"

[[redirect]]
id = "exp4"
path = "/exp4"
to = "https://a.example.com/"
expires_at = 5

[[redirect]]
id = "fine"
path = "/fine"
to = "https://a.example.com/"
expires_at = "2030-09-01T00:00:00+02:00"
expired_to = "https://b.example.com/"

[[redirect]]
id = "fine2"
path = "/fine2"
to = "https://a.example.com/"
expires_at = 2030-09-01T00:00:00Z
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 4);
    let e = at(
        &errors,
        &rules,
        5,
        14,
        "exp",
        "`next tuesday` is not an RFC 3339 time",
    );
    assert!(e.message.contains("e.g. 2026-12-31T23:59:59Z"), "{e}");
    exact(
        &errors,
        &rules,
        11,
        14,
        "exp2",
        "expired_to needs expires_at",
    );
    at(
        &errors,
        &rules,
        17,
        14,
        "exp3",
        "`2030-09-01T00:00:00` is not an RFC 3339 time with a zone",
    );
    at(&errors, &rules, 23, 14, "exp4", "a time must be a string");
}

#[test]
fn bad_country_codes() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "cc"
path = "/cc"
to = "https://a.example.com/"
countries = { USA = "https://us.example.com/", de = "https://de.example.com/" }

[[redirect]]
id = "cc2"
path = "/cc2"
to = "https://a.example.com/"

[redirect.countries]
FR = "https://fr.example.com/"
"1A" = "https://x.example.com/"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 2);
    exact(
        &errors,
        &rules,
        5,
        15,
        "cc",
        "`USA` is not a two-letter country code",
    );
    exact(
        &errors,
        &rules,
        14,
        1,
        "cc2",
        "`1A` is not a two-letter country code",
    );
}

/// Codes are case-insensitive, so `de` and `DE` are the same country: the
/// second one in the file is the duplicate.
#[test]
fn duplicate_country_code_is_reported_at_the_second_one() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "cc"
path = "/cc"
to = "https://a.example.com/"
countries = { de = "https://de.example.com/", DE = "https://de2.example.com/" }
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    exact(
        &errors,
        &f.rules_file(),
        5,
        47,
        "cc",
        "country `DE` is given twice (codes are case-insensitive)",
    );
}

#[test]
fn exactly_one_of_path_pattern_prefix() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "nowhere"
to = "https://a.example.com/"

[[redirect]]
id = "both"
path = "/both"
prefix = "/both/"
to = "https://a.example.com/"

[[respond]]
id = "three"
path = "/r"
pattern = "/r/{x}"
prefix = "/r/"
body = "x"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 3);
    exact(
        &errors,
        &rules,
        1,
        1,
        "nowhere",
        "needs one of `path`, `pattern` or `prefix`",
    );
    exact(
        &errors,
        &rules,
        8,
        10,
        "both",
        "give only one of `path`, `pattern` or `prefix`",
    );
    exact(
        &errors,
        &rules,
        14,
        11,
        "three",
        "give only one of `path`, `pattern` or `prefix`",
    );
}

#[test]
fn bad_hosts() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "badhost"
host = "go.*.com"
path = "/a"
to = "https://a.example.com/"

[[redirect]]
id = "star"
host = "*."
path = "/a"
to = "https://a.example.com/"

[[redirect]]
id = "empty"
host = ""
path = "/a"
to = "https://a.example.com/"

[[redirect]]
id = "fine"
host = "*.example.com"
path = "/a"
to = "https://a.example.com/"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 3);
    exact(
        &errors,
        &rules,
        3,
        8,
        "badhost",
        "host `go.*.com`: `*` is only allowed as a whole first label (*.example.com)",
    );
    exact(
        &errors,
        &rules,
        9,
        8,
        "star",
        "host `*.`: a wildcard must look like *.example.com",
    );
    exact(
        &errors,
        &rules,
        15,
        8,
        "empty",
        "host is empty: omit it or use \"*\" for any host",
    );
}

#[test]
fn paths_must_start_with_a_slash() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "nos"
path = "noslash"
to = "https://a.example.com/"

[[redirect]]
id = "nosp"
pattern = "p/{x}"
to = "https://a.example.com/"

[[redirect]]
id = "nopre"
prefix = "docs/"
to = "https://a.example.com/"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 3);
    exact(&errors, &rules, 3, 8, "nos", "`noslash` must start with /");
    exact(&errors, &rules, 8, 11, "nosp", "`p/{x}` must start with /");
    exact(
        &errors,
        &rules,
        13,
        10,
        "nopre",
        "`docs/` must start with /",
    );
}

/// A broken host stops the rule from being placed, but its other problems
/// (here the status) are still reported: all problems at once.
#[test]
fn redirect_with_bad_host_still_reports_its_other_problems() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "h"
host = "go.*.com"
path = "/h"
to = "https://a.example.com/"
status = 200
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    at(
        &errors,
        &rules,
        3,
        8,
        "h",
        "`*` is only allowed as a whole first label",
    );
    at(
        &errors,
        &rules,
        6,
        10,
        "h",
        "status 200 is not allowed here",
    );
    count(&errors, 2);
}

// ---------------------------------------------------------------------------
// Embedded tests
// ---------------------------------------------------------------------------

#[test]
fn failing_tests_show_expected_and_actual_at_the_test_table() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "e"
path = "/e"
to = "https://a.example.com/"

[[test]]
name = "t"
url = "https://x/e"
expect_status = 301
expect_rule = "e"

[[test]]
url = "https://x/nope"
expect_location = "https://b.example.com/"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 2);
    exact(
        &errors,
        &rules,
        6,
        1,
        "e",
        "test `t` (https://x/e): expected status 301, got 302 redirect to https://a.example.com/ (rule e)",
    );
    exact(
        &errors,
        &rules,
        12,
        1,
        "-",
        "test #2 (https://x/nope): expected location https://b.example.com/, got 404 not found",
    );
}

#[test]
fn test_without_expectation() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "e"
path = "/e"
to = "https://a.example.com/"

[[test]]
url = "https://x/e"
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    exact(
        &errors,
        &f.rules_file(),
        6,
        1,
        "-",
        "test #1 (https://x/e): the test expects nothing: add expect_status, expect_location, expect_rule, expect_upstream, expect_path or expect_body",
    );
}

#[test]
fn passing_tests_load() {
    let set = Fixture::new(
        r#"
[upstream.api]
servers = ["127.0.0.1:8080"]

[[redirect]]
id = "p"
host = "go.example.com"
pattern = "/p/{sku}"
to = "https://shop.example.com/products/{sku}"
status = 301

[[respond]]
id = "robots"
path = "/robots.txt"
body = "User-agent: *"

[[route]]
id = "shop-api"
host = "shop.example.com"
prefix = "/api/"
upstream = "api"
strip_prefix = true

[[test]]
name = "pattern redirect"
url = "https://go.example.com/p/123?x=1"
expect_status = 301
expect_location = "https://shop.example.com/products/123?x=1"
expect_rule = "p"

[[test]]
url = "https://go.example.com/robots.txt"
expect_status = 200
expect_body = "User-agent: *"

[[test]]
url = "https://shop.example.com/api/v1/cart?currency=EUR"
expect_upstream = "api"
expect_path = "/v1/cart?currency=EUR"

[[test]]
url = "https://go.example.com/nothing"
expect_status = 404
"#,
    )
    .ok();
    let c = set.counts();
    assert_eq!(c.tests, 4, "{c:?}");
    assert_eq!(
        (c.redirects, c.responds, c.routes, c.upstreams),
        (1, 1, 1, 1),
        "{c:?}"
    );
}

// ---------------------------------------------------------------------------
// Upstreams
// ---------------------------------------------------------------------------

#[test]
fn upstream_errors() {
    let f = Fixture::new(
        r#"
[upstream.api]
servers = []

[upstream.web]
servers = ["127.0.0.1"]
balance = "random"
connect_timeout = "soon"
health_check = { interval = "0s" }
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 5);
    exact(
        &errors,
        &rules,
        2,
        11,
        "api",
        "an upstream needs at least one server",
    );
    exact(
        &errors,
        &rules,
        5,
        12,
        "web",
        "server `127.0.0.1` must be host:port",
    );
    exact(
        &errors,
        &rules,
        6,
        11,
        "web",
        "balance must be \"round_robin\" or \"consistent\", not \"random\"",
    );
    let e = at(&errors, &rules, 7, 19, "web", "`soon` is not a duration (");
    assert!(e.message.ends_with(", e.g. \"500ms\" or \"2s\""), "{e}");
    exact(
        &errors,
        &rules,
        8,
        29,
        "web",
        "duration must be more than zero",
    );
}

// ---------------------------------------------------------------------------
// CSV files
// ---------------------------------------------------------------------------

#[test]
fn csv_header_and_file_problems() {
    let f = Fixture::new(
        r#"
[[links]]
id = "l1"
file = "badhdr.csv"

[[links]]
id = "l2"
prefix = "/l2/"
file = "noto.csv"

[[links]]
id = "l3"
prefix = "/l3/"
file = "nope.csv"
"#,
    )
    .with("badhdr.csv", "code,url\na,https://a.example.com/\n")
    .with("noto.csv", "code,status\na,301\n");
    let errors = f.errors();
    count(&errors, 3);
    exact(
        &errors,
        &f.file("badhdr.csv"),
        1,
        1,
        "l1",
        "column 2 of the header is not a known column; expected code, to, status, ios, android, desktop, expires_at",
    );
    exact(
        &errors,
        &f.file("noto.csv"),
        1,
        1,
        "l2",
        "the header must name at least the columns `code` and `to`",
    );
    let e = at(
        &errors,
        &f.rules_file(),
        13,
        8,
        "l3",
        &format!("cannot read links file {}: ", f.file("nope.csv")),
    );
    assert!(!e.file.ends_with(".csv"), "{e}");
}

// ---------------------------------------------------------------------------
// Everything at once, positions, format
// ---------------------------------------------------------------------------

#[test]
fn all_errors_are_collected_in_one_run() {
    let f = Fixture::new(
        r#"
[settings]
app_schemes = ["javascript"]

[upstream.api]
servers = ["127.0.0.1:8080"]
balance = "random"

[[redirect]]
id = "a"
path = "/a"
to = "https://a.example.com/"
status = 200

[[redirect]]
id = "b"
path = "/b"
to = "ftp://b.example.com/"

[[respond]]
id = "c"
path = "/c"
headers = { "Bad Header" = "x" }

[[route]]
id = "d"
prefix = "/d/"
upstream = "web"

[[links]]
id = "e"
file = "missing.csv"
"#,
    );
    let errors = f.errors();
    let rules = f.rules_file();
    let got: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.rule.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, 16, "-"),
            (6, 11, "api"),
            (12, 10, "a"),
            (17, 6, "b"),
            (22, 13, "c"),
            (27, 12, "d"),
            (31, 8, "e"),
        ],
        "all errors:\n{}",
        dump(&errors)
    );
    assert!(errors.iter().all(|e| e.file == rules), "{}", dump(&errors));
    at(
        &errors,
        &rules,
        22,
        13,
        "c",
        "`Bad Header` is not a valid header name",
    );
    at(&errors, &rules, 27, 12, "d", "unknown upstream `web`");
}

/// Errors in the rules file come in file order, whatever the kinds of the
/// rules and whichever stage (unknown table, unknown key, checks) found them.
#[test]
fn errors_come_in_file_order() {
    let f = Fixture::new(
        r#"
[[route]]
id = "r"
prefix = "/r/"
upstream = "nope"

[[redirect]]
id = "a"
path = "/a"
to = "https://a.example.com/"
status = 200

[[redirect]]
id = "b"
path = "/b"
to = "https://b.example.com/"
typo = 1

[bogus]
x = 1
"#,
    );
    let errors = f.errors();
    let got: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.rule.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![(4, 12, "r"), (10, 10, "a"), (16, 1, "b"), (18, 2, "-")],
        "all errors:\n{}",
        dump(&errors)
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    let f = Fixture::new(
        r#"
redirect = [ { id = "ünï", path = "/u", to = "https://a.example.com/", status = 200 } ]
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    at(
        &errors,
        &f.rules_file(),
        1,
        81,
        "ünï",
        "status 200 is not allowed here",
    );
}

#[test]
fn display_is_file_line_col_rule_message() {
    let e = RuleError {
        file: "conf/rules.toml".into(),
        line: 7,
        column: 6,
        rule: "sale".into(),
        message: "duplicate id `sale` (first defined at conf/rules.toml:2:6)".into(),
    };
    assert_eq!(
        e.to_string(),
        "conf/rules.toml:7:6: rule sale: duplicate id `sale` (first defined at conf/rules.toml:2:6)"
    );

    let f = Fixture::new(DUPLICATE_IDS);
    let errors = f.errors();
    let rules = f.rules_file();
    count(&errors, 1);
    assert_eq!(
        errors[0].to_string(),
        format!("{rules}:7:6: rule sale: duplicate id `sale` (first defined at {rules}:2:6)")
    );

    // Problems outside any rule show `-`.
    let f = Fixture::new("[bogus]\n");
    let errors = f.errors();
    count(&errors, 1);
    assert!(
        errors[0].to_string().starts_with(&format!(
            "{}:1:2: rule -: unknown table `bogus`",
            f.rules_file()
        )),
        "{}",
        errors[0]
    );
}

#[test]
fn from_source_names_the_given_path() {
    let errors = match RuleSet::from_source(
        doc(DUPLICATE_IDS),
        "virtual/rules.toml",
        &LoadOptions::default(),
    ) {
        Ok(_) => panic!("duplicate ids must not load"),
        Err(e) => e,
    };
    count(&errors, 1);
    exact(
        &errors,
        "virtual/rules.toml",
        7,
        6,
        "sale",
        "duplicate id `sale` (first defined at virtual/rules.toml:2:6)",
    );
}

#[test]
fn unreadable_rules_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let errors = match RuleSet::load(&path) {
        Ok(_) => panic!("a missing file must not load"),
        Err(e) => e,
    };
    count(&errors, 1);
    at(
        &errors,
        &path.display().to_string(),
        1,
        1,
        "-",
        "cannot read rules file: ",
    );
}

#[test]
fn path_conflicts_are_reported_at_the_later_rule_whatever_the_kinds() {
    let f = Fixture::new(
        r#"
[[respond]]
id = "first"
path = "/a"
body = "x"

[[redirect]]
id = "second"
path = "/a"
to = "https://example.com/"
"#,
    );
    let errors = f.errors();
    let e = at(
        &errors,
        &f.rules_file(),
        8,
        8,
        "second",
        "is already claimed by rule `first`",
    );
    assert!(e.message.contains(":2:6"), "{e}");
    assert_eq!(errors.len(), 1, "{}", dump(&errors));
}

#[test]
fn a_links_set_with_a_bad_host_and_prefix_still_reports_its_csv() {
    let f = Fixture::new(
        r#"
[[links]]
id = "bulk"
host = "a b"
prefix = "/x y/"
file = "l.csv"
"#,
    )
    .with(
        "l.csv",
        "code,to\nok,https://example.com/\nbad,ftp://example.com/\n",
    );
    let errors = f.errors();
    at(&errors, &f.rules_file(), 3, 8, "bulk", "invalid characters");
    at(
        &errors,
        &f.rules_file(),
        4,
        10,
        "bulk",
        "must not contain spaces",
    );
    at(&errors, &f.file("l.csv"), 3, 1, "bulk", "`ftp`");
}

#[test]
fn dot_segments_in_a_destination_get_their_own_message() {
    let f = Fixture::new(
        r#"
[[redirect]]
id = "dots"
path = "/d"
to = "https://example.com/a/../b"
"#,
    );
    at(
        &f.errors(),
        &f.rules_file(),
        4,
        6,
        "dots",
        "`..` path segment",
    );
}

/// `[[respond]]` headers cannot set what the gateway writes itself (framing,
/// connection, `X-Rules-Version`), nor the two headers that have keys of
/// their own, nor the same header twice in any case (reported at the second
/// spelling in the file); a 204, 205 or 304 cannot have a body.
#[test]
fn respond_headers_that_would_break_framing_are_refused() {
    let f = Fixture::new(
        r#"
[[respond]]
id = "r"
path = "/r"
status = 204
body = "xyz"
headers = { "Content-Length" = "99", "set-cookie" = "a=1", "Set-Cookie" = "b=2", "Connection" = "close", "Content-Type" = "text/html", "X-Rules-Version" = "9" }
"#,
    );
    let errors = f.errors();
    count(&errors, 6);
    let file = f.rules_file();
    for (column, message) in [
        (13, "header `Content-Length` is set by the gateway"),
        (60, "header `Set-Cookie` is given twice"),
        (82, "header `Connection` is set by the gateway"),
        (
            106,
            "header `Content-Type` has its own key: use `content_type`",
        ),
        (136, "header `X-Rules-Version` is set by the gateway"),
    ] {
        at(&errors, &file, 6, column, "r", message);
    }
    at(&errors, &file, 5, 8, "r", "a 204 response has no body");
}

/// Paths and bulk-link codes have a length limit.
#[test]
fn overlong_paths_and_codes_are_refused() {
    let long = "a".repeat(9000);
    let f = Fixture::new(&format!(
        r#"
[[redirect]]
id = "r"
path = "/{long}"
to = "https://example.com/"

[[links]]
id = "bulk"
file = "links.csv"
"#
    ))
    .with(
        "links.csv",
        &format!("code,to\nok,https://example.com/\n{long},https://example.com/\n"),
    );
    let errors = f.errors();
    count(&errors, 2);
    at(
        &errors,
        &f.rules_file(),
        3,
        8,
        "r",
        "path is 9001 bytes long; the limit is 8192",
    );
    at(
        &errors,
        &f.file("links.csv"),
        3,
        1,
        "bulk",
        "code is 9000 bytes long; the limit is 8192",
    );
}

// ---------------------------------------------------------------------------
// Referenced files: confinement, kinds and limits
// ---------------------------------------------------------------------------

/// A rules file whose single `[[respond]]` serves `body_file`; its value
/// starts at 3:13.
fn body_file_rule(body_file: &str) -> String {
    format!("[[respond]]\nid = \"b\"\nbody_file = {body_file:?}\npath = \"/b\"\n")
}

/// The error of a load of `body_file_rule`, which must be refused at the
/// `body_file` value with `needle`, and must not quote `/etc/passwd`.
#[track_caller]
fn refused_body_file(f: &Fixture, needle: &str) -> RuleError {
    let errors = f.errors();
    count(&errors, 1);
    let e = at(&errors, &f.rules_file(), 3, 13, "b", needle).clone();
    assert_no_passwd(&errors);
    e
}

/// No error quotes a line (or the tell-tale start) of `/etc/passwd`.
#[track_caller]
fn assert_no_passwd(errors: &[RuleError]) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for e in errors {
        let text = e.to_string();
        assert!(!text.contains("root:"), "{text}");
        for line in passwd.lines().filter(|l| l.len() > 3) {
            assert!(!text.contains(line), "{text} quotes {line}");
        }
    }
}

const OUTSIDE: &str = "it is not inside the rules file's directory or an allowed directory";

fn respond_body(set: &RuleSet) -> Vec<u8> {
    match set.decide(&rules::Request::get("a.example.com", "/b", NOW)) {
        rules::Decision::Respond(r) => r.body.to_vec(),
        other => panic!("expected a respond decision, got {other:?}"),
    }
}

#[test]
fn body_file_with_an_absolute_path_outside_is_refused() {
    let f = Fixture::new(&body_file_rule("/etc/passwd"));
    let e = refused_body_file(&f, OUTSIDE);
    assert!(
        e.message.starts_with("cannot read body_file /etc/passwd: "),
        "{e}"
    );
}

#[test]
fn body_file_climbing_out_with_dot_dot_is_refused() {
    let outer = tempfile::tempdir().expect("tempdir");
    let inner = outer.path().join("rules");
    std::fs::create_dir(&inner).expect("mkdir");
    std::fs::write(outer.path().join("outside.txt"), "secret").expect("write");
    std::fs::write(inner.join("rules.toml"), body_file_rule("../outside.txt")).expect("write");
    let f = Fixture {
        rules: inner.join("rules.toml"),
        dir: outer,
    };
    let e = refused_body_file(&f, OUTSIDE);
    assert!(!e.message.contains("secret"), "{e}");
    // Deep climbs and a path whose target does not exist get the same
    // answer, so the message is no probe for what exists outside.
    for name in ["../../../../../../etc/passwd", "/etc/no-such-file-here"] {
        std::fs::write(&f.rules, body_file_rule(name)).expect("write");
        refused_body_file(&f, OUTSIDE);
    }
}

#[test]
fn body_file_symlink_pointing_outside_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.txt"), "secret").expect("write");
    let f = Fixture::new(&body_file_rule("link.txt"));
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        f.dir.path().join("link.txt"),
    )
    .expect("symlink");
    let e = refused_body_file(&f, OUTSIDE);
    assert!(!e.message.contains("secret"), "{e}");
    // A symlink to /etc/passwd is refused the same way.
    std::fs::remove_file(f.dir.path().join("link.txt")).expect("rm");
    std::os::unix::fs::symlink("/etc/passwd", f.dir.path().join("link.txt")).expect("symlink");
    refused_body_file(&f, OUTSIDE);
}

#[test]
fn body_file_symlink_inside_the_rules_dir_is_served() {
    let f = Fixture::new(&body_file_rule("static/link.json"));
    std::fs::create_dir(f.dir.path().join("static")).expect("mkdir");
    std::fs::write(f.dir.path().join("static/aasa.json"), "{}").expect("write");
    std::os::unix::fs::symlink("aasa.json", f.dir.path().join("static/link.json"))
        .expect("symlink");
    assert_eq!(respond_body(&f.ok()), b"{}");
}

#[test]
fn body_file_fifo_is_refused_without_blocking() {
    let f = Fixture::new(&body_file_rule("pipe"));
    let status = std::process::Command::new("mkfifo")
        .arg(f.dir.path().join("pipe"))
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    let rules = f.rules.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    // A loader blocked on the FIFO would hang the test: wait in a thread.
    std::thread::spawn(move || {
        let _ = tx.send(RuleSet::load_with(&rules, &LoadOptions::default()));
    });
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading a rules file naming a FIFO blocked");
    let errors = result.expect_err("a FIFO must be refused");
    count(&errors, 1);
    at(
        &errors,
        &f.rules_file(),
        3,
        13,
        "b",
        "it is not a regular file",
    );
}

#[test]
fn body_file_directory_is_refused() {
    let f = Fixture::new(&body_file_rule("static"));
    std::fs::create_dir(f.dir.path().join("static")).expect("mkdir");
    refused_body_file(&f, "it is not a regular file");
}

#[test]
fn body_file_under_proc_is_refused_even_when_allowed() {
    for name in ["/proc/self/environ", "/proc/self/cmdline"] {
        let f = Fixture::new(&body_file_rule(name));
        refused_body_file(&f, "files under /proc, /sys and /dev are never read");
        let errors = f
            .load_opts(LoadOptions {
                allow_dirs: vec!["/".into()],
                ..LoadOptions::default()
            })
            .expect_err("/proc must be refused");
        count(&errors, 1);
        at(
            &errors,
            &f.rules_file(),
            3,
            13,
            "b",
            "files under /proc, /sys and /dev are never read",
        );
    }
}

#[test]
fn body_file_larger_than_the_limit_is_refused() {
    let f = Fixture::new(&body_file_rule("big.bin"));
    let limit = rules::DEFAULT_BODY_FILE_LIMIT as usize;
    std::fs::write(f.dir.path().join("big.bin"), vec![b'x'; limit + 1]).expect("write");
    refused_body_file(&f, "it is larger than the limit of 1048576 bytes");
    std::fs::write(f.dir.path().join("big.bin"), vec![b'x'; limit]).expect("write");
    assert_eq!(respond_body(&f.ok()).len(), limit);
    let errors = f
        .load_opts(LoadOptions {
            body_file_limit: Some(10),
            ..LoadOptions::default()
        })
        .expect_err("over the configured limit");
    at(
        &errors,
        &f.rules_file(),
        3,
        13,
        "b",
        "it is larger than the limit of 10 bytes",
    );
}

#[test]
fn body_file_in_an_allowed_dir_is_served() {
    let shared = tempfile::tempdir().expect("tempdir");
    let body = shared.path().join("aasa.json");
    std::fs::write(&body, "{\"applinks\":{}}").expect("write");
    let f = Fixture::new(&body_file_rule(&body.display().to_string()));
    refused_body_file(&f, OUTSIDE);
    let set = f
        .load_opts(LoadOptions {
            allow_dirs: vec![shared.path().to_path_buf()],
            ..LoadOptions::default()
        })
        .unwrap_or_else(|e| panic!("allowed dir refused:\n{}", dump(&e)));
    assert_eq!(respond_body(&set), b"{\"applinks\":{}}");
}

#[test]
fn relative_files_inside_the_rules_dir_still_load() {
    let f = Fixture::new(
        r#"
[[respond]]
id = "b"
path = "/b"
body_file = "static/./body.txt"

[[links]]
id = "l"
prefix = "/l/"
file = "links/../links/go.csv"
"#,
    );
    std::fs::create_dir(f.dir.path().join("static")).expect("mkdir");
    std::fs::create_dir(f.dir.path().join("links")).expect("mkdir");
    std::fs::write(f.dir.path().join("static/body.txt"), "hello").expect("write");
    std::fs::write(
        f.dir.path().join("links/go.csv"),
        "code,to\nx,https://a.example.com/\n",
    )
    .expect("write");
    let set = f.ok();
    assert_eq!(respond_body(&set), b"hello");
    assert_eq!(set.counts().links, 1);
    assert_eq!(set.files().len(), 3);
}

#[test]
fn links_file_outside_is_refused_without_quoting_it() {
    let f = Fixture::new(
        r#"
[[links]]
id = "l"
file = "/etc/passwd"
"#,
    );
    let errors = f.errors();
    count(&errors, 1);
    at(
        &errors,
        &f.rules_file(),
        3,
        8,
        "l",
        &format!("cannot read links file /etc/passwd: {OUTSIDE}"),
    );
    assert_no_passwd(&errors);
}

#[test]
fn links_header_errors_name_columns_by_position() {
    let f = Fixture::new(
        r#"
[[links]]
id = "l1"
file = "secret.csv"

[[links]]
id = "l2"
prefix = "/l2/"
file = "twice.csv"
"#,
    )
    .with("secret.csv", "code,to,hunter2:x:0:0\n")
    .with("twice.csv", "to,code,to\n");
    let errors = f.errors();
    count(&errors, 2);
    exact(
        &errors,
        &f.file("secret.csv"),
        1,
        1,
        "l1",
        "column 3 of the header is not a known column; expected code, to, status, ios, android, desktop, expires_at",
    );
    exact(
        &errors,
        &f.file("twice.csv"),
        1,
        1,
        "l2",
        "column 3 of the header repeats column 1",
    );
    assert!(errors.iter().all(|e| !e.message.contains("hunter2")));
}

#[test]
fn content_hash_with_rereads_through_the_same_fence() {
    let f = Fixture::new(&body_file_rule("body.txt")).with("body.txt", "hello");
    let set = f.ok();
    let text = std::fs::read_to_string(&f.rules).expect("read");
    assert_eq!(
        set.content_hash_with(&text).expect("hash"),
        set.content_hash()
    );
    std::fs::remove_file(f.dir.path().join("body.txt")).expect("rm");
    std::os::unix::fs::symlink("/etc/passwd", f.dir.path().join("body.txt")).expect("symlink");
    let e = set
        .content_hash_with(&text)
        .expect_err("a file swapped for a symlink out must not be read");
    assert!(e.to_string().contains(OUTSIDE), "{e}");
}
