//! Ward's own estimate of a subscriber's downlink: how many bits per second the SFU can send
//! it before the link queues or drops. It picks the subscriber's simulcast layers.
//!
//! Why not str0m's estimator: str0m couples its delay-based estimator to a leaky-bucket
//! pacer that releases one packet per timeout round, and that round through all of str0m
//! costs a fifth to a third of the SFU's time per forwarded packet (docs/benchmarks.md, "The
//! pacer experiment"). LiveKit, likewise, estimates from TWCC feedback and sends without a
//! pacing queue. str0m still keeps the TWCC record of every packet it sent without its
//! estimator, and reports from it what this estimator needs, per connection and interval:
//! bytes sent, the share of packets lost over the last second, and the round-trip time of
//! the newest packet the receiver acknowledged (which includes the time it waited in the
//! bottleneck's queue).
//!
//! The rules, in the spirit of GCC (draft-ietf-rmcat-gcc) but on these coarser signals:
//!
//! - **Congestion** is loss above [`LOSS_CONGESTED`], or a round-trip time that stands above
//!   the lowest one of the last [`RTT_WINDOW_MS`] by more than [`QUEUE_DELAY_MAX_MS`] in two
//!   reports running (or by twice that in one): the link's queue is filling.
//! - On congestion the estimate falls to [`BACKOFF`] of what got through (the rate sent over
//!   the loss window times the share delivered). The signals lag: the next decrease waits
//!   until the sending rate has come down to the new estimate (a layer switch waits for a
//!   keyframe) and a loss window has passed since, or [`DECREASE_SETTLE_MAX_MS`].
//! - On a clean report (loss below [`LOSS_CLEAN`], no queueing) the estimate grows by
//!   [`GROWTH_PER_S`] while the SFU sends at least [`GROWTH_USE_PERCENT`] of it (so it levels
//!   off a quarter above what is sent): an estimate far above anything sent says nothing, and
//!   an upgrade that the estimate drifted into would skip the trials' back-off.
//! - Simulcast layers are steps (often ~3× the one below, in Chromium sometimes only ~1.2×),
//!   and nothing is sent to probe the gap, so a subscriber held below what it wants gets a
//!   **trial** once the link has been clean for a while: the estimate jumps to what one step
//!   up needs (the next layer of its most important subscription, [`Report::step_up_bps`]).
//!   The trial stands once the SFU has sent above the old estimate for [`TRIAL_WINDOW_MS`]
//!   without congestion (a layer switch waits for a keyframe and the allocator's hold, so the
//!   clock starts when the rate rises). Congestion before that undoes it: the estimate goes
//!   back to at most where the trial started (less if the back-off says so), and the next
//!   trial waits twice as long (up to [`TRIAL_WAIT_MAX_MS`]). A trial that stands starts the
//!   next clean spell.
//! - Each step that failed is remembered as a **ceiling** with a back-off of its own: a failed
//!   trial of the top layer can take the estimate below the middle one, whose trial then
//!   stands; that success clears only the ceilings it reached, so the top layer is not tried
//!   again (and the picture frozen again) every few seconds on a link that cannot carry it.
//!   Congestion that ends a spell of [`SETTLED_MS`] without any (no trial running) sets a
//!   ceiling at the rate that was sent, as a failed trial of that step would.
//! - Loss between the two thresholds holds the estimate: lines lose a few percent without
//!   being full, and NACK/RTX repairs that.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Loss above this share of packets (over str0m's one-second window) is congestion.
pub const LOSS_CONGESTED: f32 = 0.10;
/// Loss below this share lets the estimate grow.
pub const LOSS_CLEAN: f32 = 0.02;
/// Queueing delay (round-trip time above the recent minimum) that counts as a filling queue.
pub const QUEUE_DELAY_MAX_MS: u64 = 60;
/// The minimum round-trip time is taken over this window, so a route change is followed.
pub const RTT_WINDOW_MS: u64 = 30_000;
/// Most round-trip samples kept (the window at two reports a second, with room to spare).
pub const RTT_SAMPLES_MAX: usize = 128;
/// str0m's loss figure covers this window; the delivered rate is measured over the same.
pub const LOSS_WINDOW_MS: u64 = 1_000;
/// Most byte-count samples kept for it.
pub const RATE_SAMPLES_MAX: usize = 16;
/// The share of the delivered rate the estimate falls to on congestion.
pub const BACKOFF: f64 = 0.85;
/// A decrease whose effect never shows in the sending rate (the lowest layer is on already)
/// allows the next one after this long.
pub const DECREASE_SETTLE_MAX_MS: u64 = 4_000;
/// Growth of the estimate per second of clean reports (GCC's multiplicative increase).
pub const GROWTH_PER_S: f64 = 0.08;
/// The estimate grows only while the sending rate is at least this share of it (percent).
pub const GROWTH_USE_PERCENT: u64 = 80;
/// No estimate goes below this: audio and the lowest layer must still be tried.
pub const ESTIMATE_MIN_BPS: u64 = 100_000;
/// No estimate goes above this.
pub const ESTIMATE_MAX_BPS: u64 = 50_000_000;
/// Clean time before the first trial after congestion; doubled after each failed trial.
pub const TRIAL_WAIT_MIN_MS: u64 = 2_000;
pub const TRIAL_WAIT_MAX_MS: u64 = 64_000;
/// A trial stands after this long of sending above the old estimate without congestion.
pub const TRIAL_WINDOW_MS: u64 = 3_000;
/// A trial to at least this share of a ceiling (a step that failed, percent) counts as a trial
/// of that step: layer rates wobble between trials.
pub const CEILING_SHARE_PERCENT: u64 = 90;
/// Congestion after this long without any counts as the link failing the step the
/// subscriber had settled on (a ceiling, like a failed trial); sooner, it is the same episode.
pub const SETTLED_MS: u64 = 2_000;
/// Ceilings kept (a subscription has at most three layers; the highest goes first).
pub const CEILINGS_MAX: usize = 4;
/// A trial whose higher rate never shows (the subscriber turned its video off, say) ends
/// after this long, neither standing nor failed.
pub const TRIAL_UNUSED_MS: u64 = 10_000;

