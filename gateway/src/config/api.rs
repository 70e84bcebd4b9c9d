//! `[api]`: the Links API's listener (docs/api.md).

use serde::Deserialize;
use std::time::Duration;

use super::duration;
use super::size;

/// `[api]` in the server configuration. Without the section there is no
/// Links API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// The API listener; loopback by default (`0.0.0.0:8081` in a
    /// container, behind whatever terminates TLS for it).
    pub listen: String,
    /// Largest request body (`413` above it).
    #[serde(with = "size")]
    pub max_body_bytes: u64,
    /// Longest a request may take (`408` after it).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Scheme of the `short_url` the API answers with.
    pub short_url_scheme: String,
    /// Most links one `POST /api/v1/links/bulk` may carry.
    pub max_bulk: usize,
    /// Length of generated codes (grows by one when a length gets crowded).
    pub code_length: usize,
    /// Threads of the API's own runtime (the redirect workers never run
    /// API work).
    pub threads: usize,
    /// Nice value of those threads (0 to 19): above 0, the redirect
    /// workers get the CPU first when it is short.
    pub nice: i32,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: "127.0.0.1:8081".into(),
            max_body_bytes: 1 << 20,
            timeout: Duration::from_secs(30),
            short_url_scheme: "https".into(),
            max_bulk: 1000,
            code_length: 7,
            threads: 1,
            nice: 10,
        }
    }
}

impl ApiSection {
    /// Checks what serde cannot.
    pub fn validate(&self, has_store: bool) -> anyhow::Result<()> {
        if !has_store {
            anyhow::bail!(
                "config: [api] needs a [store]: the Links API keeps its links and keys there"
            );
        }
        if !matches!(self.short_url_scheme.as_str(), "http" | "https") {
            anyhow::bail!("config: api.short_url_scheme must be http or https");
        }
        if !(1..=10_000).contains(&self.max_bulk) {
            anyhow::bail!("config: api.max_bulk must be between 1 and 10000");
        }
        if !(4..=32).contains(&self.code_length) {
            anyhow::bail!("config: api.code_length must be between 4 and 32");
        }
        if !(0..=19).contains(&self.nice) {
            anyhow::bail!("config: api.nice must be 0 to 19");
        }
        if self.threads == 0 {
            anyhow::bail!("config: api.threads must be at least 1");
        }
        Ok(())
    }
}
