//! Registering a collector and keeping its handle: shared by the
//! gateway's metrics and the store's.

use prometheus::core::Collector;
use prometheus::Registry;

/// Registers `c` in `registry` and returns it for use.
pub fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> prometheus::Result<C> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}