/// Whether a trial to `bps` tries the step at `ceiling_bps` (or a higher one).
fn reaches(bps: u64, ceiling_bps: u64) -> bool {
    bps.saturating_mul(100) >= ceiling_bps.saturating_mul(CEILING_SHARE_PERCENT)
}

/// What str0m reported for one subscriber connection at one interval.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Bytes sent on the connection so far (cumulative, all packets).
    pub bytes_sent: u64,
    /// Share of packets lost over the last second, from TWCC feedback.
    pub loss: Option<f32>,
    /// Round-trip time of the newest packet the receiver acknowledged.
    pub rtt: Option<Duration>,
    /// What the next better allocation needs (one layer up on the most important subscription
    /// held below its best, with headroom); 0 if nothing is held back.
    pub step_up_bps: u64,
}

#[derive(Debug)]
pub struct Estimator {
    estimate_bps: u64,
    /// Cumulative bytes sent at each report, newest last, over the loss window.
    sent: VecDeque<(Instant, u64)>,
    rtts: VecDeque<(Instant, Duration)>,
    delay_strikes: u8,
    decrease: Option<Decrease>,
    /// Since when the link has shown no congestion.
    clean_since: Instant,
    trial: Option<Trial>,
    trial_wait_ms: u64,
    /// Steps whose trial failed since a trial reaching them stood, lowest first, each with the
    /// wait before the next trial of it (doubled on each failure there, kept when a lower step
    /// stands).
    ceilings: Vec<Ceiling>,
}

