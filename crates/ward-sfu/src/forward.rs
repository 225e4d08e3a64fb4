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

/// Splits a subscriber's estimated bandwidth across its video subscriptions, most important
/// first (the caller orders them: screen shares, then larger requested sizes): each gets the
/// best layer that fits what is left. Returns the chosen quality per subscription.
pub fn allocate(subscriptions: &[(&[LayerState], u8)], budget_bps: u64) -> Vec<Option<u8>> {
    let mut left = budget_bps;
    subscriptions
        .iter()
        .map(|(layers, max_quality)| {
            let chosen = pick_layer(layers, *max_quality, left)?;
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
        let got = allocate(&[(&a, QUALITY_ANY), (&b, QUALITY_ANY)], 2_000_000);
        assert_eq!(got, vec![Some(2), Some(0)]);
        let got = allocate(&[(&a, QUALITY_ANY), (&b, QUALITY_ANY)], 4_000_000);
        assert_eq!(got, vec![Some(2), Some(2)]);
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
