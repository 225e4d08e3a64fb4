//! Per-subscriber forwarding state: which simulcast layer a subscriber gets, and the rewriting
//! of sequence numbers and timestamps that makes a switch between layers look like one
//! continuous stream to the receiver.

/// LiveKit's video qualities (`VideoQuality`): LOW, MEDIUM, HIGH. Layers are indexed by it.
pub const QUALITY_LOW: u8 = 0;
pub const QUALITY_HIGH: u8 = 2;
/// A subscriber that asked for nothing in particular gets the best layer its bandwidth allows.
pub const QUALITY_ANY: u8 = QUALITY_HIGH;

/// The simulcast layer a `rid` carries. LiveKit's clients name them q(uarter), h(alf), f(ull).
pub fn quality_of_rid(rid: Option<&str>) -> u8 {
    match rid {
        None | Some("f") => QUALITY_HIGH,
        Some("h") => 1,
        Some("q") => QUALITY_LOW,
        // Other names: order unknown; treat them as the top layer so they are used at all.
        Some(_) => QUALITY_HIGH,
    }
}

/// What the allocator knows of one incoming layer of a published track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerState {
    pub quality: u8,
    /// Measured over the last second.
    pub bitrate_bps: u64,
    /// Packets arrived recently (a publisher pauses layers nobody needs, and a congested
    /// publisher drops its top layers).
    pub active: bool,
}

/// The best layer of `layers` for a subscriber that accepts up to `max_quality` within
/// `budget_bps`: the highest active layer that fits, else the lowest active one (a picture at
/// low quality beats a frozen one). `None` if no layer is active.
pub fn pick_layer(layers: &[LayerState], max_quality: u8, budget_bps: u64) -> Option<u8> {
    let mut active: Vec<&LayerState> = layers.iter().filter(|l| l.active).collect();
    active.sort_by_key(|l| l.quality);
    let lowest = active.first()?.quality;
    let fitting = active
        .iter()
        .filter(|l| l.quality <= max_quality && l.bitrate_bps <= budget_bps)
        .map(|l| l.quality)
        .max();
    Some(fitting.unwrap_or(lowest))
}

/// A subscription keeps the layer it is on while that layer's rate is within this share of the
/// budget left (in percent): layer rates wobble with every keyframe, and a switch costs the
/// subscriber a keyframe, so a layer just at the edge would otherwise flap. Congestion lowers
/// the estimate by far more than this.
pub const STAY_TOLERANCE_PERCENT: u64 = 110;

/// Splits a subscriber's estimated bandwidth across its video subscriptions, most important
/// first (the caller orders them: screen shares, then larger requested sizes): each gets the
/// best layer that fits what is left, or keeps its `current` layer within
/// [`STAY_TOLERANCE_PERCENT`]. Returns the chosen quality per subscription.
pub fn allocate(
    subscriptions: &[(&[LayerState], u8)],
    current: &[Option<u8>],
    budget_bps: u64,
) -> Vec<Option<u8>> {
    let mut left = budget_bps;
    subscriptions
        .iter()
        .enumerate()
        .map(|(i, (layers, max_quality))| {
            let mut chosen = pick_layer(layers, *max_quality, left)?;
            let stay = current.get(i).copied().flatten().and_then(|q| {
                let l = layers.iter().find(|l| l.quality == q && l.active && q <= *max_quality)?;
                (q > chosen && l.bitrate_bps * 100 <= left.saturating_mul(STAY_TOLERANCE_PERCENT))
                    .then_some(q)
            });
            if let Some(q) = stay {
                chosen = q;
            }
            let cost = layers.iter().find(|l| l.quality == chosen).map_or(0, |l| l.bitrate_bps);
            left = left.saturating_sub(cost);
            Some(chosen)
        })
        .collect()
}

/// Maps the sequence numbers and timestamps of whichever source layer is being forwarded onto
/// one outgoing stream. Within a source the offsets stay fixed, so upstream loss stays visible
/// as a gap (the subscriber NACKs it and the retransmission fills it); at a switch the new
/// source continues right after the last packet sent.
#[derive(Debug, Default)]
pub struct Rewriter {
    source: Option<u8>,
    seq_offset: u64,
    ts_offset: u32,
    /// The first incoming sequence number of the current source: older packets (reordered from
    /// before the switch) would land before the switch point and are dropped.
    switch_seq: u64,
    last_out_seq: u64,
    last_out_ts: u32,
    last_out_at_ms: u64,
    sent_any: bool,
}