#[derive(Debug, Clone, Copy)]
struct Ceiling {
    bps: u64,
    wait_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Decrease {
    at: Instant,
    to_bps: u64,
    /// When the sending rate first came down to `to_bps`.
    effective: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Trial {
    started: Instant,
    from_bps: u64,
    to_bps: u64,
    /// When the sending rate first rose above `from_bps`.
    loaded: Option<Instant>,
}

impl Estimator {
    pub fn new(initial_bps: u64, now: Instant) -> Self {
        Self {
            estimate_bps: initial_bps.clamp(ESTIMATE_MIN_BPS, ESTIMATE_MAX_BPS),
            sent: VecDeque::new(),
            rtts: VecDeque::new(),
            delay_strikes: 0,
            decrease: None,
            clean_since: now,
            trial: None,
            trial_wait_ms: TRIAL_WAIT_MIN_MS,
            ceilings: Vec::new(),
        }
    }

    /// Takes one interval's report; returns the new estimate.
    pub fn report(&mut self, now: Instant, r: Report) -> u64 {
        let Some(&(last_at, last_bytes)) = self.sent.back() else {
            self.sent.push_back((now, r.bytes_sent));
            return self.estimate_bps;
        };
        let elapsed = now.saturating_duration_since(last_at);
        if elapsed.is_zero() {
            return self.estimate_bps;
        }
        let rate_bps = |bytes: u64, since: Duration| (bytes as f64 * 8.0 / since.as_secs_f64()) as u64;
        let sent_bps = rate_bps(r.bytes_sent.saturating_sub(last_bytes), elapsed);
        while self.sent.len() >= RATE_SAMPLES_MAX
            || self
                .sent
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_millis(LOSS_WINDOW_MS))
        {
            self.sent.pop_front();
        }
        let &(window_at, window_bytes) = self.sent.front().expect("one sample at least");
        let window_sent_bps =
            rate_bps(r.bytes_sent.saturating_sub(window_bytes), now.duration_since(window_at));
        self.sent.push_back((now, r.bytes_sent));
        if let Some(d) = &mut self.decrease
            && d.effective.is_none()
            && sent_bps <= d.to_bps
        {
            d.effective = Some(now);
        }
        let loss = f64::from(r.loss.unwrap_or(0.0).clamp(0.0, 1.0));
        let queue_delay = r.rtt.map(|rtt| self.queue_delay(now, rtt)).unwrap_or_default();
        let queueing = queue_delay > Duration::from_millis(QUEUE_DELAY_MAX_MS);
        self.delay_strikes = if queueing { self.delay_strikes.saturating_add(1) } else { 0 };
        let congested = loss > f64::from(LOSS_CONGESTED)
            || self.delay_strikes >= 2
            || queue_delay > Duration::from_millis(2 * QUEUE_DELAY_MAX_MS);

        if congested {
            let settled = now.duration_since(self.clean_since) >= Duration::from_millis(SETTLED_MS);
            self.clean_since = now;
            let trial = self.trial.take();
            if let Some(trial) = trial {
                self.trial_wait_ms = (self.trial_wait_ms * 2).min(TRIAL_WAIT_MAX_MS);
                self.trial_failed(trial.to_bps);
            } else if settled {
                // The link failed the step the subscriber had settled on, just as a failed
                // trial of it would: without this, the first trial after the drop came at the
                // shortest wait and, on a link that cannot carry the step, froze the picture.
                let wait_ms = (self.trial_wait_ms * 2).min(TRIAL_WAIT_MAX_MS);
                self.step_failed(window_sent_bps, wait_ms);
            }
            let may_decrease = trial.is_some()
                || self.decrease.is_none_or(|d| match d.effective {
                    Some(t) => now.duration_since(t) >= Duration::from_millis(LOSS_WINDOW_MS),
                    None => now.duration_since(d.at) >= Duration::from_millis(DECREASE_SETTLE_MAX_MS),
                });
            if may_decrease {
                let delivered = window_sent_bps as f64 * (1.0 - loss);
                let mut target = (delivered * BACKOFF) as u64;
                if let Some(trial) = trial {
                    // A failed trial goes back to at most where it started, which the link had
                    // carried: the loss window still holds the rate from before the queue
                    // filled, and backing off from that alone left a browser on a layer the
                    // link could not carry either, its picture frozen, for seconds more.
                    target = target.min(trial.from_bps);
                }
                self.estimate_bps = self.estimate_bps.min(target).max(ESTIMATE_MIN_BPS);
                self.decrease = Some(Decrease { at: now, to_bps: self.estimate_bps, effective: None });
            }
            return self.estimate_bps;
        }
        if loss >= f64::from(LOSS_CLEAN) || queueing {
            return self.estimate_bps;
        }
        if let Some(trial) = &mut self.trial {
            if sent_bps > trial.from_bps {
                trial.loaded.get_or_insert(now);
            }
            let stood =
                trial.loaded.is_some_and(|t| now.duration_since(t) >= Duration::from_millis(TRIAL_WINDOW_MS));
            if stood {
                let to_bps = trial.to_bps;
                self.trial = None;
                self.trial_wait_ms = TRIAL_WAIT_MIN_MS;
                self.trial_stood(to_bps);
                // The next step waits a clean spell on this one: the trial's own clock began
                // when it started, so the next trial would otherwise begin at once.
                self.clean_since = now;
            } else if trial.loaded.is_none()
                && now.duration_since(trial.started) >= Duration::from_millis(TRIAL_UNUSED_MS)
            {
                self.trial = None;
            }
        }
        if sent_bps.saturating_mul(100) >= self.estimate_bps.saturating_mul(GROWTH_USE_PERCENT) {
            self.estimate_bps =
                (self.estimate_bps as f64 * (1.0 + GROWTH_PER_S * elapsed.as_secs_f64())) as u64;
        }
        let waited =
            now.duration_since(self.clean_since) >= Duration::from_millis(self.trial_wait_for(r.step_up_bps));
        if r.step_up_bps > self.estimate_bps && waited && self.trial.is_none() {
            self.trial = Some(Trial {
                started: now,
                from_bps: self.estimate_bps,
                to_bps: r.step_up_bps,
                loaded: None,
            });
            self.estimate_bps = r.step_up_bps;
            // The next trial counts its wait from here.
            self.clean_since = now;
        }
        self.estimate_bps = self.estimate_bps.clamp(ESTIMATE_MIN_BPS, ESTIMATE_MAX_BPS);
        self.estimate_bps
    }

    /// A trial to `to_bps` stood: the ceilings it reached are gone, higher ones stay.
    fn trial_stood(&mut self, to_bps: u64) {
        self.ceilings.retain(|c| !reaches(to_bps, c.bps));
    }

    /// The wait before a trial to `to_bps`: the general one, or a ceiling's it reaches.
    fn trial_wait_for(&self, to_bps: u64) -> u64 {
        self.ceilings
            .iter()
            .filter(|c| reaches(to_bps, c.bps))
            .map(|c| c.wait_ms)
            .fold(self.trial_wait_ms, u64::max)
    }

    /// A trial to `to_bps` failed: that step's ceiling waits twice as long, or a new one
    /// starts at the general wait (already doubled).
    fn trial_failed(&mut self, to_bps: u64) {
        self.step_failed(to_bps, self.trial_wait_ms);
    }

    /// The link failed to carry `bps`: that step's ceiling waits twice as long, or a new one
    /// starts at `wait_ms`.
    fn step_failed(&mut self, bps: u64, wait_ms: u64) {
        let same_step = |c: &Ceiling| reaches(bps, c.bps) && reaches(c.bps, bps);
        if let Some(c) = self.ceilings.iter_mut().find(|c| same_step(c)) {
            c.bps = c.bps.min(bps);
            c.wait_ms = (c.wait_ms * 2).min(TRIAL_WAIT_MAX_MS);
        } else {
            self.ceilings.push(Ceiling { bps, wait_ms });
            self.ceilings.sort_by_key(|c| c.bps);
            self.ceilings.truncate(CEILINGS_MAX);
        }
    }

    /// Records a round-trip sample and returns how far it stands above the window's minimum.
    fn queue_delay(&mut self, now: Instant, rtt: Duration) -> Duration {
        while self
            .rtts
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_millis(RTT_WINDOW_MS))
            || self.rtts.len() >= RTT_SAMPLES_MAX
        {
            self.rtts.pop_front();
        }
        self.rtts.push_back((now, rtt));
        let min = self.rtts.iter().map(|(_, r)| *r).min().unwrap_or(rtt);
        rtt.saturating_sub(min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_millis(500);

    /// A subscriber link in simulated time: `capacity_bps` through a queue; the SFU sends
    /// `sending_bps(estimate)` (what the layers it picks add up to).
    struct Link {
        est: Estimator,
        now: Instant,
        bytes: u64,
        base_rtt: Duration,
    }

    impl Link {
        fn new(initial_bps: u64) -> Self {
            let now = Instant::now();
            let mut est = Estimator::new(initial_bps, now);
            est.report(now, Report { bytes_sent: 0, loss: None, rtt: None, step_up_bps: 0 });
            Self { est, now, bytes: 0, base_rtt: Duration::from_millis(40) }
        }

        /// One interval of sending `sent_bps` with the given loss and queueing delay.
        fn step(&mut self, sent_bps: u64, loss: f32, queue_ms: u64, step_up_bps: u64) -> u64 {
            self.now += STEP;
            self.bytes += sent_bps / 8 / 2;
            let rtt = self.base_rtt + Duration::from_millis(queue_ms);
            self.est.report(
                self.now,
                Report { bytes_sent: self.bytes, loss: Some(loss), rtt: Some(rtt), step_up_bps },
            )
        }
    }

    #[test]
    fn heavy_loss_drops_the_estimate_to_what_got_through() {
        let mut l = Link::new(2_500_000);
        assert!(l.step(1_800_000, 0.0, 0, 2_000_000) >= 2_500_000);
        // A 700 kbit/s bottleneck: ~60 % of 1.8 Mbit/s is lost.
        let e = l.step(1_800_000, 0.6, 250, 2_000_000);
        assert!((600_000..=700_000).contains(&e), "estimate {e}");
    }

    #[test]
    fn a_filling_queue_is_congestion_before_any_loss() {
        let mut l = Link::new(2_000_000);
        l.step(1_000_000, 0.0, 0, 1_000_000);
        // 70 ms of queueing in one report is not enough ...
        assert_eq!(l.step(1_000_000, 0.0, 70, 1_000_000), 2_000_000);
        // ... twice running is.
        let e = l.step(1_000_000, 0.0, 80, 1_000_000);
        assert_eq!(e, 850_000);
        // A queue growing fast (> 120 ms) counts at once, but not before the sending rate has
        // come down to the new estimate (here at once) and a loss window has passed since.
        assert_eq!(l.step(800_000, 0.0, 150, 1_000_000), 850_000);
        assert_eq!(l.step(800_000, 0.0, 150, 1_000_000), 850_000);
        assert_eq!(l.step(800_000, 0.0, 150, 1_000_000), 680_000);
        // A single spike of 70–120 ms (a keyframe queueing for a moment) is not congestion.
        let mut l = Link::new(2_000_000);
        l.step(1_000_000, 0.0, 0, 1_000_000);
        assert!(l.step(1_000_000, 0.0, 100, 1_000_000) >= 2_000_000);
        assert!(l.step(1_000_000, 0.0, 0, 1_000_000) >= 2_000_000);
        // A decrease that the sending rate does not follow (nothing lower to switch to) allows
        // the next only after the settle time.
        let mut l = Link::new(1_000_000);
        l.step(900_000, 0.0, 0, 0);
        assert_eq!(l.step(900_000, 0.5, 0, 0), 382_500);
        let held: Vec<u64> = (0..7).map(|_| l.step(900_000, 0.5, 0, 0)).collect();
        assert!(held.iter().all(|e| *e == 382_500), "{held:?}");
        assert!(l.step(900_000, 0.6, 0, 0) < 382_500);
    }

    #[test]
    fn moderate_loss_holds_and_random_jitter_below_the_threshold_is_ignored() {
        let mut l = Link::new(1_000_000);
        for _ in 0..20 {
            assert_eq!(l.step(900_000, 0.05, 0, 1_000_000), 1_000_000);
        }
        for i in 0..20 {
            // Jitter of up to 50 ms on the round trip.
            let e = l.step(900_000, 0.0, (i * 17) % 50, 1_000_000);
            assert!(e >= 1_000_000);
        }
    }

    #[test]
    fn growth_is_bounded_by_what_was_sent() {
        let mut l = Link::new(500_000);
        for _ in 0..40 {
            l.step(200_000, 0.0, 0, 0);
        }
        // Sending 40 % of the estimate: it does not grow (nor fall without congestion).
        assert_eq!(l.est.estimate_bps, 500_000);
        // Sending most of it: it grows until what is sent is less than 80 % of it.
        let mut l = Link::new(300_000);
        for _ in 0..40 {
            l.step(280_000, 0.0, 0, 0);
        }
        assert!((350_000..=365_000).contains(&l.est.estimate_bps), "{}", l.est.estimate_bps);
    }

    /// The trial: a subscriber held at the middle layer on a link that has room gets what it
    /// wants after a clean spell; on a link that has none, the trial is undone and the next one
    /// waits twice as long.
    #[test]
    fn trials_reach_for_the_wanted_rate_and_back_off_when_they_fail() {
        let wanted = 1_900_000;
        let mut l = Link::new(2_500_000);
        l.step(1_800_000, 0.0, 0, wanted);
        // Congestion: 1 Mbit/s link.
        let e = l.step(1_800_000, 0.45, 200, wanted);
        assert!(e < 1_000_000, "estimate {e}");
        // Now the SFU sends the middle layer (500 kbit/s), which fits.
        let mut trials = Vec::new();
        let mut t = Duration::ZERO;
        let mut trying = false;
        for _ in 0..(120_000 / STEP.as_millis() as u64) {
            t += STEP;
            let e = l.est.estimate_bps;
            let sent = if e >= wanted { 1_800_000 } else { 500_000 };
            if sent > 1_000_000 && !trying {
                trials.push(t);
            }
            trying = sent > 1_000_000;
            // The 1 Mbit/s link: the high layer overflows it.
            let (loss, queue) = if sent > 1_000_000 { (0.4, 200) } else { (0.0, 0) };
            l.step(sent, loss, queue, wanted);
        }
        let gaps: Vec<u64> = trials.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert!(trials.len() >= 3, "trials at {trials:?}");
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "gaps between trials grow: {gaps:?}");
        assert!(*gaps.last().expect("several trials") >= 16, "gaps {gaps:?}");

        // A link with room: the first trial stands.
        let mut l = Link::new(2_500_000);
        l.step(1_800_000, 0.0, 0, wanted);
        l.step(1_800_000, 0.45, 200, wanted);
        let mut reached = None;
        for i in 0..20 {
            let e = l.est.estimate_bps;
            let sent = if e >= wanted { 1_800_000 } else { 500_000 };
            l.step(sent, 0.0, 0, wanted);
            if e >= wanted && reached.is_none() {
                reached = Some(i);
            }
        }
        assert!(reached.is_some_and(|i| i <= 6), "reached at step {reached:?}");
        assert!(l.est.estimate_bps >= wanted);
    }

    /// A link that carries the middle layer with little to spare: a failed trial of the top
    /// layer takes the estimate below the middle one, whose trial then stands. That success
    /// must not bring the next trial of the top layer back at the shortest wait: in a browser
    /// each failed trial of the top layer froze the picture for up to ~3 s.
    #[test]
    fn a_lower_step_standing_does_not_reset_the_back_off_of_the_step_above() {
        const LAYERS: [u64; 3] = [150_000, 500_000, 1_500_000];
        const LINK: u64 = 560_000;
        let mut l = Link::new(2_000_000);
        l.step(1_500_000, 0.0, 0, 0);
        let mut top_trials = Vec::new();
        let mut middle_stood = 0;
        let mut t = Duration::ZERO;
        let mut sent_before = 0;
        for _ in 0..(180_000 / STEP.as_millis() as u64) {
            t += STEP;
            let e = l.est.estimate_bps;
            // The allocator: the best layer the estimate covers, and one step up from it.
            let sent = LAYERS.iter().copied().filter(|r| *r <= e).max().unwrap_or(LAYERS[0]);
            let step_up = LAYERS.iter().copied().find(|r| *r > sent).map_or(0, |r| r * 5 / 4);
            if sent == LAYERS[2] && sent_before != LAYERS[2] {
                top_trials.push(t.as_secs());
            }
            if sent == LAYERS[1] && sent_before == LAYERS[0] {
                middle_stood += 1;
            }
            sent_before = sent;
            let (loss, queue) = if sent > LINK { (1.0 - LINK as f32 / sent as f32, 200) } else { (0.0, 0) };
            l.step(sent, loss, queue, step_up);
        }
        let gaps: Vec<u64> = top_trials.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(top_trials.len() >= 3, "top-layer trials at {top_trials:?} s");
        assert!(middle_stood >= 2, "the middle layer came back {middle_stood} times");
        assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "gaps between top-layer trials grow: {gaps:?}");
        assert!(*gaps.last().expect("several trials") >= 32, "gaps {gaps:?}");
    }

