//! Remote rules source for fleets: poll a URL (any static server, S3) with
//! `If-None-Match`, validate what comes back, keep it in the local rules
//! file and make it live. A failed or invalid fetch keeps the live rules;
//! the next poll tries again.

use std::sync::Arc;
use std::time::Duration;

use super::reload::{Outcome, Reloader};
use super::snapshot::Trigger;

/// Largest rules document accepted from the remote source.
const MAX_BODY: u64 = 256 << 20;

/// What one poll found.
#[derive(Debug, PartialEq, Eq)]
enum Fetched {
    /// 304: same as last time.
    NotModified,
    /// A new body and its ETag.
    Body(String, Option<String>),
}

fn fetch(agent: &ureq::Agent, url: &str, etag: Option<&str>) -> Result<Fetched, String> {
    let mut req = agent.get(url).header("User-Agent", "gateway-rules-poller");
    if let Some(tag) = etag {
        req = req.header("If-None-Match", tag);
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    match resp.status().as_u16() {
        304 => Ok(Fetched::NotModified),
        200 => {
            let tag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp
                .body_mut()
                .with_config()
                .limit(MAX_BODY)
                .read_to_string()
                .map_err(|e| e.to_string())?;
            Ok(Fetched::Body(body, tag))
        }
        other => Err(format!("answered {other}")),
    }
}

/// Polls `url` every `interval` until `shutdown` fires.
pub async fn run(
    reloader: Arc<Reloader>,
    url: String,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build();
    let agent: ureq::Agent = config.into();
    let mut etag: Option<String> = None;
    loop {
        let (a, u, t) = (agent.clone(), url.clone(), etag.clone());
        let result = tokio::task::spawn_blocking(move || fetch(&a, &u, t.as_deref())).await;
        match result {
            Ok(Ok(Fetched::NotModified)) => {
                tracing::debug!(url = %url, "remote rules not modified")
            }
            Ok(Ok(Fetched::Body(text, tag))) => {
                let outcome = reloader
                    .apply(Some(text), Trigger::Remote, url.clone(), true, false)
                    .await;
                // Remember the ETag even when the rules were refused: the same
                // broken document is not validated again on every poll.
                etag = tag;
                if !matches!(outcome, Outcome::Applied(_) | Outcome::Unchanged(_)) {
                    tracing::warn!(url = %url, "remote rules refused; waiting for a new version");
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(url = %url, error = %e, "cannot fetch remote rules; retrying at the next poll")
            }
            Err(e) => tracing::error!(error = %e, "remote poll task failed"),
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
