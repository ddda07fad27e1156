//! What a run measured: per-worker latencies, percentiles, the printed report.

use super::*;

/// What every worker measured, merged.
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) latencies_ns: Vec<u64>,
    /// Open loop only: from sending to the answer (without the wait for a free connection).
    pub(crate) service_ns: Vec<u64>,
    pub(crate) errors: u64,
    pub(crate) error_sample: Option<String>,
    pub(crate) statuses: Vec<(u16, u64)>,
    pub(crate) measured: Duration,
    pub(crate) per_fixture: Vec<u64>,
    pub(crate) fixture_names: Vec<String>,
    pub(crate) due: u64,
}

#[derive(Default)]
pub(crate) struct WorkerStats {
    pub(crate) latencies_ns: Vec<u64>,
    pub(crate) service_ns: Vec<u64>,
    pub(crate) errors: u64,
    pub(crate) error_sample: Option<String>,
    pub(crate) non_ok: Vec<(u16, u64)>,
    pub(crate) per_fixture: Vec<u64>,
}

impl WorkerStats {
    pub(crate) fn record(
        &mut self,
        result: &Result<u16>,
        latency: Duration,
        service: Option<Duration>,
        fixture: usize,
    ) {
        match result {
            Ok(200) => {
                self.latencies_ns.push(latency.as_nanos() as u64);
                if let Some(service) = service {
                    self.service_ns.push(service.as_nanos() as u64);
                }
                self.per_fixture[fixture] += 1;
            }
            Ok(status) => {
                self.errors += 1;
                match self.non_ok.iter_mut().find(|(s, _)| s == status) {
                    Some((_, n)) => *n += 1,
                    None => self.non_ok.push((*status, 1)),
                }
            }
            Err(e) => {
                self.errors += 1;
                self.error_sample.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank; the epsilon keeps 99.9% of 1000 at rank 999 despite float rounding.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    pub(crate) fn print(mut self, args: &Args, rss: Option<(u64, u64)>) {
        self.latencies_ns.sort_unstable();
        let ok = self.latencies_ns.len() as u64;
        let secs = self.measured.as_secs_f64().max(1e-9);
        let throughput = ok as f64 / secs;
        let us = |ns: u64| ns as f64 / 1000.0;
        let p = |q: f64| us(percentile(&self.latencies_ns, q));
        let mode = match args.rate {
            Some(rate) => format!("open loop at {rate} reviews/s (latency from due time)"),
            None if args.new_connection => format!(
                "closed loop, a new connection per request ({})",
                if args.no_resumption {
                    "full handshakes"
                } else {
                    "resumed handshakes"
                }
            ),
            None => "closed loop".to_owned(),
        };
        let protocol = match args.http {
            Protocol::H1 => "HTTP/1.1".to_owned(),
            Protocol::H2 => format!("HTTP/2 ({} streams each)", args.streams),
        };
        println!(
            "portier-load: {protocol} over TLS, {} connections, {mode}, {:.1} s measured after {:.1} s warm-up",
            args.connections, secs, args.warmup
        );
        let mix: Vec<String> = self
            .fixture_names
            .iter()
            .zip(&self.per_fixture)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        println!(
            "  answered: {ok} ok ({}), {} errors",
            mix.join(", "),
            self.errors
        );
        if !self.statuses.is_empty() {
            println!("  non-200 answers: {:?}", self.statuses);
        }
        if let Some(e) = &self.error_sample {
            println!("  first error: {e}");
        }
        println!("  throughput: {throughput:.0} reviews/s");
        if let Some(rate) = args.rate
            && throughput < rate * 0.97
        {
            println!(
                "  note: the server did not keep up with {rate} reviews/s (latency includes the backlog)"
            );
        }
        println!(
            "  latency µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}",
            p(50.0),
            p(90.0),
            p(99.0),
            p(99.9),
            us(self.latencies_ns.last().copied().unwrap_or(0))
        );
        self.service_ns.sort_unstable();
        let service = |q: f64| us(percentile(&self.service_ns, q));
        if !self.service_ns.is_empty() {
            // When these are much lower than the above, requests waited before being sent: for
            // a free connection, or for the load generator itself to get a CPU.
            println!(
                "  of which sent → answered µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}",
                service(50.0),
                service(90.0),
                service(99.0),
                service(99.9)
            );
        }
        match rss {
            Some((now, peak)) => println!(
                "  server RSS: {:.1} MB at the end, {:.1} MB peak",
                now as f64 / 1e6,
                peak as f64 / 1e6
            ),
            None => println!("  server RSS: unknown (pass --server-pid)"),
        }
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "protocol": match args.http { Protocol::H1 => "h1", Protocol::H2 => "h2" },
                    "connections": args.connections,
                    "streams": args.streams,
                    "rate": args.rate,
                    "seconds": secs,
                    "ok": ok,
                    "errors": self.errors,
                    "throughput": throughput,
                    "latency_us": {"p50": p(50.0), "p90": p(90.0), "p99": p(99.0), "p999": p(99.9),
                        "max": us(self.latencies_ns.last().copied().unwrap_or(0))},
                    "sent_to_answered_us": (!self.service_ns.is_empty()).then(|| serde_json::json!(
                        {"p50": service(50.0), "p90": service(90.0), "p99": service(99.0), "p999": service(99.9)})),
                    "rss_bytes": rss.map(|r| r.0),
                    "rss_peak_bytes": rss.map(|r| r.1),
                })
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn only_loopback_targets_are_accepted() {
        assert!(loopback_addr("https://127.0.0.1:8443").is_ok());
        assert!(loopback_addr("https://[::1]:8443").is_ok());
        assert!(loopback_addr("https://localhost:8443").is_ok());
        assert!(loopback_addr("https://10.0.0.1:8443").is_err());
        assert!(loopback_addr("https://example.com").is_err());
        assert!(loopback_addr("http://127.0.0.1:8443").is_err());
    }

    #[test]
    pub(crate) fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500);
        assert_eq!(percentile(&v, 99.0), 990);
        assert_eq!(percentile(&v, 99.9), 999);
        assert_eq!(percentile(&[], 99.0), 0);
    }
}
