//! A coordinator with 1,000 connected workers heartbeating at 1 Hz: the coordinator's CPU use and the
//! heartbeat round-trip latency percentiles.
//!
//! `cargo run --release -p coordinator --example heartbeat_bench [-- WORKERS SECONDS]`
//!
//! The coordinator runs on its own tokio runtime (threads named `coord-rt`); the workers are lightweight
//! in-process clients on another runtime, each with its own TCP connection, registration and heartbeat
//! stream, exactly the calls a real worker makes. CPU is read per thread from /proc, so only the
//! coordinator's threads are counted.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpc::pb;
use tokio_stream::wrappers::ReceiverStream;

fn coordinator_cpu_s(ticks_per_s: f64) -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("coord-rt") {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the ")" : state is field 3; utime and stime are fields 14 and 15.
        let rest: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        let utime: f64 = rest.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let stime: f64 = rest.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        total += (utime + stime) / ticks_per_s;
    }
    total
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn worker(url: String, i: usize, until: Instant, warmup_end: Instant, rtts: Arc<Mutex<Vec<f64>>>) {
    let security = rpc::net::Security { token: Some("bench".into()), tls: None };
    let channel = rpc::net::connect(&url, &security, Duration::from_secs(30)).await.expect("connect");
    let mut client = rpc::net::coordinator_client(channel, &security).expect("client");
    let reg = client
        .register(pb::RegisterRequest {
            name: format!("bench-{i}"),
            gpus: 1,
            backend: "emulate".into(),
            address: format!("http://127.0.0.1:{}", 1 + i),
            version: "bench".into(),
            previous_id: String::new(),
        })
        .await
        .expect("register")
        .into_inner();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut inbound = client.heartbeat(ReceiverStream::new(rx)).await.expect("heartbeat").into_inner();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut seq = 0;
    while Instant::now() < until {
        ticker.tick().await;
        seq += 1;
        let sent = Instant::now();
        tx.send(pb::HeartbeatRequest { worker_id: reg.worker_id.clone(), seq, progress: seq, busy: true })
            .await
            .expect("send");
        let ack = inbound.message().await.expect("ack").expect("stream open");
        assert_eq!(ack.seq, seq);
        if sent > warmup_end {
            rtts.lock().unwrap().push(sent.elapsed().as_secs_f64());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n_workers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
    let ticks_per_s = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);

    let coord_rt =
        tokio::runtime::Builder::new_multi_thread().thread_name("coord-rt").enable_all().build().unwrap();
    let client_rt =
        tokio::runtime::Builder::new_multi_thread().thread_name("client-rt").enable_all().build().unwrap();
    let config = coordinator::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: None,
        nnodes: n_workers as u32,
        rdzv_timeout: Duration::from_secs(3600),
        heartbeat: coordinator::HeartbeatPolicy { interval: Duration::from_secs(1), misses: 3 },
        step_timeout: Duration::from_secs(60),
        hang_timeout: None,
        max_restarts: 0,
        record_ops: false,
        checkpoint_dir: std::env::temp_dir().join(format!("choir-heartbeat-bench-{}", std::process::id())),
        linger: false,
        security: rpc::net::Security { token: Some("bench".into()), tls: None },
        log: Arc::new(|_: &str| {}),
        self_kill: None,
    };
    let bound = coord_rt.block_on(coordinator::bind(config)).unwrap();
    let url = format!("http://{}", bound.grpc_addr);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server =
        coord_rt.spawn(bound.serve(None, None, Arc::new(coordinator::MemoryStore::default()), async {
            let _ = stop_rx.await;
        }));

    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let warmup_end = start + Duration::from_secs(5);
    let rtts = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..n_workers)
        .map(|i| {
            let (url, rtts) = (url.clone(), rtts.clone());
            client_rt.spawn(async move {
                // Spread the workers' phases over the first second, as independent machines would be.
                tokio::time::sleep(Duration::from_micros((i as u64 * 1_000_000) / n_workers as u64)).await;
                worker(url, i, until, warmup_end, rtts).await;
            })
        })
        .collect();
    // Measure CPU over the steady-state window only.
    std::thread::sleep(warmup_end.saturating_duration_since(Instant::now()));
    let cpu0 = coordinator_cpu_s(ticks_per_s);
    let t0 = Instant::now();
    let (job, workers) = client_rt
        .block_on(coordinator::client::status(
            &url,
            &rpc::net::Security { token: Some("bench".into()), tls: None },
        ))
        .unwrap();
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    let cpu = coordinator_cpu_s(ticks_per_s) - cpu0;
    let window_s = t0.elapsed().as_secs_f64();
    client_rt.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    let _ = stop_tx.send(());
    let _ = coord_rt.block_on(server);

    let mut v = rtts.lock().unwrap().clone();
    v.sort_by(f64::total_cmp);
    let alive = workers.iter().filter(|w| w.alive).count();
    println!(
        "heartbeat_bench: {n_workers} workers, 1 Hz, {seconds} s ({window_s:.1} s measured after 5 s warm-up)"
    );
    println!("  registered / alive     {} / {alive}   (job state: {})", workers.len(), job.state.name());
    println!("  heartbeats measured    {} ({:.0}/s)", v.len(), v.len() as f64 / (seconds as f64 - 5.0));
    println!(
        "  coordinator CPU        {:.2} % of one core ({cpu:.2} CPU-s over {window_s:.1} s)",
        100.0 * cpu / window_s
    );
    println!(
        "  round-trip latency     p50 {:.3} ms   p90 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
        percentile(&v, 0.5) * 1e3,
        percentile(&v, 0.9) * 1e3,
        percentile(&v, 0.99) * 1e3,
        v.last().copied().unwrap_or(f64::NAN) * 1e3
    );
}