    /// Congestion that knocks a subscriber off the layer it had settled on is the link failing
    /// that step, as a failed trial would be: the first trial of it after the drop waits like
    /// a second one. And a trial that stands restarts the clean spell, so the next step waits
    /// its turn (in the browser test a top-layer trial began in the very report in which the
    /// middle layer's trial stood, and its failure froze the picture).
    #[test]
    fn a_drop_from_a_settled_layer_backs_off_that_layer_like_a_failed_trial() {
        const LAYERS: [u64; 3] = [150_000, 420_000, 800_000];
        const LINK: u64 = 480_000;
        let mut l = Link::new(2_000_000);
        let mut sent = LAYERS[2];
        for _ in 0..10 {
            l.step(sent, 0.0, 0, 0);
        }
        let mut top_trials = Vec::new();
        let mut middle_at = None;
        let mut t = Duration::ZERO;
        for _ in 0..(40_000 / STEP.as_millis() as u64) {
            let (loss, queue) = if sent > LINK { (1.0 - LINK as f32 / sent as f32, 200) } else { (0.0, 0) };
            let step_up = LAYERS.iter().copied().find(|r| *r > sent).map_or(0, |r| r * 5 / 4);
            let e = l.step(sent, loss, queue, step_up);
            t += STEP;
            let now_sent = LAYERS.iter().copied().filter(|r| *r <= e).max().unwrap_or(LAYERS[0]);
            if now_sent == LAYERS[2] && sent != LAYERS[2] {
                top_trials.push(t.as_millis() as u64);
            }
            if now_sent == LAYERS[1] && sent != LAYERS[1] && middle_at.is_none() {
                middle_at = Some(t.as_millis() as u64);
            }
            sent = now_sent;
        }
        let middle_at = middle_at.expect("the middle layer fits the link");
        let first_top = *top_trials.first().expect("the top layer is tried again");
        assert!(
            first_top >= middle_at + 2 * TRIAL_WAIT_MIN_MS,
            "top tried at {top_trials:?} ms, middle settled at {middle_at} ms"
        );
        assert!(top_trials.len() <= 3, "top-layer trials in 40 s at {top_trials:?} ms");
    }

