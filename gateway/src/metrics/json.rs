//! The metrics as JSON, for the console: the same families and series as
//! `/metrics`, so a page can compute rates and quantiles from two reads
//! without parsing the Prometheus text format.

use prometheus::proto::{MetricFamily, MetricType};
use serde_json::{json, Map, Value};

use super::Metrics;

/// One family's series.
fn series(family: &MetricFamily) -> (&'static str, Vec<Value>) {
    let kind = match family.get_field_type() {
        MetricType::COUNTER => "counter",
        MetricType::GAUGE => "gauge",
        MetricType::HISTOGRAM => "histogram",
        MetricType::SUMMARY => "summary",
        MetricType::UNTYPED => "untyped",
    };
    let out = family
        .get_metric()
        .iter()
        .map(|m| {
            let labels: Map<String, Value> = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), Value::from(l.value())))
                .collect();
            match family.get_field_type() {
                MetricType::COUNTER => {
                    json!({"labels": labels, "value": m.get_counter().get_value()})
                }
                MetricType::GAUGE => json!({"labels": labels, "value": m.get_gauge().get_value()}),
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut buckets: Vec<Value> = h
                        .get_bucket()
                        .iter()
                        .map(|b| json!([b.upper_bound(), b.cumulative_count()]))
                        .collect();
                    buckets.push(json!(["+Inf", h.get_sample_count()]));
                    json!({
                        "labels": labels,
                        "count": h.get_sample_count(),
                        "sum": h.get_sample_sum(),
                        "buckets": buckets,
                    })
                }
                // The gateway registers neither.
                MetricType::SUMMARY | MetricType::UNTYPED => json!({"labels": labels}),
            }
        })
        .collect();
    (kind, out)
}

impl Metrics {
    /// Every family as `{"at_ms", "families": {name: {type, series}}}`;
    /// histogram buckets are cumulative, as in Prometheus, ending with
    /// `"+Inf"`.
    pub fn to_json(&self) -> Value {
        let families: Map<String, Value> = self
            .registry
            .gather()
            .iter()
            .map(|f| {
                let (kind, series) = series(f);
                (
                    f.name().to_string(),
                    json!({"type": kind, "series": series}),
                )
            })
            .collect();
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        json!({"at_ms": at_ms, "families": families})
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_gauges_and_histograms_come_out_with_their_labels() {
        let m = super::Metrics::new().unwrap();
        let v = m.to_json();
        let families = v["families"].as_object().unwrap();
        let build = &families["gateway_build_info"];
        assert_eq!(build["type"], "gauge");
        assert_eq!(build["series"][0]["value"], 1.0);
        assert!(build["series"][0]["labels"]["version"].is_string());
        assert!(v["at_ms"].as_u64().unwrap() > 0);
    }
}