impl Rewriter {
    /// Where a packet goes out, or `None` if it must be dropped. `switch` is true for the
    /// first packet (a keyframe) of a new source; `clock_rate` turns the time since the last
    /// packet into a timestamp step so that the receiver's jitter buffer stays sane.
    pub fn rewrite(
        &mut self,
        source: u8,
        in_seq: u64,
        in_ts: u32,
        now_ms: u64,
        clock_rate: u32,
        switch: bool,
    ) -> Option<(u64, u32)> {
        if switch || self.source.is_none() {
            let out_seq = if self.sent_any { self.last_out_seq + 1 } else { 1 };
            let out_ts = if self.sent_any {
                let elapsed = now_ms.saturating_sub(self.last_out_at_ms).max(1);
                let step =
                    u32::try_from(elapsed.saturating_mul(u64::from(clock_rate)) / 1000).unwrap_or(u32::MAX);
                self.last_out_ts.wrapping_add(step.max(1))
            } else {
                in_ts
            };
            self.source = Some(source);
            self.seq_offset = out_seq.wrapping_sub(in_seq);
            self.ts_offset = out_ts.wrapping_sub(in_ts);
            self.switch_seq = in_seq;
        } else if self.source != Some(source) || in_seq < self.switch_seq {
            return None;
        }
        let out_seq = in_seq.wrapping_add(self.seq_offset);
        let out_ts = in_ts.wrapping_add(self.ts_offset);
        if !self.sent_any || out_seq > self.last_out_seq {
            self.last_out_seq = out_seq;
            self.last_out_ts = out_ts;
            self.last_out_at_ms = now_ms;
        }
        self.sent_any = true;
        Some((out_seq, out_ts))
    }

    pub fn source(&self) -> Option<u8> {
        self.source
    }

    /// Forwarding stops for a while (the subscriber disabled the track): the next packet
    /// forwarded starts a new source, at a keyframe, right after the last packet sent.
    pub fn pause(&mut self) {
        self.source = None;
    }
}

/// Keeps VP8's picture IDs, TL0PICIDX and KEYIDX continuous across layer switches, as the
/// rewriter does for sequence numbers: each simulcast layer counts on its own, and a receiver
/// that sees the picture ID jump backwards after a switch may hold frames as "too old" and
/// freeze (libwebrtc's VP8 reference finder tracks frames by picture ID).
#[derive(Debug, Default)]
pub struct Vp8Munger {
    pid_offset: u16,
    tl0_offset: u8,
    key_offset: u8,
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
    last_key: Option<u8>,
}

/// 15-bit picture IDs, as browsers send them.
const PID_MODULUS: u16 = 1 << 15;
const KEYIDX_MODULUS: u8 = 1 << 5;

