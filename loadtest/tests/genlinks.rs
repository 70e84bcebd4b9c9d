//! gen-links is deterministic: the same N gives the same bytes, a smaller N
//! is a prefix of a larger one, and row i is `code(i),destination(i)`.

use loadtest::genlinks::{self, code, destination, write_csv};

fn csv(n: u64) -> String {
    let mut out = Vec::new();
    write_csv(n, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn same_input_same_bytes() {
    assert_eq!(csv(500), csv(500));
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    let rules = dir.path().join("rules.toml");
    genlinks::generate(300, &a, Some(&rules), "go.example.com", "127.0.0.1:9001").unwrap();
    let rules_a = std::fs::read_to_string(&rules).unwrap();
    genlinks::generate(300, &b, None, "go.example.com", "127.0.0.1:9001").unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    genlinks::generate(300, &a, Some(&rules), "go.example.com", "127.0.0.1:9001").unwrap();
    assert_eq!(std::fs::read_to_string(&rules).unwrap(), rules_a);
}

#[test]
fn smaller_sets_are_prefixes_and_rows_match_the_formula() {
    let small = csv(100);
    let large = csv(1000);
    assert!(large.starts_with(&small));
    let lines: Vec<&str> = large.lines().collect();
    assert_eq!(lines[0], "code,to");
    assert_eq!(lines.len(), 1001);
    for (i, line) in lines[1..].iter().enumerate() {
        assert_eq!(
            *line,
            format!("{},{}", code(i as u64), destination(i as u64))
        );
    }
    // Pinned, so a change of the scheme is noticed (nginx maps and rules
    // files generated earlier would no longer match).
    assert_eq!(code(0), "kf12oi");
    assert_eq!(
        lines[1],
        "kf12oi,https://shop.example.com/item/0?utm_source=go"
    );
}

#[test]
fn rules_file_names_the_csv_and_the_scenario_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    genlinks::generate(
        10,
        &dir.path().join("links.csv"),
        Some(&rules),
        "go.example.com",
        "127.0.0.1:9123",
    )
    .unwrap();
    let text = std::fs::read_to_string(&rules).unwrap();
    assert!(text.contains("[[links]]"));
    assert!(text.contains("file = \"links.csv\""));
    assert!(text.contains("pattern = \"/p/{sku}\""));
    assert!(text.contains("servers = [\"127.0.0.1:9123\"]"));
    // Valid TOML.
    let _: toml_like::Ignored = toml_like::parse(&text);
}

#[test]
fn bounds() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.csv");
    assert!(genlinks::generate(0, &p, None, "h", "127.0.0.1:1").is_err());
    assert!(genlinks::generate(genlinks::MAX_LINKS + 1, &p, None, "h", "127.0.0.1:1").is_err());
}

/// A tiny TOML well-formedness check without a toml dependency: every
/// non-comment line is a table header, a key = value pair or blank.
mod toml_like {
    pub struct Ignored;
    pub fn parse(text: &str) -> Ignored {
        for line in text.lines() {
            let l = line.trim();
            assert!(
                l.is_empty() || l.starts_with('#') || l.starts_with('[') || l.contains(" = "),
                "odd line {l:?}"
            );
        }
        Ignored
    }
}
