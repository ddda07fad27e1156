//! The load itself: closed and open loops over the workers, and the pacing thread.

use super::*;

/// Shared state of a run.
pub(crate) struct Plan {
    pub(crate) uri: Uri,
    pub(crate) authority: String,
    pub(crate) fixtures: Vec<Fixture>,
    pub(crate) sequence: Vec<usize>,
    /// Next request index (closed loop) or due slot (open loop).
    pub(crate) next: AtomicU64,
    pub(crate) measure_from: Instant,
    pub(crate) stop_at: Instant,
    pub(crate) limit: Option<u64>,
    /// Requests counted toward --requests.
    pub(crate) measured: AtomicU64,
    pub(crate) done: AtomicBool,
    /// `--new-connection`: where and how to connect for every request.
    pub(crate) reconnect: Option<(SocketAddr, TlsConnector, Protocol)>,
}

impl Plan {
    pub(crate) fn body(&self, index: u64) -> (usize, Bytes) {
        let f = self.sequence[(index % self.sequence.len() as u64) as usize];
        (f, self.fixtures[f].body.clone())
    }

    /// Counts a request that completed in the measured window; false once the limit is hit.
    pub(crate) fn count_measured(&self) -> bool {
        let n = self.measured.fetch_add(1, Ordering::Relaxed) + 1;
        if self.limit.is_some_and(|limit| n >= limit) {
            self.done.store(true, Ordering::Relaxed);
        }
        true
    }
}

pub(crate) async fn load(
    args: &Args,
    addr: SocketAddr,
    ca_pem: &[u8],
    fixtures: Vec<Fixture>,
    sequence: Vec<usize>,
) -> Result<Report> {
    if args.new_connection && args.rate.is_some() {
        bail!("--new-connection runs a closed loop only");
    }
    let connector = tls_connector(ca_pem, args.http, !args.no_resumption)?;
    let authority = match addr {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let uri: Uri = format!("https://{authority}{}", args.endpoint).parse()?;
    let mut senders = Vec::new();
    for _ in 0..args.connections {
        let sender = connect(addr, &connector, args.http)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        // HTTP/1.1 carries one request at a time; HTTP/2 `streams` at once.
        let workers = match args.http {
            Protocol::H1 => 1,
            Protocol::H2 => args.streams,
        };
        senders.extend(std::iter::repeat_n(sender, workers));
    }
    let fixture_names: Vec<String> = fixtures.iter().map(|f| f.name.clone()).collect();
    let nfixtures = fixtures.len();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(args.duration);
    let plan = Arc::new(Plan {
        uri,
        authority,
        fixtures,
        sequence,
        next: AtomicU64::new(0),
        measure_from,
        stop_at,
        limit: args.requests,
        measured: AtomicU64::new(0),
        done: AtomicBool::new(false),
        reconnect: args
            .new_connection
            .then(|| (addr, connector.clone(), args.http)),
    });

    // Open loop: a pacing thread sends due times; workers take them in order.
    let (slots, pacer) = match args.rate {
        Some(rate) => {
            let (tx, rx) = mpsc::unbounded_channel::<(u64, Instant)>();
            let plan = Arc::clone(&plan);
            let pacer = std::thread::spawn(move || pace(rate, start, &plan, tx));
            (Some(Arc::new(Mutex::new(rx))), Some(pacer))
        }
        None => (None, None),
    };

    let mut tasks = Vec::new();
    for sender in senders {
        let plan = Arc::clone(&plan);
        let slots = slots.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = WorkerStats {
                per_fixture: vec![0; nfixtures],
                ..WorkerStats::default()
            };
            match slots {
                None => closed_loop(&plan, &sender, &mut stats).await,
                Some(slots) => open_loop(&plan, &sender, &slots, &mut stats).await,
            }
            stats
        }));
    }
    // Bounded whatever happens: workers get the run's length plus 10 s to finish.
    let hard_stop = stop_at + Duration::from_secs(10);
    let mut report = Report {
        per_fixture: vec![0; nfixtures],
        fixture_names,
        ..Report::default()
    };
    for task in tasks {
        let left = hard_stop.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(stats)) => {
                report.latencies_ns.extend(stats.latencies_ns);
                report.service_ns.extend(stats.service_ns);
                report.errors += stats.errors;
                if report.error_sample.is_none() {
                    report.error_sample = stats.error_sample;
                }
                for (status, n) in stats.non_ok {
                    match report.statuses.iter_mut().find(|(s, _)| *s == status) {
                        Some((_, m)) => *m += n,
                        None => report.statuses.push((status, n)),
                    }
                }
                for (total, n) in report.per_fixture.iter_mut().zip(stats.per_fixture) {
                    *total += n;
                }
            }
            Ok(Err(e)) => bail!("a worker failed: {e}"),
            Err(_) => {
                plan.done.store(true, Ordering::Relaxed);
                report.errors += 1;
                report
                    .error_sample
                    .get_or_insert_with(|| "requests still in flight at the hard stop".into());
            }
        }
    }
    plan.done.store(true, Ordering::Relaxed);
    if let Some(pacer) = pacer {
        report.due = pacer.join().unwrap_or(0);
    }
    let ended = Instant::now().min(stop_at);
    report.measured = ended.saturating_duration_since(measure_from);
    Ok(report)
}

