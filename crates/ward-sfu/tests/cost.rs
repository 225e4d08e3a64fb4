//! What the SFU core costs per forwarded packet, without sockets: a program, not a test (it is
//! `#[ignore]`d and asserts nothing). ward-rtc-bench measures the whole server over loopback,
//! where the kernel's share and the VM's noise (±15 % between identical runs) hide changes of a
//! few percent in the core; this measures only the time spent inside the core's calls (Ward,
//! str0m, SRTP), with simulated clients whose own work is not counted.
//!
//! ```text
//! cargo test --release -p ward-sfu --test cost -- --ignored --nocapture
//! ```

mod sim;

use std::time::Duration;

use sim::{Sim, TrackSpec};

/// Video bitrate per stream, as ward-rtc-bench's default.
const BITRATE_BPS: u64 = 2_000_000;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURED: Duration = Duration::from_secs(4);
const ROUNDS: usize = 5;
/// The shell's `DATAGRAM_BATCH_MAX`: a busy loop hands in up to this many waiting datagrams
/// before it sends.
const BATCH_MAX: usize = 16;

/// Microseconds of core time per forwarded packet, and the packets forwarded.
/// `participants` join; the first `publishers` of them publish one video each, and everyone
/// receives everyone else's. Datagrams that reach the SFU at the same simulated instant are
/// handed in together, up to `batch`.
fn measure(participants: usize, publishers: usize, batch: usize, seed: u64) -> (f64, u64) {
    let mut sim = Sim::with_config(seed, |c| c.max_participants_per_room = participants);
    sim.eager_timers = true;
    sim.sfu_batch_max = batch;
    let ids: Vec<usize> = (0..participants).map(|i| sim.join(&format!("p{i}"))).collect();
    for &id in ids.iter().take(publishers) {
        sim.publish(id, vec![TrackSpec::video("cam", BITRATE_BPS)]);
    }
    sim.connect_all();
    sim.run_for(WARMUP);
    let (busy0, fwd0) = (sim.sfu_busy, sim.sfu.stats().packets_forwarded);
    sim.run_for(MEASURED);
    let (busy1, fwd1) = (sim.sfu_busy, sim.sfu.stats().packets_forwarded);
    let forwarded = fwd1 - fwd0;
    ((busy1 - busy0).as_secs_f64() * 1e6 / forwarded.max(1) as f64, forwarded)
}

fn report(name: &str, participants: usize, publishers: usize, batch: usize) {
    let mut costs: Vec<f64> = Vec::new();
    let mut forwarded = 0;
    for round in 0..ROUNDS {
        let (us, n) = measure(participants, publishers, batch, 7 + round as u64);
        costs.push(us);
        forwarded = n;
    }
    costs.sort_by(f64::total_cmp);
    let name = format!("{name}, batch {batch}");
    println!(
        "{name:<22} {forwarded:>8} packets forwarded per round; core µs per forwarded packet: \
         best {:.2}, median {:.2}, worst {:.2} (≙ {:.0} packets/s per core at the median)",
        costs[0],
        costs[ROUNDS / 2],
        costs[ROUNDS - 1],
        1e6 / costs[ROUNDS / 2]
    );
}

#[test]
#[ignore = "a cost program: run with --ignored --nocapture"]
fn core_cost_per_forwarded_packet() {
    for batch in [1, BATCH_MAX] {
        report("fanout 100", 101, 1, batch);
        report("mesh 10", 10, 10, batch);
    }
}
