//! Prometheus-format metrics (`GET /metrics` on the policy's metrics address): requests by
//! class, side and outcome, latency histograms (the whole request, and what the router
//! itself added), upstream health, retries.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::upstream::SideName;

/// Histogram bucket bounds, seconds.
const BUCKETS: [f64; 16] = [
    0.000_025, 0.000_05, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 5.0,
];

/// A fixed-bucket histogram.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_ns: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (b, bound) in self.buckets.iter().zip(BUCKETS) {
            if s <= bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        for (b, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}le=\"{bound}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{{}}} {}",
            labels.trim_end_matches(','),
            self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "{name}_count{{{}}} {count}",
            labels.trim_end_matches(',')
        );
    }
}

/// Every metric.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<String, u64>>,
    refusals: Mutex<BTreeMap<String, u64>>,
    retries: [AtomicU64; 2],
    latency: [Histogram; 2],
    added: Histogram,
}

fn side_index(s: SideName) -> usize {
    match s {
        SideName::Onprem => 0,
        SideName::Cloud => 1,
    }
}

impl Metrics {
    /// Count a request (`labels`: its class/side/outcome key).
    pub fn request(&self, key: &str) {
        let mut m = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry(key.to_owned()).or_insert(0) += 1;
    }

    /// Count a refusal by its kind (a short fixed reason, never a value).
    pub fn refusal(&self, kind: &'static str) {
        let mut m = self
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry(kind.to_owned()).or_insert(0) += 1;
    }

    /// Count a retry on `side`.
    pub fn retry(&self, side: SideName) {
        self.retries[side_index(side)].fetch_add(1, Ordering::Relaxed);
    }

    /// A request served by `side` in `total`, of which the upstream took `upstream`.
    pub fn latency(&self, side: SideName, total: Duration, upstream: Duration) {
        self.latency[side_index(side)].observe(total);
        self.added.observe(total.saturating_sub(upstream));
    }

    /// The text exposition; `health` lists (side, upstream, healthy).
    pub fn render(&self, health: &[(SideName, String, bool)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP airlock_route_requests_total Requests by class, side and outcome.\n# TYPE airlock_route_requests_total counter\n");
        for (k, v) in self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let mut parts = k.splitn(3, '/');
            let (c, s, o) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            let _ = writeln!(
                out,
                "airlock_route_requests_total{{class=\"{c}\",side=\"{s}\",outcome=\"{o}\"}} {v}"
            );
        }
        out.push_str("# HELP airlock_route_refusals_total Requests the router refused, by reason.\n# TYPE airlock_route_refusals_total counter\n");
        for (k, v) in self
            .refusals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(out, "airlock_route_refusals_total{{reason=\"{k}\"}} {v}");
        }
        out.push_str("# HELP airlock_route_retries_total Retries on another member.\n# TYPE airlock_route_retries_total counter\n");
        for side in [SideName::Onprem, SideName::Cloud] {
            let _ = writeln!(
                out,
                "airlock_route_retries_total{{side=\"{}\"}} {}",
                side.name(),
                self.retries[side_index(side)].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP airlock_route_request_seconds Time from the request's body to its answer, by side.\n# TYPE airlock_route_request_seconds histogram\n");
        for side in [SideName::Onprem, SideName::Cloud] {
            self.latency[side_index(side)].write(
                &mut out,
                "airlock_route_request_seconds",
                &format!("side=\"{}\",", side.name()),
            );
        }
        out.push_str("# HELP airlock_route_added_seconds Time the router added: the request's time less the upstream's.\n# TYPE airlock_route_added_seconds histogram\n");
        self.added
            .write(&mut out, "airlock_route_added_seconds", "");
        out.push_str("# HELP airlock_route_upstream_healthy Whether an upstream is in service.\n# TYPE airlock_route_upstream_healthy gauge\n");
        for (side, label, up) in health {
            let _ = writeln!(
                out,
                "airlock_route_upstream_healthy{{side=\"{}\",upstream=\"{}\"}} {}",
                side.name(),
                label.replace(['"', '\\', '\n'], "_"),
                u8::from(*up)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.request("open/cloud/ok");
        m.request("open/cloud/ok");
        m.refusal("no-onprem-member");
        m.latency(
            SideName::Cloud,
            Duration::from_micros(800),
            Duration::from_micros(600),
        );
        let text = m.render(&[(SideName::Onprem, "http://127.0.0.1:1".into(), true)]);
        assert!(
            text.contains(
                "airlock_route_requests_total{class=\"open\",side=\"cloud\",outcome=\"ok\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("airlock_route_refusals_total{reason=\"no-onprem-member\"} 1"));
        assert!(
            text.contains("airlock_route_request_seconds_bucket{side=\"cloud\",le=\"0.001\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("airlock_route_request_seconds_bucket{side=\"cloud\",le=\"0.0005\"} 0")
        );
        assert!(
            text.contains("airlock_route_added_seconds_bucket{le=\"0.00025\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "airlock_route_upstream_healthy{side=\"onprem\",upstream=\"http://127.0.0.1:1\"} 1"
        ));
    }
}