    /// A failed trial goes back to where it started: the loss window still holds the rate
    /// from before the trial, so the back-off alone would leave the estimate above what the
    /// link had carried.
    #[test]
    fn a_failed_trial_goes_back_to_where_it_started() {
        let mut l = Link::new(400_000);
        for _ in 0..3 {
            l.step(380_000, 0.0, 0, 1_000_000);
        }
        let before = l.est.estimate_bps;
        assert!(before < 1_000_000 && l.est.trial.is_none(), "{before}");
        // The clean spell (2 s) has passed: the next report starts a trial.
        assert_eq!(l.step(380_000, 0.0, 0, 1_000_000), 1_000_000);
        let from = l.est.trial.expect("a trial").from_bps;
        assert!(from >= before);
        // The switch happened; the queue fills at once (no loss yet).
        let e = l.step(1_000_000, 0.0, 150, 1_000_000);
        assert!(e <= from, "estimate {e} after a trial from {from}");
        assert!(l.est.trial.is_none());
    }

    /// Ceilings are per step: a lower step failing and then standing (the link narrowed for a
    /// while) leaves the higher step's back-off as it was.
    #[test]
    fn each_failed_step_keeps_its_own_back_off() {
        let mut e = Estimator::new(1_000_000, Instant::now());
        let (top, middle) = (1_900_000, 650_000);
        e.trial_wait_ms = 4_000;
        e.trial_failed(top);
        e.trial_failed(top * 95 / 100); // the same step, its rate wobbling
        assert_eq!(e.trial_wait_for(top), 8_000);
        e.trial_failed(middle);
        assert_eq!(e.trial_wait_for(middle), 4_000);
        assert_eq!(e.trial_wait_for(top), 8_000, "a higher step waits for the lower ceilings too");
        e.trial_wait_ms = TRIAL_WAIT_MIN_MS;
        e.trial_stood(middle);
        assert_eq!(e.trial_wait_for(middle), TRIAL_WAIT_MIN_MS);
        assert_eq!(e.trial_wait_for(top), 8_000);
        e.trial_stood(top);
        assert_eq!(e.trial_wait_for(top), TRIAL_WAIT_MIN_MS);
        // Bounded.
        for i in 0..10 {
            e.trial_failed(100_000 << i);
        }
        assert_eq!(e.ceilings.len(), CEILINGS_MAX);
    }

    #[test]
    fn the_estimate_stays_within_its_bounds() {
        let mut l = Link::new(10);
        assert_eq!(l.est.estimate_bps, ESTIMATE_MIN_BPS);
        assert_eq!(l.step(0, 1.0, 5_000, u64::MAX), ESTIMATE_MIN_BPS);
        let mut l = Link::new(u64::MAX);
        assert_eq!(l.est.estimate_bps, ESTIMATE_MAX_BPS);
        l.step(u64::MAX / 4, 0.0, 0, u64::MAX);
        assert!(l.est.estimate_bps <= ESTIMATE_MAX_BPS);
        // Counters that go backwards (a new connection) do not underflow.
        l.bytes = 0;
        l.step(0, 0.0, 0, 0);
    }
}
