//! Resident memory of a rule set with 1,000,000 bulk links.
//!
//! Generates the CSV in a temporary directory, then reads `VmRSS` from
//! `/proc/self/status` before and after `RuleSet::load`.
//!
//! `cargo run --release -p rules --example memory [-- <links>]`

use std::time::Instant;

use rules::RuleSet;

/// A field of `/proc/self/status` in kB (`VmRSS`, `VmHWM`); 0 when unavailable.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[path = "../benches/support/links.rs"]
mod links;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("links.csv");
    links::write_links(&csv, n);
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[links]]\nid = \"short\"\nhost = \"go.example.com\"\nfile = \"links.csv\"\n",
    )
    .unwrap();
    let csv_bytes = std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0);

    let before = status_kb("VmRSS");
    let start = Instant::now();
    let set = RuleSet::load(&rules).unwrap_or_else(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        panic!("rule set does not load");
    });
    let elapsed = start.elapsed();
    let after = status_kb("VmRSS");
    let peak = status_kb("VmHWM");

    let counts = set.counts();
    println!("links:          {}", counts.links);
    println!("csv size:       {:.1} MB", csv_bytes as f64 / 1_048_576.0);
    println!("load time:      {:.3} s", elapsed.as_secs_f64());
    println!("VmRSS before:   {:.1} MB", mb(before));
    println!("VmRSS after:    {:.1} MB", mb(after));
    println!("RSS delta:      {:.1} MB", mb(after.saturating_sub(before)));
    println!(
        "per link:       {:.0} bytes",
        (after.saturating_sub(before) * 1024) as f64 / counts.links.max(1) as f64
    );
    println!("VmHWM (peak):   {:.1} MB", mb(peak));
    drop(set);
}
