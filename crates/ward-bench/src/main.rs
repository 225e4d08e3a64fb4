//! `ward-bench`: measures a Matrix homeserver over the standard client-server API.
//!
//! `ward-bench run --url URL` creates its own users (open registration or a registration
//! token), then measures send throughput, delivery latency through long-polling `/sync`, initial
//! sync of a user in many rooms, filling a room, and the server's memory (with `--pid`). It
//! prints a table and writes every figure as JSON. `ward-bench compare A.json B.json` prints
//! two runs side by side with the ratio. `bench/compare.sh` runs it against Ward and Synapse.
//! `ward-bench sliding --url URL` measures simplified sliding sync (MSC4186) requests as one
//! user's room count grows (10 → 1,000 by default): time and size of a first request for
//! Element X's room list and of an incremental one, and the server's memory; per list range
//! (`--ranges`, [0,19], [0,99], [0,999]) a request with nothing new (a long-poll's wake-up for
//! news elsewhere) and one after a message in range. `ward-bench sliding-resume` measures the
//! first requests on those connections after the server restarted (`--state-out` keeps them).

mod matrix;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::matrix::{Client, User};

#[derive(Parser)]
#[command(name = "ward-bench", about = "Benchmark a Matrix homeserver over the client-server API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every scenario against one server.
    Run(RunArgs),
    /// Print two result files side by side with their ratio (first / second).
    Compare { first: PathBuf, second: PathBuf },
    /// Sliding sync request time and memory as one user's room count grows.
    Sliding(SlidingArgs),
    /// The first incremental sliding sync requests after the server restarted, on the
    /// connections `sliding --state-out` left.
    SlidingResume(ResumeArgs),
}

#[derive(Args, Clone)]
struct SlidingArgs {
    /// Base URL of the homeserver.
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "server")]
    label: String,
    #[arg(long)]
    registration_token: Option<String>,
    /// The server's process ID, for memory figures.
    #[arg(long)]
    pid: Option<u32>,
    /// Room counts to measure at, ascending.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10, 100, 1000])]
    steps: Vec<usize>,
    /// Requests measured per figure (the best and the median are printed).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// List range ends (`[0, N]`) whose idle and incremental requests are measured at each step.
    #[arg(long, value_delimiter = ',', default_values_t = vec![19, 99, 999])]
    ranges: Vec<u64>,
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to keep the user and the connections' positions for `sliding-resume` (measured after
    /// the server restarted).
    #[arg(long)]
    state_out: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct ResumeArgs {
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "server")]
    label: String,
    /// The file `sliding --state-out` wrote.
    #[arg(long)]
    state: PathBuf,
    /// Requests measured one after the other on each connection.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Base URL of the homeserver, e.g. http://127.0.0.1:8008
    #[arg(long)]
    url: String,
    /// Name of this server in the output.
    #[arg(long, default_value = "server")]
    label: String,
    /// Registration token, if the server does not allow open registration.
    #[arg(long)]
    registration_token: Option<String>,
    /// The server's process ID, for memory figures.
    #[arg(long)]
    pid: Option<u32>,
    /// A file holding the server's process ID.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Where to write the JSON results.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Send throughput: concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Send throughput: rooms the clients send to.
    #[arg(long, default_value_t = 16)]
    rooms: usize,
    /// Send throughput: seconds of sending.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Delivery latency: receivers long-polling /sync.
    #[arg(long, default_value_t = 10)]
    receivers: usize,
    /// Delivery latency: offered messages per second.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// Delivery latency: seconds of sending.
    #[arg(long, default_value_t = 10)]
    delivery_duration_s: u64,
    /// Initial sync: rooms the user is in.
    #[arg(long, default_value_t = 300)]
    sync_rooms: usize,
    /// Initial sync: members per room (the user included).
    #[arg(long, default_value_t = 5)]
    sync_members: usize,
    /// Initial sync: messages per room.
    #[arg(long, default_value_t = 5)]
    sync_history: usize,
    /// Room join: members that join one room.
    #[arg(long, default_value_t = 100)]
    join_members: usize,
    /// Requests in flight during setup.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

