//! Log setup: `tracing` with JSON or text lines on stderr. Pingora's own
//! `log` records are bridged into the same output.

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSection};

/// Pingora targets whose lines repeat one of ours, and the level they are
/// kept at: `pingora_load_balancing` warns and informs about every health
/// flip that `pools::HealthLog` already logs with the upstream's name.
/// (`pingora_proxy`'s duplicate errors are suppressed at the source, by
/// `Gateway::suppress_error_log`, so its other errors stay.)
const QUIETER: &[(&str, &str)] = &[("pingora_load_balancing", "error")];

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the
/// configured level.
pub fn init(cfg: &LogSection) -> Result<()> {
    let spec = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => f,
        _ => cfg.level.clone(),
    };
    let filter = filter(&spec).with_context(|| format!("invalid log level `{spec}`"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// The filter for `spec`, plus [`QUIETER`] for each target `spec` does not
/// name itself (an operator's own directive for it wins).
fn filter(spec: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut filter = EnvFilter::try_new(spec)?;
    // Only ever lowers: under `off` or `error` nothing is added.
    let verbose = filter
        .max_level_hint()
        .is_none_or(|l| l > tracing_subscriber::filter::LevelFilter::ERROR);
    for (target, level) in QUIETER {
        if verbose && !spec.contains(target) {
            filter = filter.add_directive(format!("{target}={level}").parse()?);
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn duplicate_targets_are_quieter_unless_named() {
        let f = filter("info").expect("valid").to_string();
        assert!(f.contains("pingora_load_balancing=error"), "{f}");
        let f = filter("info,pingora_load_balancing=info")
            .expect("valid")
            .to_string();
        assert!(!f.contains("pingora_load_balancing=error"), "{f}");
        let f = filter("off").expect("valid").to_string();
        assert!(!f.contains("pingora_load_balancing"), "{f}");
    }
}