impl Vp8Munger {
    /// The outgoing picture ID, TL0PICIDX and KEYIDX for a packet whose descriptor carries
    /// these incoming values; `switch` for the first packet of a new source (a keyframe).
    pub fn munge(
        &mut self,
        switch: bool,
        pid: Option<u16>,
        tl0: Option<u8>,
        key: Option<u8>,
    ) -> (Option<u16>, Option<u8>, Option<u8>) {
        if switch {
            if let (Some(p), Some(last)) = (pid, self.last_pid) {
                let next = (last + 1) % PID_MODULUS;
                self.pid_offset = next.wrapping_sub(p % PID_MODULUS) % PID_MODULUS;
            }
            if let (Some(t), Some(last)) = (tl0, self.last_tl0) {
                self.tl0_offset = last.wrapping_add(1).wrapping_sub(t);
            }
            if let (Some(k), Some(last)) = (key, self.last_key) {
                self.key_offset = (last + 1).wrapping_sub(k) % KEYIDX_MODULUS;
            }
        }
        let pid = pid.map(|p| (p % PID_MODULUS + self.pid_offset) % PID_MODULUS);
        let tl0 = tl0.map(|t| t.wrapping_add(self.tl0_offset));
        let key = key.map(|k| (k + self.key_offset) % KEYIDX_MODULUS);
        // Remember the newest values (reordered older packets must not pull them back).
        if let Some(p) = pid
            && self.last_pid.is_none_or(|last| (p.wrapping_sub(last) % PID_MODULUS) < PID_MODULUS / 2)
        {
            self.last_pid = Some(p);
        }
        if let Some(t) = tl0
            && self.last_tl0.is_none_or(|last| t.wrapping_sub(last) < 128)
        {
            self.last_tl0 = Some(t);
        }
        if let Some(k) = key {
            self.last_key = Some(k);
        }
        (pid, tl0, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(rates: &[(u8, u64, bool)]) -> Vec<LayerState> {
        rates
            .iter()
            .map(|&(quality, bitrate_bps, active)| LayerState { quality, bitrate_bps, active })
            .collect()
    }

    #[test]
    fn picks_the_best_layer_that_fits() {
        let l = layers(&[(0, 150_000, true), (1, 500_000, true), (2, 1_500_000, true)]);
        assert_eq!(pick_layer(&l, QUALITY_ANY, 10_000_000), Some(2));
        assert_eq!(pick_layer(&l, QUALITY_ANY, 1_000_000), Some(1));
        assert_eq!(pick_layer(&l, QUALITY_LOW, 10_000_000), Some(0));
        // Nothing fits: the lowest layer rather than nothing.
        assert_eq!(pick_layer(&l, QUALITY_ANY, 10_000), Some(0));
        // Inactive layers are skipped.
        let l = layers(&[(0, 150_000, true), (1, 500_000, false), (2, 1_500_000, true)]);
        assert_eq!(pick_layer(&l, 1, 10_000_000), Some(0));
        assert_eq!(pick_layer(&layers(&[(0, 1, false)]), QUALITY_ANY, 10), None);
    }

    #[test]
    fn allocation_serves_the_first_subscription_first() {
        let a = layers(&[(0, 150_000, true), (2, 1_500_000, true)]);
        let b = layers(&[(0, 150_000, true), (2, 1_500_000, true)]);
        let got = allocate(&[(&a, QUALITY_ANY), (&b, QUALITY_ANY)], &[], 2_000_000);
        assert_eq!(got, vec![Some(2), Some(0)]);
        let got = allocate(&[(&a, QUALITY_ANY), (&b, QUALITY_ANY)], &[], 4_000_000);
        assert_eq!(got, vec![Some(2), Some(2)]);
    }

    #[test]
    fn a_current_layer_stays_within_the_tolerance_but_not_beyond() {
        let a = layers(&[(0, 150_000, true), (1, 500_000, true), (2, 1_500_000, true)]);
        // 1.5 Mbit/s does not fit in 1.4, but it is within 10 % of it: stay.
        assert_eq!(allocate(&[(&a, QUALITY_ANY)], &[Some(2)], 1_400_000), vec![Some(2)]);
        // Going up needs the full rate.
        assert_eq!(allocate(&[(&a, QUALITY_ANY)], &[Some(1)], 1_400_000), vec![Some(1)]);
        // Beyond the tolerance, or above what the subscriber asks for: down.
        assert_eq!(allocate(&[(&a, QUALITY_ANY)], &[Some(2)], 1_300_000), vec![Some(1)]);
        assert_eq!(allocate(&[(&a, 1)], &[Some(2)], 1_400_000), vec![Some(1)]);
    }

    #[test]
    fn vp8_picture_ids_continue_across_a_switch() {
        let mut m = Vp8Munger::default();
        // The first source passes unchanged.
        assert_eq!(m.munge(true, Some(100), Some(7), Some(3)), (Some(100), Some(7), Some(3)));
        assert_eq!(m.munge(false, Some(101), Some(8), Some(3)), (Some(101), Some(8), Some(3)));
        // Another layer counts from elsewhere; after the switch its numbers continue ours.
        assert_eq!(m.munge(true, Some(20_000), Some(200), Some(30)), (Some(102), Some(9), Some(4)));
        assert_eq!(m.munge(false, Some(20_001), Some(201), Some(30)), (Some(103), Some(10), Some(4)));
        // Wrapping at 15 bits and 8 bits.
        let mut m = Vp8Munger::default();
        m.munge(true, Some(32_767), Some(255), Some(31));
        assert_eq!(m.munge(true, Some(5), Some(1), Some(0)), (Some(0), Some(0), Some(0)));
        assert_eq!(m.munge(false, Some(6), Some(2), Some(0)), (Some(1), Some(1), Some(0)));
        // A reordered older packet keeps its own number and does not move the newest back.
        assert_eq!(m.munge(false, Some(5), Some(1), Some(0)), (Some(0), Some(0), Some(0)));
        assert_eq!(m.munge(true, Some(900), None, None), (Some(2), None, None));
    }

    #[test]
    fn a_switch_continues_the_outgoing_stream() {
        let mut r = Rewriter::default();
        assert_eq!(r.rewrite(0, 5000, 90_000, 0, 90_000, true), Some((1, 90_000)));
        assert_eq!(r.rewrite(0, 5001, 93_000, 33, 90_000, false), Some((2, 93_000)));
        // A gap stays a gap (the subscriber NACKs it).
        assert_eq!(r.rewrite(0, 5003, 96_000, 66, 90_000, false), Some((4, 96_000)));
        // The late retransmission fills it.
        assert_eq!(r.rewrite(0, 5002, 93_000, 70, 90_000, false), Some((3, 93_000)));
        // Packets of another layer are dropped until the switch.
        assert_eq!(r.rewrite(2, 100, 1_000, 80, 90_000, false), None);
        let (seq, ts) = r.rewrite(2, 100, 1_000, 100, 90_000, true).unwrap();
        assert_eq!(seq, 5);
        assert_eq!(ts, 96_000 + 34 * 90);
        // Stragglers of the old layer and from before the switch point are dropped.
        assert_eq!(r.rewrite(0, 5004, 99_000, 101, 90_000, false), None);
        assert_eq!(r.rewrite(2, 99, 1_000, 101, 90_000, false), None);
        assert_eq!(r.rewrite(2, 101, 4_000, 133, 90_000, false), Some((6, ts + 3_000)));
    }

    #[test]
    fn a_pause_continues_the_outgoing_stream() {
        let mut r = Rewriter::default();
        assert_eq!(r.rewrite(2, 100, 1_000, 0, 90_000, true), Some((1, 1_000)));
        r.pause();
        assert_eq!(r.source(), None);
        // Packets skipped while paused leave no hole.
        assert_eq!(r.rewrite(2, 160, 91_000, 1_000, 90_000, true), Some((2, 1_000 + 90_000)));
    }
}