const PASSWORD: &str = "ward-bench password 1";

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `f` over `items` with at most `n` in flight.
async fn bounded<T, R, F, Fut>(items: Vec<T>, n: usize, f: F) -> Result<Vec<R>, String>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<R, String>> + Send + 'static,
{
    let f = Arc::new(f);
    let sem = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
    let mut handles = Vec::with_capacity(items.len());
    for item in items {
        let (f, sem) = (f.clone(), sem.clone());
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
            f(item).await
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

struct Bench {
    client: Client,
    args: RunArgs,
    run: String,
}

impl Bench {
    async fn users(&self, prefix: &str, n: usize) -> Result<Vec<User>, String> {
        let client = self.client.clone();
        let token = self.args.registration_token.clone();
        let run = self.run.clone();
        let prefix = prefix.to_owned();
        bounded((0..n).collect(), self.args.concurrency, move |i| {
            let (client, token, name) = (client.clone(), token.clone(), format!("b{run}{prefix}{i}"));
            async move { client.register(&name, PASSWORD, token.as_deref()).await }
        })
        .await
    }

    /// Public rooms created by `owner`, each joined by `members`.
    async fn rooms(&self, owner: &User, n: usize, name: &str) -> Result<Vec<String>, String> {
        let client = self.client.clone();
        let owner = owner.clone();
        let name = name.to_owned();
        bounded((0..n).collect(), self.args.concurrency, move |i| {
            let (client, owner, name) = (client.clone(), owner.clone(), format!("{name} {i}"));
            async move { client.create_room(&owner, json!({"preset": "public_chat", "name": name})).await }
        })
        .await
    }

    async fn join_all(&self, pairs: Vec<(User, String)>) -> Result<(), String> {
        let client = self.client.clone();
        bounded(pairs, self.args.concurrency, move |(u, room)| {
            let client = client.clone();
            async move { client.join(&u, &room).await }
        })
        .await
        .map(|_| ())
    }

    async fn send_throughput(&self) -> Result<Value, String> {
        let a = &self.args;
        let users = self.users("s", a.clients).await?;
        let rooms = self.rooms(&users[0], a.rooms, "throughput").await?;
        let pairs = users
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, u)| (u.clone(), rooms[i % rooms.len()].clone()))
            .collect();
        self.join_all(pairs).await?;
        let deadline = Instant::now() + Duration::from_secs(a.duration_s);
        let started = Instant::now();
        let mut handles = Vec::new();
        for (i, u) in users.into_iter().enumerate() {
            let client = self.client.clone();
            let room = rooms[i % rooms.len()].clone();
            let run = self.run.clone();
            handles.push(tokio::spawn(async move {
                let (mut lat, mut refused, mut n) = (Vec::new(), 0u64, 0u64);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let txn = format!("t{run}-{i}-{n}");
                    match client.send(&u, &room, &txn, "throughput").await {
                        Ok(true) => lat.push(ms(t.elapsed())),
                        Ok(false) | Err(_) => refused += 1,
                    }
                    n += 1;
                }
                (lat, refused)
            }));
        }
        let mut lat = Vec::new();
        let mut refused = 0;
        for h in handles {
            let (l, r) = h.await.map_err(|e| e.to_string())?;
            lat.extend(l);
            refused += r;
        }
        let elapsed = started.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        Ok(json!({
            "clients": a.clients, "rooms": a.rooms, "duration_s": elapsed,
            "acknowledged": lat.len(), "refused": refused,
            "messages_per_s": lat.len() as f64 / elapsed,
            "latency_p50_ms": percentile(&lat, 50.0), "latency_p99_ms": percentile(&lat, 99.0),
        }))
    }

    async fn delivery_latency(&self) -> Result<Value, String> {
        let a = &self.args;
        let senders = 4usize.min(a.rate.max(1) as usize);
        let users = self.users("d", a.receivers + senders).await?;
        let room = self.rooms(&users[0], 1, "delivery").await?.remove(0);
        self.join_all(users.iter().skip(1).map(|u| (u.clone(), room.clone())).collect()).await?;
        let (receivers, senders_list) = users.split_at(a.receivers);
        let arrivals: Arc<Mutex<HashMap<(usize, u64), Instant>>> = Arc::default();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let marker = format!("bench-{}-", self.run);
        let mut receiver_handles = Vec::new();
        for (r, u) in receivers.iter().cloned().enumerate() {
            let (client, arrivals, stopped, marker) =
                (self.client.clone(), arrivals.clone(), stopped.clone(), marker.clone());
            let (first, _) = client.sync(&u, None, 0, Some(r#"{"room":{"timeline":{"limit":1}}}"#)).await?;
            let mut since = first.get("next_batch").and_then(Value::as_str).map(str::to_owned);
            receiver_handles.push(tokio::spawn(async move {
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok((body, _)) = client.sync(&u, since.as_deref(), 5_000, None).await else {
                        continue;
                    };
                    let now = Instant::now();
                    since = body.get("next_batch").and_then(Value::as_str).map(str::to_owned);
                    let Some(rooms) = body.pointer("/rooms/join").and_then(Value::as_object) else {
                        continue;
                    };
                    let mut got = arrivals.lock().unwrap_or_else(|p| p.into_inner());
                    for room in rooms.values() {
                        for e in
                            room.pointer("/timeline/events").and_then(Value::as_array).into_iter().flatten()
                        {
                            let body = e.pointer("/content/body").and_then(Value::as_str).unwrap_or_default();
                            if let Some(idx) = body.strip_prefix(&marker).and_then(|n| n.parse().ok()) {
                                got.entry((r, idx)).or_insert(now);
                            }
                        }
                    }
                }
            }));
        }
        let total = a.rate * a.delivery_duration_s;
        let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let start = Instant::now();
        let mut send_handles = Vec::new();
        for (s, u) in senders_list.iter().cloned().enumerate() {
            let (client, room, sent_at, acked, marker, run) = (
                self.client.clone(),
                room.clone(),
                sent_at.clone(),
                acked.clone(),
                marker.clone(),
                self.run.clone(),
            );
            let rate = a.rate;
            let senders_n = senders as u64;
            send_handles.push(tokio::spawn(async move {
                let mut i = s as u64;
                while i < total {
                    let due = start + Duration::from_micros(i * 1_000_000 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    let t = Instant::now();
                    sent_at.lock().unwrap_or_else(|p| p.into_inner()).insert(i, t);
                    if let Ok(true) =
                        client.send(&u, &room, &format!("d{run}-{i}"), &format!("{marker}{i}")).await
                    {
                        acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        sent_at.lock().unwrap_or_else(|p| p.into_inner()).remove(&i);
                    }
                    i += senders_n;
                }
            }));
        }
        for h in send_handles {
            h.await.map_err(|e| e.to_string())?;
        }
        let acked = acked.load(std::sync::atomic::Ordering::Relaxed);
        let expected = acked * a.receivers as u64;
        let wait_until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < wait_until
            && (arrivals.lock().unwrap_or_else(|p| p.into_inner()).len() as u64) < expected
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stopped.store(true, std::sync::atomic::Ordering::Relaxed);
        let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let sent_at = sent_at.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut lat: Vec<f64> = arrivals
            .iter()
            .filter_map(|((_, idx), at)| sent_at.get(idx).map(|s| ms(at.saturating_duration_since(*s))))
            .collect();
        lat.sort_by(f64::total_cmp);
        for h in receiver_handles {
            h.abort();
        }
        Ok(json!({
            "receivers": a.receivers, "offered_per_s": a.rate, "sent": total, "acknowledged": acked,
            "deliveries_expected": expected, "delivered": lat.len(),
            "missing": expected.saturating_sub(lat.len() as u64),
            "latency_p50_ms": percentile(&lat, 50.0), "latency_p99_ms": percentile(&lat, 99.0),
            "latency_max_ms": lat.last().copied().unwrap_or(f64::NAN),
        }))
    }

    async fn initial_sync(&self) -> Result<Value, String> {
        let a = &self.args;
        let users = self.users("i", a.sync_members.max(1)).await?;
        let me = users[0].clone();
        let rooms = self.rooms(&me, a.sync_rooms, "sync").await?;
        let mut pairs = Vec::new();
        for room in &rooms {
            for u in users.iter().skip(1) {
                pairs.push((u.clone(), room.clone()));
            }
        }
        self.join_all(pairs).await?;
        let client = self.client.clone();
        let talkers = users.clone();
        let run = self.run.clone();
        let history = a.sync_history;
        let messages: Vec<(usize, usize)> =
            (0..rooms.len()).flat_map(|r| (0..history).map(move |m| (r, m))).collect();
        let rooms_c = rooms.clone();
        bounded(messages, a.concurrency, move |(r, m)| {
            let (client, u, room) = (client.clone(), talkers[m % talkers.len()].clone(), rooms_c[r].clone());
            let txn = format!("h{run}-{r}-{m}");
            async move { client.send(&u, &room, &txn, &format!("history {m}")).await.map(|_| ()) }
        })
        .await?;
        let filter = r#"{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":10}}}"#;
        let mut times = Vec::new();
        let mut bytes = 0;
        let mut rooms_seen = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let (body, size) = self.client.sync(&me, None, 0, Some(filter)).await?;
            times.push(ms(t.elapsed()));
            bytes = size;
            rooms_seen = body.pointer("/rooms/join").and_then(Value::as_object).map_or(0, |m| m.len());
        }
        Ok(json!({
            "rooms": a.sync_rooms, "members_per_room": a.sync_members, "messages_per_room": a.sync_history,
            "rooms_in_response": rooms_seen, "bytes": bytes,
            "first_ms": times[0], "best_ms": times.iter().copied().fold(f64::INFINITY, f64::min),
        }))
    }

    async fn room_join(&self) -> Result<Value, String> {
        let a = &self.args;
        let users = self.users("j", a.join_members.max(1)).await?;
        let t = Instant::now();
        let room = self.rooms(&users[0], 1, "join").await?.remove(0);
        self.join_all(users.iter().skip(1).map(|u| (u.clone(), room.clone())).collect()).await?;
        let total = t.elapsed();
        Ok(json!({
            "members": a.join_members, "total_ms": ms(total),
            "per_join_ms": ms(total) / a.join_members.max(1) as f64,
        }))
    }
}