pub(crate) async fn closed_loop(plan: &Plan, sender: &Sender, stats: &mut WorkerStats) {
    while !plan.done.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if sent >= plan.stop_at {
            break;
        }
        let index = plan.next.fetch_add(1, Ordering::Relaxed);
        let (fixture, body) = plan.body(index);
        let result = match &plan.reconnect {
            None => sender.post(&plan.uri, &plan.authority, body).await,
            Some((addr, connector, protocol)) => match connect(*addr, connector, *protocol).await {
                Ok(fresh) => fresh.post(&plan.uri, &plan.authority, body).await,
                Err(e) => Err(e),
            },
        };
        if sent >= plan.measure_from && plan.count_measured() {
            stats.record(&result, sent.elapsed(), None, fixture);
        }
        if result.is_err() && plan.reconnect.is_none() && !sender_alive(sender) {
            break;
        }
    }
}

pub(crate) async fn open_loop(
    plan: &Plan,
    sender: &Sender,
    slots: &Mutex<mpsc::UnboundedReceiver<(u64, Instant)>>,
    stats: &mut WorkerStats,
) {
    loop {
        let Some((index, due)) = slots.lock().await.recv().await else {
            break;
        };
        let (fixture, body) = plan.body(index);
        let sent = Instant::now();
        let result = sender.post(&plan.uri, &plan.authority, body).await;
        // Latency from the due time: waiting for a free connection counts.
        if due >= plan.measure_from && plan.count_measured() {
            stats.record(&result, due.elapsed(), Some(sent.elapsed()), fixture);
        }
        if result.is_err() && !sender_alive(sender) {
            break;
        }
    }
}

pub(crate) fn sender_alive(sender: &Sender) -> bool {
    match sender {
        Sender::H1(s) => s.try_lock().map(|s| !s.is_closed()).unwrap_or(true),
        Sender::H2(s) => !s.is_closed(),
    }
}

/// The pacing thread: issues slot `i` at `start + i / rate` (sleeping in between, or at once
/// when behind) until the run ends. Returns how many slots fell due.
pub(crate) fn pace(
    rate: f64,
    start: Instant,
    plan: &Plan,
    tx: mpsc::UnboundedSender<(u64, Instant)>,
) -> u64 {
    // Linux lets a sleeping thread wake up to 50 µs late by default (timer slack), which
    // would add to every measured latency: ask for 1 ns.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut i: u64 = 0;
    loop {
        let due = start + interval.mul_f64(i as f64);
        if due >= plan.stop_at || plan.done.load(Ordering::Relaxed) {
            return i;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if tx.send((i, due)).is_err() {
            return i;
        }
        i += 1;
    }
}
