//! The open-loop schedule: intended send times and where latency is
//! measured from.

use loadtest::schedule::{intended_offset, latency_origin};
use std::time::{Duration, Instant};

#[test]
fn connections_interleave_into_one_even_schedule() {
    let (rate, conns) = (1000.0, 4);
    let mut all: Vec<Duration> = (0..conns)
        .flat_map(|c| (0..25u64).map(move |j| intended_offset(rate, conns, c, j)))
        .collect();
    all.sort();
    // Request k of the run is due at k / rate: 0, 1 ms, 2 ms, … 99 ms.
    for (k, t) in all.iter().enumerate() {
        let want = Duration::from_secs_f64(k as f64 / rate);
        assert!(t.abs_diff(want) < Duration::from_nanos(10), "{k}: {t:?}");
    }
}

#[test]
fn each_connection_sends_at_rate_over_connections() {
    let (rate, conns) = (500.0, 5);
    for c in 0..conns {
        for j in 0..10u64 {
            let gap = intended_offset(rate, conns, c, j + 1) - intended_offset(rate, conns, c, j);
            assert!(gap.abs_diff(Duration::from_millis(10)) < Duration::from_nanos(10));
        }
    }
}

#[test]
fn latency_is_measured_from_the_intended_time_when_behind() {
    let t0 = Instant::now();
    let intended = t0 + Duration::from_millis(10);
    let sent = t0 + Duration::from_millis(40);
    // The previous answer came back late (at 40 ms): the server held this
    // request back, so its wait counts.
    assert_eq!(
        latency_origin(intended, sent, t0 + Duration::from_millis(40)),
        intended
    );
    // The connection was idle at 10 ms: only the client's timer was late.
    let sent = t0 + Duration::from_millis(11);
    assert_eq!(
        latency_origin(intended, sent, t0 + Duration::from_millis(5)),
        sent
    );
}