/// The request Element X's room list makes first: 20 rooms, one event each, its state.
fn room_list_request() -> Value {
    let state = [
        ["m.room.name", ""],
        ["m.room.encryption", ""],
        ["m.room.member", "$LAZY"],
        ["m.room.member", "$ME"],
        ["m.room.topic", ""],
        ["m.room.avatar", ""],
        ["m.room.canonical_alias", ""],
        ["m.room.power_levels", ""],
        ["m.room.join_rules", ""],
        ["m.room.tombstone", ""],
        ["m.room.create", ""],
        ["m.room.history_visibility", ""],
        ["m.space.parent", "*"],
        ["m.space.child", "*"],
    ];
    json!({
        "conn_id": "room-list",
        "lists": {"all_rooms": {"ranges": [[0, 19]], "timeline_limit": 1, "required_state": state}},
        "extensions": {"account_data": {"enabled": true}, "receipts": {"enabled": true, "rooms": ["*"]},
                       "typing": {"enabled": true}},
    })
}

fn best_and_median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v.first().copied().unwrap_or(0.0), v.get(v.len() / 2).copied().unwrap_or(0.0))
}

async fn sliding(args: SlidingArgs) -> Result<Value, String> {
    let client = Client::new(&args.url)?;
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 0xfff_ffff)
            .unwrap_or(0)
    );
    let me = client.register(&format!("b{run}ss"), PASSWORD, args.registration_token.as_deref()).await?;
    let request = room_list_request();
    let mut rooms: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    println!(
        "{:<10} {:>7} {:>12} {:>12} {:>10} {:>12} {:>12} {:>10}",
        args.label, "rooms", "first best", "first med", "bytes", "incr best", "incr med", "RSS MiB"
    );
    println!(
        "{:<10} {:>7} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "", "", "range", "idle best", "idle med", "news best", "news med"
    );
    for &target in &args.steps {
        let missing = target.saturating_sub(rooms.len());
        let (c, u, offset) = (client.clone(), me.clone(), rooms.len());
        let made = bounded((0..missing).collect(), args.concurrency, move |i| {
            let (c, u) = (c.clone(), u.clone());
            async move {
                let room = c
                    .create_room(
                        &u,
                        json!({"preset": "private_chat", "name": format!("room {}", offset + i)}),
                    )
                    .await?;
                c.send(&u, &room, &format!("m{}", offset + i), "hello").await?;
                Ok::<_, String>(room)
            }
        })
        .await?;
        rooms.extend(made);
        // First requests of fresh connections: the whole visible list.
        let mut first = Vec::new();
        let mut bytes = 0;
        let mut pos = String::new();
        for i in 0..args.repeat.max(1) {
            let mut body = request.clone();
            body["conn_id"] = json!(format!("bench{i}"));
            let t = Instant::now();
            let (v, size) = client.sliding_sync(&me, None, 0, &body).await?;
            first.push(ms(t.elapsed()));
            bytes = size;
            if i == 0 {
                pos = v.get("pos").and_then(Value::as_str).unwrap_or_default().to_owned();
            }
        }
        // Incremental requests after a message in the oldest room (which moves it to the top).
        let mut incremental = Vec::new();
        let mut body = request.clone();
        body["conn_id"] = json!("bench0");
        for i in 0..args.repeat.max(1) {
            let room = &rooms[i % rooms.len()];
            client.send(&me, room, &format!("inc{target}-{i}"), "news").await?;
            let t = Instant::now();
            let (v, _) = client.sliding_sync(&me, Some(&pos), 0, &body).await?;
            incremental.push(ms(t.elapsed()));
            pos = v.get("pos").and_then(Value::as_str).unwrap_or_default().to_owned();
        }
        let rss = rss_kib(args.pid).map(|k| k as f64 / 1024.0);
        let (fb, fm) = best_and_median(first);
        let (ib, im) = best_and_median(incremental);
        // Per range: a connection caught up with every room in range, then requests with
        // nothing new (what a long-poll's wake-up costs when the news is elsewhere) and
        // requests after a message in the room at the bottom of the range.
        let mut by_range = Vec::new();
        for &end in args.ranges.iter().filter(|&&e| e < rooms.len() as u64 || e == args.ranges[0]) {
            let mut body = request.clone();
            body["conn_id"] = json!(format!("range{end}"));
            body["lists"]["all_rooms"]["ranges"] = json!([[0, end]]);
            let (mut pos, mut catch_up) = (None::<String>, 0);
            loop {
                let (v, _) = client.sliding_sync(&me, pos.as_deref(), 0, &body).await?;
                pos = v.get("pos").and_then(Value::as_str).map(str::to_owned);
                let fresh = v["rooms"]
                    .as_object()
                    .is_some_and(|r| r.values().any(|room| room.get("initial") == Some(&json!(true))));
                catch_up += 1;
                if !fresh || catch_up > 100 {
                    break;
                }
            }
            let mut pos = pos.unwrap_or_default();
            let mut idle = Vec::new();
            for _ in 0..args.repeat.max(1) {
                let t = Instant::now();
                let (v, _) = client.sliding_sync(&me, Some(&pos), 0, &body).await?;
                idle.push(ms(t.elapsed()));
                pos = v.get("pos").and_then(Value::as_str).unwrap_or_default().to_owned();
            }
            let mut news = Vec::new();
            for i in 0..args.repeat.max(1) {
                // One room among the first `end + 1` created gets a message: one room in range
                // (or just below it) changed.
                let bottom = &rooms[rooms.len().saturating_sub(1).min(end as usize).saturating_sub(i)];
                client.send(&me, bottom, &format!("r{end}-{target}-{i}"), "news").await?;
                let t = Instant::now();
                let (v, _) = client.sliding_sync(&me, Some(&pos), 0, &body).await?;
                news.push(ms(t.elapsed()));
                pos = v.get("pos").and_then(Value::as_str).unwrap_or_default().to_owned();
            }
            let (qb, qm) = best_and_median(idle);
            let (nb, nm) = best_and_median(news);
            println!(
                "{:<10} {:>7} {:>12} {:>10.1}ms {:>10.1}ms {:>10.1}ms {:>10.1}ms",
                "",
                rooms.len(),
                format!("[0,{end}]"),
                qb,
                qm,
                nb,
                nm
            );
            by_range.push(json!({
                "range_end": end, "catch_up_requests": catch_up, "idle_best_ms": qb,
                "idle_median_ms": qm, "news_best_ms": nb, "news_median_ms": nm, "pos": pos,
            }));
        }
        println!(
            "{:<10} {:>7} {:>10.1}ms {:>10.1}ms {:>10} {:>10.1}ms {:>10.1}ms {:>10}",
            "",
            rooms.len(),
            fb,
            fm,
            bytes,
            ib,
            im,
            rss.map_or("-".into(), |r| format!("{r:.1}"))
        );
        rows.push(json!({
            "rooms": rooms.len(), "first_best_ms": fb, "first_median_ms": fm, "first_bytes": bytes,
            "incremental_best_ms": ib, "incremental_median_ms": im, "rss_mib": rss, "ranges": by_range,
        }));
    }
    if let Some(path) = &args.state_out {
        // The last step's connections, for `sliding-resume` after a restart.
        let last = rows.last().cloned().unwrap_or_default();
        let connections: Vec<Value> = last["ranges"]
            .as_array()
            .map(|r| r.iter().map(|c| json!({"range_end": c["range_end"], "pos": c["pos"]})).collect())
            .unwrap_or_default();
        let state = json!({"token": me.token, "rooms": rooms.len(), "connections": connections});
        std::fs::write(path, state.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(json!({"label": args.label, "url": args.url, "sliding": rows}))
}

/// The first `repeat` requests (nothing new, timeout 0) on each connection a `sliding` run left,
/// after the server restarted: what a client's first long-poll wake-ups cost on a fresh process.
async fn sliding_resume(args: ResumeArgs) -> Result<Value, String> {
    let client = Client::new(&args.url)?;
    let text = std::fs::read(&args.state).map_err(|e| format!("{}: {e}", args.state.display()))?;
    let state: Value = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", args.state.display()))?;
    let me = User { token: state["token"].as_str().unwrap_or_default().to_owned() };
    println!(
        "{:<10} {:>7} {:>12}   request times after the restart (ms, in order)",
        args.label, "rooms", "range"
    );
    let mut rows = Vec::new();
    for c in state["connections"].as_array().cloned().unwrap_or_default() {
        let end = c["range_end"].as_u64().unwrap_or(19);
        let mut body = room_list_request();
        body["conn_id"] = json!(format!("range{end}"));
        body["lists"]["all_rooms"]["ranges"] = json!([[0, end]]);
        let mut pos = c["pos"].as_str().unwrap_or_default().to_owned();
        let mut times = Vec::new();
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            let (v, _) = client.sliding_sync(&me, Some(&pos), 0, &body).await?;
            times.push(ms(t.elapsed()));
            pos = v.get("pos").and_then(Value::as_str).unwrap_or_default().to_owned();
        }
        let shown: Vec<String> = times.iter().map(|t| format!("{t:.1}")).collect();
        println!("{:<10} {:>7} {:>12}   {}", "", state["rooms"], format!("[0,{end}]"), shown.join("  "));
        rows.push(json!({"range_end": end, "times_ms": times}));
    }
    Ok(json!({"label": args.label, "url": args.url, "rooms": state["rooms"], "resume": rows}))
}

