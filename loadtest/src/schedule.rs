//! The open-loop schedule: with `--rate R` over `C` connections, request `k`
//! of the whole run is due at `k / R` seconds after the start, and
//! connection `c` owns the requests `k = c, c + C, c + 2C, …` (each
//! connection sends at `R / C` per second, like wrk2).
//!
//! Latency is measured from the due time, not from when the request could
//! finally be sent, so a stalled server is charged for every request that
//! should have gone out during the stall (coordinated omission corrected).
//! One refinement: when the connection was idle at the due time (its
//! previous answer had come back), the request is timed from the moment it
//! was actually written, because the only delay then is the client's own
//! timer resolution (about 1 ms in tokio), not the server.

use std::time::{Duration, Instant};

/// Offset from the start of the run of the `j`-th request of connection
/// `conn` out of `conns`, at `rate` requests per second overall.
pub fn intended_offset(rate: f64, conns: usize, conn: usize, j: u64) -> Duration {
    let k = conn as f64 + j as f64 * conns as f64;
    Duration::from_secs_f64(k / rate)
}

/// When to start the latency clock of a request due at `intended`, that
/// was written at `sent`, on a connection whose previous answer arrived at
/// `previous_done`.
pub fn latency_origin(intended: Instant, sent: Instant, previous_done: Instant) -> Instant {
    if previous_done <= intended {
        sent
    } else {
        intended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(intended_offset(1000.0, 4, 0, 0), Duration::ZERO);
        assert_eq!(intended_offset(1000.0, 4, 1, 0), Duration::from_millis(1));
        assert_eq!(intended_offset(1000.0, 4, 1, 2), Duration::from_millis(9));
    }
}
