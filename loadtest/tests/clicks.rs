//! `loadtest clicks` on the real gateway binary: both arms run, every
//! redirect of the measured arm is a click event the gateway accounts for,
//! and the baseline produces none. One tiny round each; nothing here
//! asserts how fast anything is.

mod common;

use common::{gateway_binary, loadtest_binary};
use std::path::PathBuf;

/// Runs `loadtest clicks` with `args` (one round and no warm-up unless
/// they say) and returns its JSON report.
fn clicks(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut defaults = Vec::new();
    for (flag, value) in [("--rounds", "1"), ("--warmup", "0s")] {
        if !args.contains(&flag) {
            defaults.extend([flag, value]);
        }
    }
    let out = std::process::Command::new(loadtest_binary())
        .arg("clicks")
        .args(args)
        .args(defaults)
        .args([
            "--links",
            "1000",
            "--duration",
            "300ms",
            "--connections",
            "2",
            "--max-requests",
            "300",
            "--json",
            "--gateway",
        ])
        .arg(gateway_binary())
        .arg("--workdir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The runs of arm `name`.
fn runs<'a>(report: &'a serde_json::Value, name: &str) -> Vec<&'a serde_json::Value> {
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["arm"] == name)
        .collect()
}

/// Every answered redirect of the measured arm is one event, delivered;
/// the baseline has none.
fn assert_every_click_delivered(report: &serde_json::Value, base: &str, with: &str) {
    let [b] = runs(report, base)[..] else {
        panic!("one {base} run: {report}")
    };
    let [w] = runs(report, with)[..] else {
        panic!("one {with} run: {report}")
    };
    for r in [b, w] {
        assert_eq!(r["load"]["errors"]["connect"], 0, "{report}");
        assert!(r["load"]["ok"].as_u64().unwrap() > 0, "{report}");
        // Present; /proc counts CPU in 10 ms ticks, so a run this short
        // may read 0.
        assert!(r["gateway_cpu_us_per_request"].is_f64(), "{report}");
        assert!(r["background_cpu_us_per_request"].is_f64(), "{report}");
        assert!(r["other_cpu_us_per_request"].is_f64(), "{report}");
    }
    // With events off (and no store) the gateway runs no click writer,
    // publisher or SQLite thread.
    assert_eq!(b["background_cpu_us_per_request"], 0.0, "{report}");
    assert!(report["other_cpu_us_per_click"].is_f64(), "{report}");
    assert_eq!(b["events"]["produced"], 0, "{report}");
    let ok = w["load"]["ok"].as_u64().unwrap();
    assert_eq!(w["events"]["produced"].as_u64().unwrap(), ok, "{report}");
    assert_eq!(w["events"]["delivered"].as_u64().unwrap(), ok, "{report}");
    assert_eq!(w["events"]["dropped"], 0, "{report}");
    assert!(report["rps_ratio"].as_f64().unwrap() > 0.0, "{report}");
}

#[test]
fn clicks_to_files_against_none() {
    let report = clicks(&["--measure", "file"]);
    assert_eq!(report["measure"], "file");
    assert_every_click_delivered(&report, "off", "file");
    assert!(
        runs(&report, "file")[0]
            .get("flusher_cpu_us_per_request")
            .is_none(),
        "only the analytics measure reports the flusher: {report}"
    );
}

#[test]
fn resident_gateways_report_each_runs_own_clicks() {
    let report = clicks(&[
        "--measure",
        "file",
        "--resident",
        "--rounds",
        "3",
        "--warmup",
        "200ms",
    ]);
    assert_eq!(report["resident"], true, "{report}");
    let (off, file) = (runs(&report, "off"), runs(&report, "file"));
    assert_eq!((off.len(), file.len()), (3, 3), "{report}");
    // One gateway per arm, warmed up once: its first run's events include
    // the warm-up's; each later run's are exactly what its own requests
    // made (a gateway per run would count a warm-up every time).
    for (i, r) in file.iter().enumerate() {
        let ok = r["load"]["ok"].as_u64().unwrap();
        let produced = r["events"]["produced"].as_u64().unwrap();
        assert!(ok > 0, "{report}");
        if i == 0 {
            assert!(produced > ok, "the warm-up's events: {report}");
        } else {
            assert_eq!(produced, ok, "{report}");
        }
        assert_eq!(
            r["events"]["delivered"].as_u64(),
            Some(produced),
            "{report}"
        );
    }
    for r in off {
        assert_eq!(r["events"]["produced"], 0, "{report}");
    }
    assert_eq!(report["round_ratios"].as_array().map(Vec::len), Some(3));
}

#[test]
fn analytics_against_clicks_with_the_store() {
    let report = clicks(&["--measure", "analytics"]);
    // Both arms write events to files; only the measured one counts rows.
    for name in ["clicks", "analytics"] {
        let r = runs(&report, name)[0];
        assert_eq!(
            r["events"]["delivered"], r["load"]["ok"],
            "{name}: {report}"
        );
    }
    assert_eq!(runs(&report, "clicks")[0]["events"]["analytics_rows"], 0);
    // The flusher's threads are measured in both arms (idle in the
    // baseline), in the runs and in the arms' medians.
    for name in ["clicks", "analytics"] {
        assert!(
            runs(&report, name)[0]["flusher_cpu_us_per_request"].as_f64() >= Some(0.0),
            "{name}: {report}"
        );
    }
    for arm in report["arms"].as_array().unwrap() {
        assert!(arm["median_flusher_cpu_us"].is_f64(), "{arm}");
    }
    assert!(
        runs(&report, "analytics")[0]["events"]["analytics_rows"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn clicks_to_jetstream_against_none() {
    let Some(nats) = nats_server() else {
        return;
    };
    let report = clicks(&["--measure", "nats", "--nats-server", nats.to_str().unwrap()]);
    assert_every_click_delivered(&report, "off", "nats");
    let w = runs(&report, "nats")[0];
    assert!(w["nats_cpu_us_per_request"].is_f64(), "{report}");
    assert!(runs(&report, "off")[0]
        .get("nats_cpu_us_per_request")
        .is_none());
}

/// `nats-server`; a missing one skips the test loudly, or fails
/// it when `TEST_REQUIRE` names `nats` (as CI does).
fn nats_server() -> Option<PathBuf> {
    let found = loadtest::clicks::find_nats_server();
    if found.is_none() {
        let required = std::env::var("TEST_REQUIRE").unwrap_or_default();
        assert!(
            !required.split(',').any(|r| r.trim() == "nats"),
            "TEST_REQUIRE names nats but there is no nats-server on PATH"
        );
        eprintln!(
            "\n*** SKIPPED clicks_to_jetstream_against_none: no nats-server \
             (apt-get install nats-server) ***\n"
        );
    }
    found
}