async fn run(args: RunArgs) -> Result<Value, String> {
    let pid = match (&args.pid, &args.pid_file) {
        (Some(p), _) => Some(*p),
        (None, Some(f)) => std::fs::read_to_string(f).ok().and_then(|s| s.trim().parse().ok()),
        (None, None) => None,
    };
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 0xfff_ffff)
            .unwrap_or(0)
    );
    let bench = Bench { client: Client::new(&args.url)?, args: args.clone(), run };
    let idle = rss_kib(pid);
    eprintln!("[{}] send throughput…", args.label);
    let send = bench.send_throughput().await?;
    eprintln!("[{}] delivery latency…", args.label);
    let delivery = bench.delivery_latency().await?;
    eprintln!("[{}] initial sync…", args.label);
    let sync = bench.initial_sync().await?;
    let after_setup = rss_kib(pid);
    eprintln!("[{}] room join…", args.label);
    let join = bench.room_join().await?;
    let end = rss_kib(pid);
    let mib = |k: Option<u64>| k.map(|k| k as f64 / 1024.0);
    Ok(json!({
        "label": args.label, "url": args.url,
        "send": send, "delivery": delivery, "initial_sync": sync, "join": join,
        "memory": {"idle_mib": mib(idle), "after_setup_mib": mib(after_setup), "end_mib": mib(end)},
    }))
}

