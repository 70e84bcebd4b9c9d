//! The `reload` scenario's rule flipper: replaces the gateway's rules
//! through the admin API (`PUT /admin/rules`) every `every`, alternating
//! between the original rules and a variant with one extra redirect, so
//! every flip is a real rebuild (the content hash changes each time).

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::client::{self, build_request};

/// Most flips one run makes, whatever the duration.
pub const MAX_FLIPS: u64 = 10_000;
/// Time one `PUT /admin/rules` may take (a million links rebuild in about a
/// second or two).
pub const PUT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the flips did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlipStats {
    /// Flips answered 200.
    pub ok: u64,
    /// Flips answered otherwise, or not at all.
    pub failed: u64,
    /// Mean time of a `PUT`, in milliseconds.
    pub mean_ms: f64,
    /// Longest `PUT`, in milliseconds.
    pub max_ms: f64,
    /// The first failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// The rules with one extra redirect, on a path no scenario asks for.
pub fn variant(original: &str) -> String {
    format!(
        "{original}\n# added by loadtest reload (flip)\n[[redirect]]\nid = \"loadtest-flip\"\npath = \"/__loadtest/flip\"\nto = \"https://example.com/flip\"\n"
    )
}

/// One `PUT /admin/rules` with `text`.
pub async fn put_rules(admin: SocketAddr, token: &str, text: &str) -> Result<()> {
    let auth = format!("Bearer {token}");
    let req = build_request(
        "PUT",
        "/admin/rules",
        "admin",
        &[("Authorization", &auth), ("Connection", "close")],
        text.as_bytes(),
    );
    let answer = client::oneshot(admin, &req, PUT_TIMEOUT)
        .await
        .map_err(|f| anyhow::anyhow!("PUT /admin/rules: {}", f.detail))?;
    if answer.status != 200 {
        bail!(
            "PUT /admin/rules answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body).trim()
        );
    }
    Ok(())
}

/// Flips the rules every `every` until `deadline`, then puts the original
/// back.
pub async fn flip_until(
    admin: SocketAddr,
    token: &str,
    original: &str,
    every: Duration,
    deadline: Instant,
) -> FlipStats {
    let texts = [variant(original), original.to_string()];
    let mut stats = FlipStats::default();
    let mut total = Duration::ZERO;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut n = 0u64;
    while n < MAX_FLIPS {
        ticker.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        let result = put_rules(admin, token, &texts[(n % 2) as usize]).await;
        let took = t.elapsed();
        n += 1;
        total += took;
        stats.max_ms = stats.max_ms.max(took.as_secs_f64() * 1000.0);
        match result {
            Ok(()) => stats.ok += 1,
            Err(e) => {
                stats.failed += 1;
                stats.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    if n > 0 {
        stats.mean_ms = total.as_secs_f64() * 1000.0 / n as f64;
    }
    if n % 2 == 1 {
        if let Err(e) = put_rules(admin, token, original).await {
            stats
                .first_error
                .get_or_insert_with(|| format!("restoring: {e:#}"));
        }
    }
    stats
}

/// Checks the admin API is reachable with `token` before a run.
pub async fn check_admin(admin: SocketAddr, token: &str) -> Result<()> {
    let auth = format!("Bearer {token}");
    let req = build_request(
        "GET",
        "/admin/rules",
        "admin",
        &[("Authorization", &auth), ("Connection", "close")],
        b"",
    );
    let a = client::oneshot(admin, &req, Duration::from_secs(5))
        .await
        .map_err(|f| anyhow::anyhow!("{}", f.detail))
        .with_context(|| format!("admin API at {admin}"))?;
    if a.status != 200 {
        bail!(
            "admin API at {admin} answered {} to GET /admin/rules (token?)",
            a.status
        );
    }
    Ok(())
}
