//! `ward-rtc-bench`: load for Ward's SFU, measured from outside the server.
//!
//! It starts `ward serve` (release build, fresh data directory, its own API secret, the media
//! socket on a free UDP port) as a separate process, so that the server's CPU time can be read
//! from `/proc/<pid>/stat`, and then runs scenarios against it with LiveKit-signalling clients
//! built on str0m over real WebSockets and real UDP on 127.0.0.1, all in this process:
//!
//! * `--fanout N`: one publisher, N subscribers;
//! * `--mesh N`: N participants that each publish one video and receive the other N − 1.
//!
//! For each scenario it waits until every subscriber receives every stream, lets it run for a
//! warm-up period, then measures for `--duration-s`: packets delivered through the SFU per
//! second, the server's CPU (cores used = CPU seconds / wall seconds), packets per second per
//! core, loss (packets sent in the window that never arrived), and the time from a packet
//! leaving its publisher to its arrival at a subscriber (p50/p99/max). It also prints its own
//! CPU: on a small machine the load generator competes with the server for the same cores.
//!
//! Decrypting every copy costs the load generator about as much as forwarding it costs the
//! server, so on a small machine the server never gets near a full core. `--full-subscribers K`
//! keeps K subscribers real (decrypting, NACKing, reporting, timing) and lets the others count
//! RTP by its clear header instead ([`client::Receiving::Counting`]): the server can then be
//! driven to the load at which per-core figures such as LiveKit's are taken.

mod client;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use tokio::sync::watch;
use ward_rtc::{ApiKeys, MintRequest};

use crate::client::{Receiving, Report, Shared, Spec};

#[derive(Parser, Debug)]
#[command(name = "ward-rtc-bench", about = "Load Ward's SFU with LiveKit-signalling clients and measure it")]
struct Args {
    /// The `ward` binary to start (default: `ward` next to this program).
    #[arg(long)]
    ward: Option<PathBuf>,
    /// Use a server that is already running instead (its HTTP base URL, e.g.
    /// http://127.0.0.1:8008); needs --pid and --api-secret.
    #[arg(long, requires_all = ["pid", "api_secret"])]
    url: Option<String>,
    /// The running server's process ID (with --url).
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value = "ward-bench")]
    api_key: String,
    /// The running server's rtc_api_secret (with --url).
    #[arg(long)]
    api_secret: Option<String>,
    /// Scenario: 1 publisher → N subscribers (repeatable).
    #[arg(long)]
    fanout: Vec<usize>,
    /// Scenario: N participants, each publishing one video to the others (repeatable).
    #[arg(long)]
    mesh: Vec<usize>,
    /// Video bitrate per published stream (keyframes every 2 s are 3× a normal frame on top).
    #[arg(long, default_value_t = 2_000)]
    bitrate_kbps: u64,
    /// Largest RTP payload; frames are split into packets of at most this size.
    #[arg(long, default_value_t = 1_200)]
    packet_bytes: usize,
    /// Publishers pace their packets at this many times the stream's bitrate, as browsers do
    /// (libwebrtc's pacing factor is 2.5), so a frame's packets are spread out instead of
    /// leaving in one burst; 0 sends each frame as one burst.
    #[arg(long, default_value_t = 2.5)]
    pacing_factor: f64,
    /// Seconds of media before measuring.
    #[arg(long, default_value_t = 3)]
    warmup_s: u64,
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Worker threads of this program's runtime (the load generator).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Pin the server to CPU 0 and this program to the other CPUs (`taskset`).
    #[arg(long)]
    pin: bool,
    /// Only the first K subscribers of each scenario decrypt, repair (NACK) and time what they
    /// receive; the others count RTP by its clear header without decrypting it and send the
    /// server no feedback. Latency comes from the K, loss and throughput from all. Default:
    /// every subscriber decrypts.
    #[arg(long)]
    full_subscribers: Option<usize>,
}

