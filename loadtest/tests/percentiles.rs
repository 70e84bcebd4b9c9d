//! Percentiles against a known distribution.

use loadtest::load::new_histogram;
use loadtest::report::{curve, Latency};

fn close(got: f64, want: f64) {
    // HdrHistogram with 3 significant digits: within 0.1 % (plus rounding).
    assert!((got - want).abs() <= want * 0.002, "got {got}, want {want}");
}

#[test]
fn uniform_one_to_ten_thousand_microseconds() {
    let mut h = new_histogram();
    for us in 1..=10_000u64 {
        h.record(us * 1000).unwrap();
    }
    let l = Latency::from_histogram(&h);
    close(l.p50, 5000.0);
    close(l.p90, 9000.0);
    close(l.p99, 9900.0);
    close(l.p999, 9990.0);
    close(l.max, 10_000.0);
    close(l.mean, 5000.5);
}

#[test]
fn two_point_distribution() {
    // 99 % at 100 µs, 1 % at 50 ms: p50 and p90 see the fast mode, p99.9
    // and max the slow one.
    let mut h = new_histogram();
    h.record_n(100_000, 9_900).unwrap();
    h.record_n(50_000_000, 100).unwrap();
    let l = Latency::from_histogram(&h);
    close(l.p50, 100.0);
    close(l.p90, 100.0);
    close(l.p99, 100.0);
    close(l.p999, 50_000.0);
    close(l.max, 50_000.0);
}

#[test]
fn empty_histogram_is_zero() {
    assert_eq!(
        Latency::from_histogram(&new_histogram()),
        Latency::default()
    );
    assert!(curve(&new_histogram()).is_empty());
}

#[test]
fn curve_is_monotonic_and_ends_at_max() {
    let mut h = new_histogram();
    for us in 1..=1000u64 {
        h.record(us * 1000).unwrap();
    }
    let c = curve(&h);
    assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
    let last = c.last().unwrap();
    assert_eq!(last.0, 100.0);
    close(last.1, 1000.0);
}