/// (section, key, description, higher is better)
const FIGURES: &[(&str, &str, &str, bool)] = &[
    ("send", "messages_per_s", "send throughput (msg/s)", true),
    ("send", "latency_p50_ms", "send latency p50 (ms)", false),
    ("send", "latency_p99_ms", "send latency p99 (ms)", false),
    ("delivery", "latency_p50_ms", "delivery latency p50 (ms)", false),
    ("delivery", "latency_p99_ms", "delivery latency p99 (ms)", false),
    ("delivery", "latency_max_ms", "delivery latency max (ms)", false),
    ("delivery", "missing", "deliveries missing", false),
    ("initial_sync", "first_ms", "initial sync, first (ms)", false),
    ("initial_sync", "best_ms", "initial sync, best of 3 (ms)", false),
    ("initial_sync", "bytes", "initial sync size (bytes)", false),
    ("join", "total_ms", "create + fill room (ms)", false),
    ("memory", "idle_mib", "RSS idle (MiB)", false),
    ("memory", "after_setup_mib", "RSS after setup (MiB)", false),
    ("memory", "end_mib", "RSS at end (MiB)", false),
];

fn figure(v: &Value, section: &str, key: &str) -> Option<f64> {
    v.get(section)?.get(key)?.as_f64()
}

fn print_table(runs: &[&Value]) {
    let labels: Vec<&str> =
        runs.iter().map(|r| r.get("label").and_then(Value::as_str).unwrap_or("?")).collect();
    let mut header = format!("{:<32}", "figure");
    for l in &labels {
        header.push_str(&format!("{l:>14}"));
    }
    if runs.len() == 2 {
        header.push_str(&format!(" {:>11}{:>12}", format!("{}/{}", labels[0], labels[1]), "advantage"));
    }
    // Write errors (a closed pipe, as with `| head`) end the table quietly instead of panicking.
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{header}").is_err() {
        return;
    }
    for (section, key, desc, higher_better) in FIGURES {
        let values: Vec<Option<f64>> = runs.iter().map(|r| figure(r, section, key)).collect();
        let mut line = format!("{desc:<32}");
        for v in &values {
            line.push_str(&match v {
                Some(x) => format!("{x:>14.1}"),
                None => format!("{:>14}", "–"),
            });
        }
        if let [Some(a), Some(b)] = values[..] {
            if a == 0.0 && b == 0.0 {
                line.push_str(&format!("{:>12}{:>12}", "=", "="));
            } else {
                let ratio = if b != 0.0 { a / b } else { f64::NAN };
                // How many times better the first is (>1: first wins).
                let advantage = if *higher_better {
                    ratio
                } else if a != 0.0 {
                    b / a
                } else {
                    f64::INFINITY
                };
                line.push_str(&format!("{ratio:>12.2}{advantage:>11.1}×"));
            }
        }
        if writeln!(out, "{line}").is_err() {
            return;
        }
    }
}

/// A scenario's end: its figures written to `--out` (if given) as JSON, and the exit code.
fn finish(result: Result<Value, String>, out: Option<PathBuf>) -> std::process::ExitCode {
    let v = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ward-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Some(path) = out
        && let Err(e) = std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap_or_default())
    {
        eprintln!("ward-bench: cannot write {}: {e}", path.display());
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::Run(args) => {
            let out = args.out.clone();
            finish(run(args).await.inspect(|v| print_table(&[v])), out)
        }
        Command::Sliding(args) => {
            let out = args.out.clone();
            finish(sliding(args).await, out)
        }
        Command::SlidingResume(args) => {
            let out = args.out.clone();
            finish(sliding_resume(args).await, out)
        }
        Command::Compare { first, second } => {
            let read = |p: &PathBuf| -> Result<Value, String> {
                let text = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
                serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", p.display()))
            };
            match (read(&first), read(&second)) {
                (Ok(a), Ok(b)) => {
                    print_table(&[&a, &b]);
                    std::process::ExitCode::SUCCESS
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("ward-bench: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