/// The server under test: a child process or one that already runs.
struct Server {
    http: SocketAddr,
    metrics: Option<SocketAddr>,
    pid: u32,
    keys: ApiKeys,
    child: Option<Child>,
    _data: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start_server(args: &Args) -> Result<Server, String> {
    if let Some(url) = &args.url {
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let http = host.parse().map_err(|e| format!("--url must be http://IP:PORT: {e}"))?;
        return Ok(Server {
            http,
            metrics: None,
            pid: args.pid.expect("required by clap"),
            keys: ApiKeys {
                key: args.api_key.clone(),
                secret: args.api_secret.clone().expect("required by clap"),
            },
            child: None,
            _data: None,
        });
    }
    let ward = match &args.ward {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("ward"),
    };
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let keys = ApiKeys { key: args.api_key.clone(), secret: "ward-rtc-bench-secret-0123456789abcdef".into() };
    let mut cmd = if args.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&ward);
        c
    } else {
        Command::new(&ward)
    };
    cmd.arg("serve")
        .env("WARD_LISTEN", http.to_string())
        .env("WARD_METRICS_LISTEN", metrics.to_string())
        .env("WARD_DATA_DIR", data.path().join("data"))
        .env("WARD_LOG_LEVEL", std::env::var("WARD_LOG_LEVEL").unwrap_or_else(|_| "warn".into()))
        .env("WARD_RTC_API_KEY", &keys.key)
        .env("WARD_RTC_API_SECRET", &keys.secret)
        .env("WARD_RTC_UDP_BIND", "127.0.0.1")
        .env("WARD_RTC_UDP_PORT", "0")
        .env("WARD_RTC_MAX_PARTICIPANTS_PER_ROOM", "1000")
        .env("WARD_RTC_MAX_PARTICIPANTS", "10000")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", ward.display()))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{} serve exited early: {status}", ward.display()));
        }
        if TcpStream::connect(http).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("ward serve did not come up within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server { http, metrics: Some(metrics), pid, keys, child: Some(child), _data: Some(data) })
}

/// A process's resident memory in MiB (`VmRSS` in /proc/<pid>/status).
fn rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A process's CPU time (user + system) in seconds.
fn cpu_seconds(pid: &str, tick: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / tick)
}

fn clock_tick() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The server's counters read around the window: its forwarded packets (a cross-check of what
/// the clients counted) and what explains a bad run.
const COUNTERS: [&str; 4] = [
    "ward_rtc_packets_forwarded_total",
    "ward_rtc_packets_received_total",
    "ward_rtc_nacks_received_total",
    "ward_rtc_keyframe_requests_total",
];

/// The server's metrics page.
fn scrape(metrics: Option<SocketAddr>) -> Option<String> {
    let mut s = TcpStream::connect(metrics?).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// [`COUNTERS`] from the metrics page (the server refreshes them once a second).
fn server_counters(body: Option<&str>) -> Option<[f64; 4]> {
    let body = body?;
    let value = |name: &str| {
        body.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
    };
    Some([value(COUNTERS[0])?, value(COUNTERS[1])?, value(COUNTERS[2])?, value(COUNTERS[3])?])
}

/// The server's forwarding-delay histogram: (upper bound in seconds, cumulative count), ending
/// with `+Inf`.
fn forward_delay_buckets(body: Option<&str>) -> Option<Vec<(f64, f64)>> {
    let prefix = format!("{}_bucket{{le=\"", ward_rtc::runtime::FORWARD_DELAY_METRIC);
    let buckets: Vec<(f64, f64)> = body?
        .lines()
        .filter_map(|l| {
            let (le, rest) = l.strip_prefix(&prefix)?.split_once("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, rest.trim().parse().ok()?))
        })
        .collect();
    (!buckets.is_empty()).then_some(buckets)
}

/// The `q`-quantile (0–1) of what was observed between two readings of a histogram, in
/// milliseconds, interpolated within its bucket as Prometheus' `histogram_quantile` does.
fn histogram_quantile_ms(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| (*le, n - before.iter().find(|b| b.0 == *le).map_or(0.0, |b| b.1)))
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, cumulative) in counts {
        if cumulative >= rank {
            if le.is_infinite() {
                return Some(lower.0 * 1000.0);
            }
            let share = if cumulative > lower.1 { (rank - lower.1) / (cumulative - lower.1) } else { 1.0 };
            return Some((lower.0 + (le - lower.0) * share) * 1000.0);
        }
        lower = (le, cumulative);
    }
    None
}

/// Datagrams the kernel dropped because a UDP socket's receive buffer was full, machine-wide
/// (`RcvbufErrors` in /proc/net/snmp): the server's socket, the clients', or anyone's.
fn udp_receive_buffer_errors() -> Option<f64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fanout,
    Mesh,
}

