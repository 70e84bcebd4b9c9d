//! Embedded `[[test]]` cases: run by `check` and before every reload, so a
//! rule change that breaks a promised redirect never goes live.

use crate::decision::Decision;
use crate::error::{RuleError, SourceMap};
use crate::format::TestDef;
use crate::options::LoadOptions;
use crate::request::Probe;
use crate::ruleset::RuleSet;
use crate::timestamp;

/// Runs every test; returns one error per failing test.
pub(crate) fn run(
    set: &RuleSet,
    map: &SourceMap,
    tests: &[(usize, TestDef)],
    opts: &LoadOptions,
) -> Vec<RuleError> {
    let mut errors = Vec::new();
    for (n, (offset, t)) in tests.iter().enumerate() {
        let label = match &t.name {
            Some(name) => format!("test `{name}`"),
            None => format!("test #{}", n + 1),
        };
        let rule = t.expect_rule.clone().unwrap_or_default();
        if let Err(msg) = run_one(set, t, opts) {
            errors.push(map.error(
                *offset,
                &rule,
                format!("{label} ({}): {msg}", t.url.get_ref()),
            ));
        }
    }
    errors
}

fn run_one(set: &RuleSet, t: &TestDef, opts: &LoadOptions) -> Result<(), String> {
    let now = match &t.at {
        Some(at) => timestamp::parse_value(at.get_ref()).map_err(|e| format!("at: {e}"))?,
        None => opts.now(),
    };
    let req = Probe {
        url: t.url.get_ref(),
        method: t.method.as_deref(),
        user_agent: t.user_agent.as_deref(),
        country: t.country.as_deref(),
        ip: t.ip.as_ref().map(|ip| ip.get_ref().as_str()),
        click_id: t.click_id.as_deref(),
    }
    .request(now)?;
    if t.expect_status.is_none()
        && t.expect_location.is_none()
        && t.expect_rule.is_none()
        && t.expect_upstream.is_none()
        && t.expect_path.is_none()
        && t.expect_body.is_none()
    {
        return Err("the test expects nothing: add expect_status, expect_location, expect_rule, expect_upstream, expect_path or expect_body".into());
    }
    let d = set.decide(&req);
    let got = describe(&d);
    let mut problems = Vec::new();
    if let Some(s) = t.expect_status {
        if d.status().map(i64::from) != Some(s) {
            problems.push(format!("expected status {s}, got {got}"));
        }
    }
    if let Some(loc) = &t.expect_location {
        match &d {
            Decision::Redirect(r) if r.location.as_bytes() == loc.as_bytes() => {}
            Decision::Redirect(r) => problems.push(format!(
                "expected location {loc}, got {}",
                String::from_utf8_lossy(r.location.as_bytes())
            )),
            _ => problems.push(format!("expected location {loc}, got {got}")),
        }
    }
    if let Some(rule) = &t.expect_rule {
        if d.rule() != Some(rule.as_str()) {
            problems.push(format!(
                "expected rule {rule}, got {}",
                d.rule().unwrap_or("no rule")
            ));
        }
    }
    if let Some(up) = &t.expect_upstream {
        match &d {
            Decision::Proxy(p) if p.upstream == up => {}
            _ => problems.push(format!("expected upstream {up}, got {got}")),
        }
    }
    if let Some(path) = &t.expect_path {
        match &d {
            Decision::Proxy(p) if p.path_and_query == *path => {}
            Decision::Proxy(p) => problems.push(format!(
                "expected upstream path {path}, got {}",
                p.path_and_query
            )),
            _ => problems.push(format!("expected upstream path {path}, got {got}")),
        }
    }
    if let Some(body) = &t.expect_body {
        match &d {
            Decision::Respond(r) if r.body == body.as_bytes() => {}
            _ => problems.push(format!("expected body {body:?}, got {got}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// A one-line account of a decision for failure messages.
fn describe(d: &Decision<'_>) -> String {
    match d {
        Decision::Redirect(r) => format!(
            "{} redirect to {} (rule {})",
            r.status,
            String::from_utf8_lossy(r.location.as_bytes()),
            r.rule
        ),
        Decision::Respond(r) => format!("{} response (rule {})", r.status, r.rule),
        Decision::Proxy(p) => format!(
            "proxy to {} {} (rule {})",
            p.upstream, p.path_and_query, p.rule
        ),
        Decision::Gone { rule, .. } => format!("410 gone (rule {rule})"),
        Decision::NotFound => "404 not found".into(),
        Decision::BadRequest { reason } => format!("400 bad request ({reason})"),
        // Embedded tests decide without a store.
        Decision::NeedsStore => "a store lookup".into(),
    }
}