struct Row {
    kind: Kind,
    n: usize,
    streams: usize,
    /// Subscribers that decrypted (and timed) what they received, of all subscribers.
    decrypting_subscribers: usize,
    subscribers: usize,
    window_s: f64,
    delivered_pps: f64,
    counter_pps: Option<f64>,
    /// Per second in the window: packets the server received, NACKs it received, keyframe
    /// requests it sent to publishers.
    received_pps: Option<f64>,
    nacks_ps: Option<f64>,
    keyframe_requests_ps: Option<f64>,
    /// Machine-wide receive-buffer drops in the window.
    rcvbuf_errors: Option<f64>,
    /// The server's resident memory at the window's end.
    sfu_rss_mib: Option<f64>,
    sfu_cores: f64,
    bench_cores: f64,
    loss: f64,
    duplicates: u64,
    send_drops: u64,
    /// The server's own forwarding delay (datagram read → copy sent), p50 and p99.
    server_delay_ms: Option<(f64, f64)>,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

async fn scenario(args: &Args, server: &Server, kind: Kind, n: usize, run: usize) -> Result<Row, String> {
    let shared = Arc::new(Shared::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let room = format!("bench-{run}-{}-{n}", if kind == Kind::Fanout { "fanout" } else { "mesh" });
    // Fanout: subscribers 1..=n first, the publisher (0) last; mesh: everyone publishes.
    let (clients, publishers, subs_per_publisher) = match kind {
        Kind::Fanout => (n + 1, 1, n),
        Kind::Mesh => (n, n, n.saturating_sub(1)),
    };
    let expected_pairs = publishers * subs_per_publisher;
    let mut handles = Vec::new();
    // The numbers of the clients whose subscriber connections decrypt (the first to join;
    // never the fanout's publisher, which subscribes to nothing).
    let mut decrypting: Vec<u32> = Vec::new();
    for i in 0..clients {
        let number = match kind {
            Kind::Fanout => ((i + 1) % clients) as u32,
            Kind::Mesh => i as u32,
        };
        let publish = kind == Kind::Mesh || number == 0;
        let subscribes = kind == Kind::Mesh || number != 0;
        let receiving = if !subscribes || args.full_subscribers.is_none_or(|k| i < k) {
            Receiving::Decrypting
        } else {
            Receiving::Counting
        };
        if subscribes && receiving == Receiving::Decrypting {
            decrypting.push(number);
        }
        let token = ward_rtc::mint(
            &server.keys,
            &MintRequest {
                identity: format!("p{number}"),
                name: format!("Participant {number}"),
                metadata: String::new(),
                room: room.clone(),
                can_publish: true,
                can_subscribe: true,
                can_publish_data: true,
                can_publish_sources: Vec::new(),
                hidden: false,
                can_update_own_metadata: false,
                ttl: Duration::from_secs(3600),
            },
            SystemTime::now(),
        )
        .map_err(|e| e.to_string())?;
        let spec = Spec {
            number,
            url: format!(
                "ws://{}/rtc?access_token={token}&auto_subscribe=1&sdk=rust&protocol=17",
                server.http
            ),
            publish,
            bitrate_bps: args.bitrate_kbps * 1000,
            packet_bytes: args.packet_bytes,
            pacing_factor: args.pacing_factor,
            receiving,
        };
        handles.push(tokio::spawn(client::run(spec, shared.clone(), stop_rx.clone())));
        // Joins are cheap, but a burst of DTLS handshakes on two cores is not.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let setup_deadline = Instant::now() + Duration::from_secs(30 + clients as u64 / 2);
    while shared.flowing.load(Ordering::SeqCst) < expected_pairs {
        if let Some(h) = handles.iter_mut().find(|h| h.is_finished()) {
            let r = h.await.map_err(|e| e.to_string())?;
            return Err(r.err().unwrap_or_else(|| "a client stopped early".into()));
        }
        if Instant::now() > setup_deadline {
            let _ = stop_tx.send(true);
            // Everyone receives every publisher but itself; name those who did not.
            let progress = shared.progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let short: Vec<String> = (0..clients as u32)
                .filter_map(|number| {
                    let publishes = kind == Kind::Mesh || number == 0;
                    let expected = publishers - usize::from(publishes);
                    let (sid, got) = progress.get(&number).cloned().unwrap_or_default();
                    (got < expected).then(|| format!("client {number} ({sid}): {got} of {expected}"))
                })
                .collect();
            return Err(format!(
                "only {} of {expected_pairs} streams reached their subscribers; short: {}",
                shared.flowing.load(Ordering::SeqCst),
                short.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_s)).await;

    let tick = clock_tick();
    let sfu_pid = server.pid.to_string();
    let page0 = scrape(server.metrics);
    let counters0 = server_counters(page0.as_deref());
    let delay0 = forward_delay_buckets(page0.as_deref());
    let rcvbuf0 = udp_receive_buffer_errors();
    let t0 = Instant::now();
    let (sfu0, own0) = (cpu_seconds(&sfu_pid, tick), cpu_seconds("self", tick));
    shared.start_window(t0);
    tokio::time::sleep(Duration::from_secs(args.duration_s)).await;
    let t1 = Instant::now();
    shared.end_window(t1);
    let (sfu1, own1) = (cpu_seconds(&sfu_pid, tick), cpu_seconds("self", tick));
    let sfu_rss_mib = rss_mib(&sfu_pid);
    // The server folds delays into its histogram at least every 5 s, and on every scrape.
    let page1 = scrape(server.metrics);
    let counters1 = server_counters(page1.as_deref());
    let delay1 = forward_delay_buckets(page1.as_deref());
    let rcvbuf1 = udp_receive_buffer_errors();
    let window_s = (t1 - t0).as_secs_f64();
    // Late packets and retransmissions of packets sent in the window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let mut reports: Vec<(u32, Report)> = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        let number = match kind {
            Kind::Fanout => ((i + 1) % clients) as u32,
            Kind::Mesh => i as u32,
        };
        reports.push((number, h.await.map_err(|e| e.to_string())??));
    }
    // Let the server forget the room before the next scenario.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Decrypting subscribers expect every packet their publishers sent in the window; counting
    // ones, every sequence number between the first and last that arrived in it.
    let mut expected: u64 = reports
        .iter()
        .map(|(number, r)| r.sent * decrypting.iter().filter(|d| *d != number).count() as u64)
        .sum();
    let mut unique = 0u64;
    let mut total = 0u64;
    let mut latency: Vec<u32> = Vec::new();
    let mut send_drops = 0;
    for (_, r) in &mut reports {
        send_drops += r.send_drops;
        for counters in r.received.values_mut() {
            total += counters.len() as u64;
            counters.sort_unstable();
            counters.dedup();
            unique += counters.len() as u64;
        }
        for seqs in r.counted.values_mut() {
            total += seqs.len() as u64;
            seqs.sort_unstable();
            seqs.dedup();
            unique += seqs.len() as u64;
            if let (Some(first), Some(last)) = (seqs.first(), seqs.last()) {
                expected += last - first + 1;
            }
        }
        latency.append(&mut r.latency_us);
    }
    latency.sort_unstable();
    let delta = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (b - a).max(0.0));
    let rate = |i: usize| delta(counters0.map(|c| c[i]), counters1.map(|c| c[i])).map(|d| d / window_s);
    Ok(Row {
        kind,
        n,
        streams: expected_pairs,
        decrypting_subscribers: decrypting.len(),
        subscribers: if kind == Kind::Fanout { n } else { clients },
        window_s,
        delivered_pps: unique as f64 / window_s,
        counter_pps: rate(0),
        received_pps: rate(1),
        nacks_ps: rate(2),
        keyframe_requests_ps: rate(3),
        rcvbuf_errors: delta(rcvbuf0, rcvbuf1),
        sfu_rss_mib,
        sfu_cores: delta(sfu0, sfu1).unwrap_or(f64::NAN) / window_s,
        bench_cores: delta(own0, own1).unwrap_or(f64::NAN) / window_s,
        loss: if expected == 0 { f64::NAN } else { 1.0 - unique as f64 / expected as f64 },
        duplicates: total - unique,
        send_drops,
        server_delay_ms: delay0.zip(delay1).map(|(a, b)| {
            (
                histogram_quantile_ms(&a, &b, 0.5).unwrap_or(f64::NAN),
                histogram_quantile_ms(&a, &b, 0.99).unwrap_or(f64::NAN),
            )
        }),
        p50_ms: percentile(&latency, 50.0),
        p99_ms: percentile(&latency, 99.0),
        max_ms: latency.last().map_or(f64::NAN, |l| f64::from(*l) / 1000.0),
    })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l.to_owned()))
        .and_then(|l| l.split_once(':').map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs ({model}), load average {}", load.join(" "))
}

fn print_table(rows: &[Row], header: bool) {
    if header {
        print_header();
    }
    for r in rows {
        print_row(r);
    }
}

fn print_header() {
    println!(
        "{:<8} {:>4} {:>7} {:>11} {:>9} {:>12} {:>11} {:>7} {:>8} {:>8} {:>8} {:>11}",
        "scenario",
        "N",
        "streams",
        "fwd pkt/s",
        "SFU cores",
        "pkt/s/core",
        "bench cores",
        "loss %",
        "p50 ms",
        "p99 ms",
        "max ms",
        "SFU ctr/s"
    );
}

fn print_row(r: &Row) {
    println!(
        "{:<8} {:>4} {:>7} {:>11.0} {:>9.3} {:>12.0} {:>11.3} {:>7.3} {:>8.3} {:>8.3} {:>8.1} {:>11}",
        if r.kind == Kind::Fanout { "fanout" } else { "mesh" },
        r.n,
        r.streams,
        r.delivered_pps,
        r.sfu_cores,
        r.delivered_pps / r.sfu_cores,
        r.bench_cores,
        r.loss * 100.0,
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.counter_pps.map_or("-".into(), |c| format!("{c:.0}")),
    );
    let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    println!(
        "         (server: received {} pkt/s, NACKs in {}/s, keyframe requests out {}/s, forwarding delay p50/p99 {} ms, resident memory {} MiB; UDP receive-buffer drops on the machine: {})",
        show(r.received_pps),
        show(r.nacks_ps),
        show(r.keyframe_requests_ps),
        r.server_delay_ms.map_or("-".into(), |(p50, p99)| format!("{p50:.2}/{p99:.2}")),
        show(r.sfu_rss_mib),
        show(r.rcvbuf_errors),
    );
    if r.decrypting_subscribers < r.subscribers {
        println!(
            "         ({} of {} subscribers decrypted and timed what they received; the others counted RTP headers)",
            r.decrypting_subscribers, r.subscribers
        );
    }
    if r.duplicates > 0 || r.send_drops > 0 {
        println!(
            "         ({} duplicate packets received, {} client datagrams not sent: full socket buffer; window {:.2} s)",
            r.duplicates, r.send_drops, r.window_s
        );
    }
}

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    if args.fanout.is_empty() && args.mesh.is_empty() {
        args.fanout = vec![50];
        args.mesh = vec![8];
    }
    str0m::crypto::from_feature_flags().install_process_default();
    let server = match start_server(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ward-rtc-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if args.pin {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let others = if cpus > 1 { format!("1-{}", cpus - 1) } else { "0".into() };
        let _ = Command::new("taskset")
            .args(["-a", "-p", "-c", &others, &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ward-rtc-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("ward-rtc-bench: {}", machine());
    println!(
        "server pid {} at {}; {} kbit/s per stream, payloads ≤ {} B, {}, warm-up {} s, measured {} s{}",
        server.pid,
        server.http,
        args.bitrate_kbps,
        args.packet_bytes,
        if args.pacing_factor > 0.0 {
            format!("publishers paced at {}× the bitrate", args.pacing_factor)
        } else {
            "frames sent in bursts".to_owned()
        },
        args.warmup_s,
        args.duration_s,
        if args.pin { ", server pinned to CPU 0" } else { "" }
    );
    let mut rows = Vec::new();
    let mut failed = false;
    let plan: Vec<(Kind, usize)> = args
        .fanout
        .iter()
        .map(|n| (Kind::Fanout, *n))
        .chain(args.mesh.iter().map(|n| (Kind::Mesh, *n)))
        .collect();
    for (run, (kind, n)) in plan.into_iter().enumerate() {
        match runtime.block_on(scenario(&args, &server, kind, n, run)) {
            Ok(row) => {
                print_table(std::slice::from_ref(&row), rows.is_empty());
                rows.push(row);
            }
            Err(e) => {
                eprintln!("ward-rtc-bench: {kind:?} {n}: {e}");
                failed = true;
            }
        }
    }
    if rows.len() > 1 {
        println!("\nall scenarios:");
        print_table(&rows, true);
    }
    drop(server);
    if failed { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS }
}

#[cfg(test)]
mod tests {
    use super::histogram_quantile_ms;

    #[test]
    fn quantiles_interpolate_within_the_bucket_of_what_the_window_added() {
        let before = [(0.001, 10.0), (0.002, 20.0), (f64::INFINITY, 20.0)];
        let after = [(0.001, 60.0), (0.002, 120.0), (f64::INFINITY, 120.0)];
        // The window added 50 below 1 ms and 50 between 1 and 2 ms.
        let p50 = histogram_quantile_ms(&before, &after, 0.5).unwrap();
        let p99 = histogram_quantile_ms(&before, &after, 0.99).unwrap();
        assert!((p50 - 1.0).abs() < 1e-9, "{p50}");
        assert!((p99 - 1.98).abs() < 1e-9, "{p99}");
        assert_eq!(histogram_quantile_ms(&after, &after, 0.5), None, "nothing observed");
        let overflow = [(0.001, 60.0), (0.002, 70.0), (f64::INFINITY, 170.0)];
        assert_eq!(histogram_quantile_ms(&before, &overflow, 0.99), Some(2.0), "beyond the last bound");
    }
}
