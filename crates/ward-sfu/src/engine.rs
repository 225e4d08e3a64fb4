//! The SFU engine: rooms, participants, and the run loop around their str0m peer connections.
//!
//! Every participant has two peer connections, as in LiveKit: the *publisher* (the client
//! offers, the SFU receives its tracks and data) and the *subscriber* (the SFU offers, the
//! client receives the others' tracks and data). Both run in str0m's RTP mode: packets are
//! forwarded without depacketising, with sequence numbers and timestamps rewritten per
//! subscriber ([`crate::forward::Rewriter`]).

// LiveKit marks fields deprecated once a newer form exists, but the clients in the field
// still send and read the older ones (track layers, simulcast, DTX, stereo, user packets).
#![allow(deprecated)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livekit_protocol as lk;
use lk::signal_request::Message as Req;
use lk::signal_response::Message as Resp;
use prost::Message as _;
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::{Codec, CodecSpec};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor, Vp8Patch};
use str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};

use crate::bwe::{self, Estimator};
use crate::codec::{VideoCodec, starts_keyframe};
use crate::config::{BandwidthEstimator, SfuConfig};
use crate::forward::{
    LayerState, QUALITY_ANY, QUALITY_HIGH, QUALITY_LOW, Rewriter, Vp8Munger, allocate, pick_layer,
    quality_of_rid,
};
use crate::grant::Grant;

/// One signalling connection's participant, as the shell knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

/// What the core asks the shell to do.
#[derive(Debug)]
pub enum Output {
    /// Send a UDP datagram, or with `tcp` one framed packet on the ICE-TCP connection from
    /// `destination` (RFC 4571).
    Transmit { source: SocketAddr, destination: SocketAddr, contents: Vec<u8>, tcp: bool },
    /// Send a signalling message to a participant's WebSocket.
    Signal { to: ParticipantId, message: Box<lk::SignalResponse> },
    /// Close a participant's WebSocket after the signals queued before this.
    Close { to: ParticipantId },
}

/// How the client asked to join (query parameters of `/rtc`).
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub auto_subscribe: bool,
    pub adaptive_stream: bool,
    /// The client's protocol version.
    pub protocol: i32,
}

impl Default for JoinOptions {
    fn default() -> Self {
        Self { auto_subscribe: true, adaptive_stream: false, protocol: 16 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the room is full ({0} participants)")]
    RoomFull(usize),
    #[error("the server is full ({0} participants)")]
    ServerFull(usize),
    #[error("the token does not allow joining a room")]
    NoRoom,
    #[error("no participant {0} to resume in this room")]
    NothingToResume(String),
}

/// Counters since start, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SfuStats {
    pub rooms: u64,
    pub participants: u64,
    pub published_tracks: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_forwarded: u64,
    pub bytes_forwarded: u64,
    pub keyframe_requests_sent: u64,
    pub keyframe_requests_throttled: u64,
    pub layer_switches: u64,
    pub data_packets_forwarded: u64,
    /// NACKs subscribers sent the SFU (it resends from its buffer) and NACKs the SFU sent
    /// publishers (upstream loss).
    pub nacks_received: u64,
    pub nacks_sent: u64,
    /// Mean over participants of the worse direction's packet loss, in per mille.
    pub loss_permille: u64,
    pub bad_signals: u64,
    pub bad_datagrams: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Publisher,
    Subscriber,
}

/// How often str0m reports loss and NACK counts per connection.
const STATS_INTERVAL_MS: u64 = 2_000;
/// How often a subscriber connection's statistics feed Ward's bandwidth estimator.
const ESTIMATOR_REPORT_INTERVAL_MS: u64 = 500;
/// How often publishers are reminded of the bitrate cap (REMB must be repeated).
const REMB_INTERVAL_MS: u64 = 1_000;
/// A subscriber connection's resend buffer for a video stream, as str0m sets it up (packets,
/// age, and the share of resends above which queued ones are dropped); restated for the
/// buffer that replaces it when the estimate drops a layer (see `allocate_layers`).
const VIDEO_RESEND_PACKETS_MAX: usize = 1000;
const VIDEO_RESEND_MAX_AGE_MS: u64 = 3_000;
const VIDEO_RESEND_RATIO_CAP: f32 = 0.15;
/// After the bandwidth forced a subscriber to a lower layer, this long before it goes up again.
const UPGRADE_HOLD_MS: u64 = 3_000;
/// How often rooms are looked after: speakers, layer allocation, timers.
const HOUSEKEEPING_INTERVAL_MS: u64 = 250;
/// Connection quality is reported this often.
const QUALITY_INTERVAL_MS: u64 = 5_000;
/// A simulcast layer without packets for this long counts as paused by the publisher.
const LAYER_IDLE_MS: u64 = 1_500;
/// A subscriber waiting this long for a keyframe asks again (the first request may be lost).
const KEYFRAME_RETRY_MS: u64 = 1_000;
/// Audio louder than this (dBov) counts as speech.
const SPEECH_THRESHOLD_DBOV: f32 = -50.0;
/// The bandwidth a subscriber is assumed to have before the estimator knows better.
const INITIAL_BWE_BPS: u64 = 2_500_000;
/// Signalling requests a participant may send: a sustained rate and a burst (a client resizing
/// many video tiles sends a burst of track settings). Beyond that, requests are dropped.
const SIGNAL_RATE_PER_S: f64 = 50.0;
const SIGNAL_BURST: f64 = 500.0;
/// Track IDs considered from one subscription or track-settings request.
const MAX_TRACKS_PER_REQUEST: usize = 256;
/// m-lines in one publisher offer (clients keep a few spare transceivers besides their tracks;
/// LiveKit's Rust SDK sends about 16).
const MAX_MEDIA_LINES: usize = 64;
/// How long the first subscriber offer waits after the join response.
const FIRST_OFFER_DELAY_MS: u64 = 150;
/// Remote addresses remembered per participant (a client uses one or two per connection; more
/// means addresses that changed, and the oldest knowledge is the least useful).
const ROUTES_PER_PARTICIPANT_MAX: usize = 16;
/// Dynacast: a simulcast layer nobody needs any more is switched off at the publisher only
/// after this long (tiles that change size back and forth would otherwise restart its encoder
/// each time); a layer someone needs is switched on at once.
const DYNACAST_LAYER_OFF_DELAY_MS: u64 = 3_000;
/// The largest signalling message (one protobuf `SignalRequest`, e.g. an SDP offer) accepted.
pub const MAX_SIGNAL_BYTES: usize = 1024 * 1024;

struct LayerRx {
    quality: u8,
    bytes_window: u64,
    bitrate_bps: u64,
    last_packet_at: Option<Instant>,
    last_keyframe_request: Option<Instant>,
}

struct PubTrack {
    info: lk::TrackInfo,
    cid: String,
    kind: MediaKind,
    mid: Option<Mid>,
    codec: VideoCodec,
    /// The first packet told the negotiated codec, and `info.mime_type` says it.
    mime_confirmed: bool,
    clock_rate: u32,
    layers: Vec<LayerRx>,
    subscribers: Vec<ParticipantId>,
    /// Dynacast: the highest simulcast layer the publisher was told to send (`None`: not told,
    /// so it sends all), and since when fewer would do.
    layers_on: Option<u8>,
    fewer_layers_since: Option<Instant>,
}

impl PubTrack {
    fn layer_states(&self, now: Instant) -> Vec<LayerState> {
        self.layers
            .iter()
            .map(|l| LayerState {
                quality: l.quality,
                bitrate_bps: l.bitrate_bps,
                active: l
                    .last_packet_at
                    .is_some_and(|t| now.duration_since(t) < Duration::from_millis(LAYER_IDLE_MS)),
            })
            .collect()
    }

    fn layer_mut(&mut self, quality: u8) -> &mut LayerRx {
        if let Some(i) = self.layers.iter().position(|l| l.quality == quality) {
            return &mut self.layers[i];
        }
        self.layers.push(LayerRx {
            quality,
            bytes_window: 0,
            bitrate_bps: 0,
            last_packet_at: None,
            last_keyframe_request: None,
        });
        let last = self.layers.len() - 1;
        &mut self.layers[last]
    }
}

struct DownTrack {
    track_sid: String,
    publisher: ParticipantId,
    kind: MediaKind,
    mid: Option<Mid>,
    /// `mid` is being negotiated and will be stopped when that completes.
    removed: bool,
    /// The offer that stops `mid` went out; its answer ends the downtrack.
    stop_offered: bool,
    disabled: bool,
    max_quality: u8,
    /// The layer the allocator chose; the rewriter switches to it at its next keyframe.
    target: Option<u8>,
    waiting_since: Option<Instant>,
    rewriter: Rewriter,
    vp8: Vp8Munger,
    /// When the bandwidth last forced a lower layer: going back up waits
    /// `UPGRADE_HOLD_MS`, so that a probing estimate does not swing the picture between
    /// layers (each swing costs a keyframe).
    bandwidth_downgrade_at: Option<Instant>,
    pt_map: Vec<(Pt, Pt)>,
    /// Larger requested sizes get bandwidth first.
    requested_pixels: u32,
    screen: bool,
}

struct Participant {
    sid: String,
    grant: Grant,
    room: String,
    joined_unix_ms: i64,
    version: u32,
    options: JoinOptions,
    publisher: Rtc,
    subscriber: Rtc,
    pub_deadline: Instant,
    sub_deadline: Instant,
    /// RTP was written to the subscriber connection since its last timeout round (it is in
    /// [`Sfu::written`]). str0m only sends a written packet after a timeout round has stamped
    /// it, so the drain runs that round before polling instead of polling twice (the poll is
    /// the costlier half: it walks ICE, DTLS and SCTP each time).
    sub_written: bool,
    tracks: Vec<PubTrack>,
    mid_to_cid: HashMap<String, String>,
    signal_budget: f64,
    signal_budget_at: Instant,
    /// Clients ping every `ping_interval_s`; one silent for three ping timeouts is gone (a
    /// half-open connection the shell cannot notice) and handled like a dropped connection.
    last_signal_at: Instant,
    /// Whether the client's last offer sends on each m-line (`sendonly`/`sendrecv`). Clients
    /// keep receive-only transceivers on the publisher connection that carry no track.
    client_sends: HashMap<String, bool>,
    downtracks: Vec<DownTrack>,
    sub_pending: Option<SdpPendingOffer>,
    /// The outstanding subscriber offer as sent: a client that resumes may have lost it with
    /// its connection, and negotiation waits for its answer.
    sub_pending_sdp: Option<String>,
    sub_needs_offer: bool,
    sub_offer_id: u32,
    /// The first subscriber offer waits a moment after the join response: livekit-client drops
    /// an offer that arrives before it has set up its peer connections.
    first_offer_at: Option<Instant>,
    sub_channels: HashMap<ChannelId, bool>,
    sub_channels_added: bool,
    pub_channels: HashMap<ChannelId, bool>,
    /// The signalling connection dropped at this time; the participant waits for a resume.
    signal_lost_at: Option<Instant>,
    /// The subscriber's downlink estimate, from str0m's estimator or Ward's.
    bwe_bps: u64,
    estimator: Estimator,
    /// What one step up needs (see [`bwe::Report::step_up_bps`]); Ward's estimator tries it.
    step_up_bps: u64,
    /// The budget and the estimate the last layer allocation had.
    last_budget_bps: u64,
    last_estimate_bps: u64,
    /// Loudest audio level (dBov) in the current speaker window.
    speech_dbov: Option<f32>,
    speaking: bool,
    /// Loss reported by str0m's peer statistics: what the publisher connection lost on the way
    /// in, what the subscriber connection lost on the way out.
    pub_loss: f32,
    sub_loss: f32,
    /// Last cumulative NACK counts per stream, to turn str0m's totals into increments.
    nack_totals: HashMap<(Side, Mid, Option<str0m::media::Rid>), u64>,
    /// The connections' own ICE usernames as indexed in [`Sfu::ufrags`] (they change when the
    /// client restarts ICE).
    pub_ufrag: String,
    sub_ufrag: String,
    /// Entries this participant added to [`Sfu::routes`] since they were last cleared.
    routes_held: usize,
    alive: bool,
}

impl Participant {
    fn rtc(&mut self, side: Side) -> &mut Rtc {
        match side {
            Side::Publisher => &mut self.publisher,
            Side::Subscriber => &mut self.subscriber,
        }
    }

    fn published(&self) -> impl Iterator<Item = &PubTrack> {
        self.tracks.iter().filter(|t| t.mid.is_some())
    }

    fn info(&self) -> lk::ParticipantInfo {
        let g = &self.grant;
        lk::ParticipantInfo {
            sid: self.sid.clone(),
            identity: g.identity.clone(),
            state: if self.alive {
                lk::participant_info::State::Active
            } else {
                lk::participant_info::State::Disconnected
            } as i32,
            tracks: self.published().map(|t| t.info.clone()).collect(),
            metadata: g.metadata.clone(),
            joined_at: self.joined_unix_ms / 1000,
            joined_at_ms: self.joined_unix_ms,
            name: g.name.clone(),
            version: self.version,
            permission: Some(lk::ParticipantPermission {
                can_subscribe: g.can_subscribe,
                can_publish: g.can_publish,
                can_publish_data: g.can_publish_data,
                can_publish_sources: g
                    .can_publish_sources
                    .iter()
                    .filter_map(|s| source_from_name(s))
                    .collect(),
                hidden: g.hidden,
                can_update_metadata: g.can_update_own_metadata,
                ..Default::default()
            }),
            is_publisher: self.published().next().is_some(),
            ..Default::default()
        }
    }
}

struct Room {
    /// Set by the room service's CreateRoom; the configured defaults otherwise.
    max_participants: Option<usize>,
    empty_timeout_ms: Option<u64>,
    metadata: String,
    sid: String,
    created_unix_ms: i64,
    members: Vec<ParticipantId>,
    empty_since: Option<Instant>,
    speakers: Vec<(String, bool)>,
}

/// The SFU: feed it signals, datagrams and time; drain [`Output`]s.
pub struct Sfu {
    cfg: SfuConfig,
    start: Instant,
    start_unix_ms: i64,
    id_state: u64,
    next_pid: u64,
    rooms: HashMap<String, Room>,
    participants: HashMap<ParticipantId, Participant>,
    /// Which peer connection a remote address belongs to (saves asking every connection).
    routes: HashMap<(Protocol, SocketAddr), (ParticipantId, Side)>,
    /// Which peer connection an ICE username (our side's ufrag) belongs to: a connectivity
    /// check from a new address finds its connection here, and nothing else from an unknown
    /// address is looked at, so junk sent to the media port costs the same however many
    /// participants there are.
    ufrags: HashMap<String, (ParticipantId, Side)>,
    dirty: Vec<(ParticipantId, Side)>,
    /// Subscriber connections with RTP written since their last timeout round, in the order
    /// first written. They send in [`Sfu::poll_output`], not at once: the shell reads a batch
    /// of datagrams before it polls, and a connection written by several of them then pays
    /// one timeout round and one poll for all (a round and a poll walk every part of str0m;
    /// they cost more than the packet). Each entry's `sub_written` flag is set.
    written: Vec<ParticipantId>,
    /// The latest time any input brought (the timeout round of deferred sends runs at it).
    now: Instant,
    out: VecDeque<Output>,
    next_housekeeping: Instant,
    next_quality: Instant,
    next_remb: Instant,
    stats: SfuStats,
}

impl Sfu {
    pub fn new(cfg: SfuConfig, now: Instant, unix_ms: i64) -> Self {
        Self {
            id_state: cfg.id_seed,
            cfg,
            start: now,
            start_unix_ms: unix_ms,
            next_pid: 1,
            rooms: HashMap::new(),
            participants: HashMap::new(),
            routes: HashMap::new(),
            ufrags: HashMap::new(),
            dirty: Vec::new(),
            written: Vec::new(),
            now,
            out: VecDeque::new(),
            next_housekeeping: now + Duration::from_millis(HOUSEKEEPING_INTERVAL_MS),
            next_quality: now + Duration::from_millis(QUALITY_INTERVAL_MS),
            next_remb: now,
            stats: SfuStats::default(),
        }
    }

    pub fn config(&self) -> &SfuConfig {
        &self.cfg
    }

    pub fn stats(&self) -> SfuStats {
        SfuStats {
            rooms: self.rooms.len() as u64,
            participants: self.participants.len() as u64,
            published_tracks: self.participants.values().map(|p| p.published().count() as u64).sum(),
            loss_permille: if self.participants.is_empty() {
                0
            } else {
                let sum: f32 = self.participants.values().map(|p| p.pub_loss.max(p.sub_loss)).sum();
                (sum / self.participants.len() as f32 * 1000.0).round() as u64
            },
            ..self.stats
        }
    }

    /// The participant's `sid` (LiveKit's `PA_…`), if it is still here.
    pub fn participant_sid(&self, id: ParticipantId) -> Option<&str> {
        self.participants.get(&id).map(|p| p.sid.as_str())
    }

    /// The next thing for the shell to do. Media written by the inputs since the last call
    /// leaves here, so a shell that has several datagrams at hand hands them all in first.
    pub fn poll_output(&mut self) -> Option<Output> {
        while self.out.is_empty() && !self.written.is_empty() {
            self.send_written();
        }
        self.out.pop_front()
    }

    /// When [`Sfu::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Instant {
        if !self.written.is_empty() {
            return self.now;
        }
        self.participants
            .values()
            .flat_map(|p| [Some(p.pub_deadline), Some(p.sub_deadline), p.first_offer_at])
            .flatten()
            .chain([self.next_housekeeping])
            .min()
            .unwrap_or(self.next_housekeeping)
    }

    fn unix_ms(&self, now: Instant) -> i64 {
        self.start_unix_ms
            + i64::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(i64::MAX)
    }

    fn new_id(&mut self, prefix: &str) -> String {
        // splitmix64: well-distributed IDs from a seeded counter, so tests repeat.
        self.id_state = self.id_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.id_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut s = String::from(prefix);
        for _ in 0..12 {
            s.push(char::from(ALPHABET[(z % 62) as usize]));
            z /= 62;
        }
        s
    }

    fn new_rtc(&self, now: Instant, side: Side) -> Rtc {
        let str0m_estimates = self.cfg.bandwidth_estimator == BandwidthEstimator::Str0m;
        let ward_estimates = !str0m_estimates && side == Side::Subscriber;
        let stats_interval_ms = if ward_estimates { ESTIMATOR_REPORT_INTERVAL_MS } else { STATS_INTERVAL_MS };
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            // Without an estimator str0m sends without pacing, but still keeps the TWCC record
            // of what it sent, which Ward's estimator reads through the statistics.
            .enable_bwe(str0m_estimates.then_some(Bitrate::bps(INITIAL_BWE_BPS)))
            .set_stats_interval(Some(Duration::from_millis(stats_interval_ms)))
            .build(now);
        match Candidate::host(self.cfg.public_addr, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => {
                tracing::error!(addr = %self.cfg.public_addr, error = %e, "unusable public address for ICE")
            }
        }
        if let Some(addr) = self.cfg.tcp_public_addr {
            // Passive: clients connect to the SFU's TCP port. ICE prefers UDP by priority, so
            // TCP carries media only where UDP does not get through.
            match Candidate::builder().tcp().host(addr).tcptype(TcpType::Passive).build() {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::error!(%addr, error = %e, "unusable public address for ICE-TCP"),
            }
        }
        rtc
    }

    // ----------------------------------------------------------------------------------------
    // Joining and leaving
    // ----------------------------------------------------------------------------------------

    /// A client connected with a valid token. Queues the join response.
    pub fn join(
        &mut self,
        now: Instant,
        grant: Grant,
        options: JoinOptions,
    ) -> Result<ParticipantId, JoinError> {
        if grant.room.is_empty() {
            return Err(JoinError::NoRoom);
        }
        if self.participants.len() >= self.cfg.max_participants {
            return Err(JoinError::ServerFull(self.cfg.max_participants));
        }
        // The same identity joining again replaces the old connection (a reloaded page).
        let duplicate = self.rooms.get(&grant.room).and_then(|r| {
            r.members
                .iter()
                .copied()
                .find(|m| self.participants.get(m).is_some_and(|p| p.grant.identity == grant.identity))
        });
        if let Some(old) = duplicate {
            self.send(old, leave_message(lk::DisconnectReason::DuplicateIdentity, false));
            self.remove_participant(now, old);
        }
        let (members, limit) =
            self.rooms.get(&grant.room).map_or((0, self.cfg.max_participants_per_room), |r| {
                (r.members.len(), r.max_participants.unwrap_or(self.cfg.max_participants_per_room))
            });
        if members >= limit {
            return Err(JoinError::RoomFull(limit));
        }

        let id = ParticipantId(self.next_pid);
        self.next_pid += 1;
        let sid = self.new_id("PA_");
        if !self.rooms.contains_key(&grant.room) {
            let room_sid = self.new_id("RM_");
            let created_unix_ms = self.unix_ms(now);
            self.rooms.insert(
                grant.room.clone(),
                Room {
                    sid: room_sid,
                    created_unix_ms,
                    members: Vec::new(),
                    empty_since: None,
                    speakers: Vec::new(),
                    max_participants: None,
                    empty_timeout_ms: None,
                    metadata: String::new(),
                },
            );
        }
        let participant = Participant {
            sid,
            room: grant.room.clone(),
            grant,
            joined_unix_ms: self.unix_ms(now),
            version: 1,
            options,
            publisher: self.new_rtc(now, Side::Publisher),
            subscriber: self.new_rtc(now, Side::Subscriber),
            pub_deadline: now,
            sub_deadline: now,
            sub_written: false,
            tracks: Vec::new(),
            mid_to_cid: HashMap::new(),
            signal_budget: SIGNAL_BURST,
            signal_budget_at: now,
            last_signal_at: now,
            client_sends: HashMap::new(),
            downtracks: Vec::new(),
            sub_pending: None,
            sub_pending_sdp: None,
            sub_needs_offer: true,
            sub_offer_id: 0,
            first_offer_at: Some(now + Duration::from_millis(FIRST_OFFER_DELAY_MS)),
            sub_channels: HashMap::new(),
            sub_channels_added: false,
            pub_channels: HashMap::new(),
            signal_lost_at: None,
            bwe_bps: INITIAL_BWE_BPS,
            estimator: Estimator::new(INITIAL_BWE_BPS, now),
            step_up_bps: 0,
            last_budget_bps: 0,
            last_estimate_bps: 0,
            speech_dbov: None,
            speaking: false,
            pub_loss: 0.0,
            sub_loss: 0.0,
            nack_totals: HashMap::new(),
            pub_ufrag: String::new(),
            sub_ufrag: String::new(),
            routes_held: 0,
            alive: true,
        };
        let room_name = participant.room.clone();
        let hidden = participant.grant.hidden;
        let info = participant.info();
        self.participants.insert(id, participant);
        self.index_ice(id);
        let room = self.rooms.get_mut(&room_name).expect("created above");
        room.members.push(id);
        room.empty_since = None;

        let join = self.join_response(id);
        self.send(id, Resp::Join(join));
        if !hidden {
            self.broadcast(
                &room_name,
                Some(id),
                Resp::Update(lk::ParticipantUpdate { participants: vec![info] }),
            );
        }
        self.auto_subscribe_existing(now, id);
        self.negotiate_subscriber(now, id);
        self.drain(now);
        tracing::info!(room = %room_name, participant = %self.participants[&id].sid, "participant joined");
        Ok(id)
    }

    /// A client reconnects its signalling after a drop (`reconnect=1&sid=PA_…`): the same
    /// participant continues with its peer connections.
    pub fn resume(&mut self, now: Instant, grant: &Grant, sid: &str) -> Result<ParticipantId, JoinError> {
        let found = self.rooms.get(&grant.room).and_then(|r| {
            r.members.iter().copied().find(|m| {
                self.participants.get(m).is_some_and(|p| p.sid == sid && p.grant.identity == grant.identity)
            })
        });
        let Some(id) = found else {
            return Err(JoinError::NothingToResume(sid.to_owned()));
        };
        if let Some(p) = self.participants.get_mut(&id) {
            p.signal_lost_at = None;
            p.last_signal_at = now;
        }
        self.send(
            id,
            Resp::Reconnect(lk::ReconnectResponse {
                ice_servers: Vec::new(),
                client_configuration: None,
                server_info: Some(self.server_info()),
                last_message_seq: 0,
            }),
        );
        // A fresh offer lets the client restart ICE on the subscriber if it needs to. One that
        // is still outstanding may have been lost with the old connection: it goes again, as
        // it was (clients answer a repeated offer like any other), and the fresh one follows
        // its answer.
        if let Some(p) = self.participants.get_mut(&id) {
            p.sub_needs_offer = true;
            if let Some(sdp) = p.sub_pending_sdp.clone() {
                let offer_id = p.sub_offer_id;
                self.send_subscriber_offer(id, sdp, offer_id);
            }
        }
        self.negotiate_subscriber(now, id);
        self.drain(now);
        Ok(id)
    }

    fn server_info(&self) -> lk::ServerInfo {
        lk::ServerInfo {
            edition: lk::server_info::Edition::Standard as i32,
            version: self.cfg.server_version.clone(),
            protocol: 16,
            region: String::new(),
            node_id: self.cfg.node_id.clone(),
            debug_info: String::new(),
            agent_protocol: 0,
        }
    }

    fn room_info(&self, name: &str) -> lk::Room {
        let room = &self.rooms[name];
        let visible =
            room.members.iter().filter_map(|m| self.participants.get(m)).filter(|p| !p.grant.hidden);
        let (mut num_participants, mut num_publishers) = (0, 0);
        for p in visible {
            num_participants += 1;
            if p.published().next().is_some() {
                num_publishers += 1;
            }
        }
        lk::Room {
            sid: room.sid.clone(),
            name: name.to_owned(),
            empty_timeout: u32::try_from(
                room.empty_timeout_ms.unwrap_or(self.cfg.empty_room_timeout_ms) / 1000,
            )
            .unwrap_or(u32::MAX),
            max_participants: u32::try_from(
                room.max_participants.unwrap_or(self.cfg.max_participants_per_room),
            )
            .unwrap_or(u32::MAX),
            metadata: room.metadata.clone(),
            creation_time: room.created_unix_ms / 1000,
            creation_time_ms: room.created_unix_ms,
            num_participants,
            num_publishers,
            enabled_codecs: enabled_codecs(),
            ..Default::default()
        }
    }

    fn join_response(&self, id: ParticipantId) -> lk::JoinResponse {
        let p = &self.participants[&id];
        let others = self.rooms[&p.room]
            .members
            .iter()
            .filter(|m| **m != id)
            .filter_map(|m| self.participants.get(m))
            .filter(|o| !o.grant.hidden)
            .map(|o| o.info())
            .collect();
        lk::JoinResponse {
            room: Some(self.room_info(&p.room)),
            participant: Some(p.info()),
            other_participants: others,
            server_version: self.cfg.server_version.clone(),
            ice_servers: Vec::new(),
            subscriber_primary: true,
            ping_timeout: i32::try_from(self.cfg.ping_timeout_s).unwrap_or(i32::MAX),
            ping_interval: i32::try_from(self.cfg.ping_interval_s).unwrap_or(i32::MAX),
            server_info: Some(self.server_info()),
            // livekit-client then rejoins fully after a signalling drop instead of resuming;
            // the LiveKit Rust SDK resumes (see `Sfu::resume`).
            client_configuration: Some(lk::ClientConfiguration {
                resume_connection: lk::ClientConfigSetting::Disabled as i32,
                ..Default::default()
            }),
            enabled_publish_codecs: enabled_codecs(),
            ..Default::default()
        }
    }

    /// The signalling connection closed. The participant stays for the reconnect window
    /// unless it left on purpose.
    pub fn signal_closed(&mut self, now: Instant, id: ParticipantId) {
        if let Some(p) = self.participants.get_mut(&id) {
            p.signal_lost_at = Some(now);
            // No offer goes to a closed connection; a resume sends a fresh one. (A first-offer
            // deadline left in the past would wake the loop over and over.)
            p.first_offer_at = None;
            p.sub_needs_offer = true;
        }
    }

    fn remove_participant(&mut self, now: Instant, id: ParticipantId) {
        let Some(mut p) = self.participants.remove(&id) else { return };
        p.alive = false;
        p.version += 1;
        p.publisher.disconnect();
        p.subscriber.disconnect();
        self.routes.retain(|_, (pid, _)| *pid != id);
        self.ufrags.remove(&p.pub_ufrag);
        self.ufrags.remove(&p.sub_ufrag);
        self.dirty.retain(|(pid, _)| *pid != id);
        self.written.retain(|pid| *pid != id);
        if let Some(room) = self.rooms.get_mut(&p.room) {
            room.members.retain(|m| *m != id);
            if room.members.is_empty() {
                room.empty_since = Some(now);
            }
        }
        // Its tracks leave every subscriber; its subscriptions leave every publisher.
        for track in &p.tracks {
            for sub in &track.subscribers {
                self.drop_downtrack(now, *sub, &track.info.sid);
            }
        }
        for dt in &p.downtracks {
            if let Some(publisher) = self.participants.get_mut(&dt.publisher) {
                for t in publisher.tracks.iter_mut().filter(|t| t.info.sid == dt.track_sid) {
                    t.subscribers.retain(|s| *s != id);
                }
            }
        }
        if !p.grant.hidden {
            let info = p.info();
            self.broadcast(&p.room, None, Resp::Update(lk::ParticipantUpdate { participants: vec![info] }));
        }
        self.out.push_back(Output::Close { to: id });
        tracing::info!(room = %p.room, participant = %p.sid, "participant left");
    }

    // ----------------------------------------------------------------------------------------
    // Signalling
    // ----------------------------------------------------------------------------------------

    /// A binary WebSocket message from a participant: a protobuf `SignalRequest`. Garbage is
    /// counted and dropped; it never affects anyone else.
    pub fn handle_signal_bytes(&mut self, now: Instant, id: ParticipantId, bytes: &[u8]) {
        match lk::SignalRequest::decode(bytes) {
            Ok(req) => self.handle_signal(now, id, req),
            Err(e) => {
                self.stats.bad_signals += 1;
                tracing::debug!(error = %e, "undecodable signal request");
            }
        }
    }

    pub fn handle_signal(&mut self, now: Instant, id: ParticipantId, req: lk::SignalRequest) {
        let Some(p) = self.participants.get_mut(&id) else { return };
        p.last_signal_at = now;
        // A token bucket per participant: a client flooding requests (each mute toggle is
        // broadcast to the whole room) must not drown the others' signalling queues.
        let refill = now.saturating_duration_since(p.signal_budget_at).as_secs_f64() * SIGNAL_RATE_PER_S;
        p.signal_budget = (p.signal_budget + refill).min(SIGNAL_BURST);
        p.signal_budget_at = now;
        if p.signal_budget < 1.0 {
            self.stats.bad_signals += 1;
            return;
        }
        p.signal_budget -= 1.0;
        let Some(message) = req.message else { return };
        match message {
            Req::Offer(sd) => self.on_publisher_offer(now, id, sd),
            Req::Answer(sd) => self.on_subscriber_answer(now, id, sd),
            Req::Trickle(_) => {
                // ICE-lite: the SFU answers connectivity checks from whatever address the
                // client's candidates turn out to be; it never sends to candidates it is told.
            }
            Req::AddTrack(req) => self.on_add_track(now, id, req),
            Req::Mute(m) => self.on_mute(id, m),
            Req::Subscription(s) => self.on_update_subscription(now, id, s),
            Req::TrackSetting(s) => self.on_track_settings(now, id, s),
            Req::Leave(_) => self.remove_participant(now, id),
            Req::Ping(ts) => self.send(id, Resp::Pong(ts)),
            Req::PingReq(ping) => {
                let timestamp = self.unix_ms(now);
                self.send(id, Resp::PongResp(lk::Pong { last_ping_timestamp: ping.timestamp, timestamp }));
            }
            Req::UpdateMetadata(m) => self.on_update_metadata(id, m),
            Req::SubscriptionPermission(_) | Req::SyncState(_) | Req::UpdateLayers(_) | Req::Simulate(_) => {}
            _ => {}
        }
        self.drain(now);
    }

    fn send(&mut self, to: ParticipantId, message: Resp) {
        self.out.push_back(Output::Signal {
            to,
            message: Box::new(lk::SignalResponse { message: Some(message) }),
        });
    }

    fn broadcast(&mut self, room: &str, except: Option<ParticipantId>, message: Resp) {
        let Some(r) = self.rooms.get(room) else { return };
        let targets: Vec<ParticipantId> = r.members.iter().copied().filter(|m| Some(*m) != except).collect();
        for t in targets {
            self.send(t, message.clone());
        }
    }

    fn on_publisher_offer(&mut self, now: Instant, id: ParticipantId, sd: lk::SessionDescription) {
        let offer = match SdpOffer::from_sdp_string(&sd.sdp) {
            Ok(o) => o,
            Err(e) => {
                self.stats.bad_signals += 1;
                tracing::debug!(error = %e, "unparseable publisher offer");
                return;
            }
        };
        let lines = sdp_media_lines(&sd.sdp);
        if lines.len() > MAX_MEDIA_LINES {
            self.stats.bad_signals += 1;
            tracing::debug!(lines = lines.len(), "publisher offer with too many m-lines refused");
            return;
        }
        let Some(p) = self.participants.get_mut(&id) else { return };
        // Every offer describes all m-lines; what an earlier one said is replaced.
        p.mid_to_cid.clear();
        p.client_sends.clear();
        for line in lines {
            if let Some(track) = line.track {
                p.mid_to_cid.insert(line.mid.clone(), track);
            }
            p.client_sends.insert(line.mid, line.client_sends);
        }
        p.mid_to_cid.extend(sd.mid_to_track_id.clone());
        let answer: SdpAnswer = match p.publisher.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                self.stats.bad_signals += 1;
                tracing::debug!(error = %e, "publisher offer refused");
                return;
            }
        };
        self.send(
            id,
            Resp::Answer(lk::SessionDescription {
                r#type: "answer".into(),
                sdp: answer.to_sdp_string(),
                id: sd.id,
                ..Default::default()
            }),
        );
        // An offer with new ICE credentials restarts ICE, which gives our side a new ufrag.
        self.index_ice(id);
        self.mark(id, Side::Publisher);
        let _ = now;
    }

    fn on_subscriber_answer(&mut self, now: Instant, id: ParticipantId, sd: lk::SessionDescription) {
        let Some(p) = self.participants.get_mut(&id) else { return };
        let Some(pending) = p.sub_pending.take() else {
            tracing::debug!("subscriber answer without an offer");
            return;
        };
        p.sub_pending_sdp = None;
        let answer = match SdpAnswer::from_sdp_string(&sd.sdp) {
            Ok(a) => a,
            Err(e) => {
                self.stats.bad_signals += 1;
                tracing::debug!(error = %e, "unparseable subscriber answer");
                // The offer stays outstanding in the client's eyes; offer again.
                p.sub_needs_offer = true;
                self.negotiate_subscriber(now, id);
                return;
            }
        };
        if let Err(e) = p.subscriber.sdp_api().accept_answer(pending, answer) {
            self.stats.bad_signals += 1;
            tracing::debug!(error = %e, "subscriber answer refused");
            p.sub_needs_offer = true;
        }
        // Stopped media are gone for good once negotiated.
        // Only stops that were in the answered offer are done; later ones go in the next offer.
        p.downtracks.retain(|d| !(d.removed && d.stop_offered));
        self.index_ice(id);
        self.mark(id, Side::Subscriber);
        self.negotiate_subscriber(now, id);
    }

    fn on_add_track(&mut self, now: Instant, id: ParticipantId, req: lk::AddTrackRequest) {
        let max_tracks = self.cfg.max_tracks_per_participant;
        let sid = self.new_id("TR_");
        let Some(p) = self.participants.get_mut(&id) else { return };
        let source = lk::TrackSource::try_from(req.source).unwrap_or(lk::TrackSource::Unknown);
        let refusal = if !p.grant.can_publish {
            Some((lk::request_response::Reason::NotAllowed, "the token does not allow publishing".to_owned()))
        } else if !source_allowed(&p.grant, source) {
            Some((
                lk::request_response::Reason::NotAllowed,
                format!("the token does not allow publishing {}", source.as_str_name().to_lowercase()),
            ))
        } else if p.tracks.len() >= max_tracks {
            Some((
                lk::request_response::Reason::LimitExceeded,
                format!("at most {max_tracks} tracks per participant"),
            ))
        } else if req.cid.is_empty() || p.tracks.iter().any(|t| t.cid == req.cid) {
            Some((
                lk::request_response::Reason::InvalidRequest,
                "the track needs a new client id (cid)".to_owned(),
            ))
        } else {
            None
        };
        if let Some((reason, message)) = refusal {
            tracing::info!(participant = %p.sid, %message, "publish refused");
            self.send(
                id,
                Resp::RequestResponse(lk::RequestResponse {
                    request_id: 0,
                    reason: reason as i32,
                    message,
                    request: Some(lk::request_response::Request::AddTrack(req)),
                }),
            );
            return;
        }
        let kind =
            if req.r#type == lk::TrackType::Video as i32 { MediaKind::Video } else { MediaKind::Audio };
        let simulcast_layers: Vec<lk::VideoLayer> = req
            .simulcast_codecs
            .iter()
            .find(|c| !c.layers.is_empty())
            .map(|c| c.layers.clone())
            .unwrap_or_else(|| req.layers.clone());
        let mut info = lk::TrackInfo {
            sid: sid.clone(),
            r#type: req.r#type,
            name: req.name.clone(),
            muted: req.muted,
            width: req.width,
            height: req.height,
            simulcast: simulcast_layers.len() > 1,
            disable_dtx: req.disable_dtx,
            source: req.source,
            layers: simulcast_layers,
            stereo: req.stereo,
            disable_red: req.disable_red,
            encryption: req.encryption,
            stream: req.stream.clone(),
            ..Default::default()
        };
        // Known before the first packet, so that subscribers can set up their end-to-end
        // decryption (livekit-client refuses to without it); confirmed by the first packet.
        set_mime(&mut info, announced_mime(&req, kind), &req.cid);
        p.tracks.push(PubTrack {
            info: info.clone(),
            cid: req.cid.clone(),
            kind,
            mid: None,
            codec: VideoCodec::Other,
            mime_confirmed: false,
            clock_rate: if kind == MediaKind::Video { 90_000 } else { 48_000 },
            layers: Vec::new(),
            subscribers: Vec::new(),
            layers_on: None,
            fewer_layers_since: None,
        });
        self.send(id, Resp::TrackPublished(lk::TrackPublishedResponse { cid: req.cid, track: Some(info) }));
        let _ = now;
    }

    fn on_mute(&mut self, id: ParticipantId, m: lk::MuteTrackRequest) {
        let Some(p) = self.participants.get_mut(&id) else { return };
        let Some(t) = p.tracks.iter_mut().find(|t| t.info.sid == m.sid) else { return };
        if t.info.muted == m.muted {
            return;
        }
        t.info.muted = m.muted;
        p.version += 1;
        let (room, hidden, info) = (p.room.clone(), p.grant.hidden, p.info());
        if !hidden {
            self.broadcast(&room, Some(id), Resp::Update(lk::ParticipantUpdate { participants: vec![info] }));
        }
    }

    fn on_update_metadata(&mut self, id: ParticipantId, m: lk::UpdateParticipantMetadata) {
        let Some(p) = self.participants.get_mut(&id) else { return };
        let request_id = m.request_id;
        if !p.grant.can_update_own_metadata {
            self.send(
                id,
                Resp::RequestResponse(lk::RequestResponse {
                    request_id,
                    reason: lk::request_response::Reason::NotAllowed as i32,
                    message: "the token does not allow changing your own name or metadata".into(),
                    request: Some(lk::request_response::Request::UpdateMetadata(m)),
                }),
            );
            return;
        }
        if !m.name.is_empty() {
            p.grant.name = m.name;
        }
        if !m.metadata.is_empty() {
            p.grant.metadata = m.metadata;
        }
        p.version += 1;
        let (room, info) = (p.room.clone(), p.info());
        self.send(
            id,
            Resp::RequestResponse(lk::RequestResponse {
                request_id,
                reason: lk::request_response::Reason::Ok as i32,
                ..Default::default()
            }),
        );
        self.broadcast(&room, None, Resp::Update(lk::ParticipantUpdate { participants: vec![info] }));
    }

    fn on_update_subscription(&mut self, now: Instant, id: ParticipantId, s: lk::UpdateSubscription) {
        let mut sids = s.track_sids;
        sids.extend(s.participant_tracks.into_iter().flat_map(|pt| pt.track_sids));
        sids.truncate(MAX_TRACKS_PER_REQUEST);
        for sid in sids {
            if s.subscribe {
                self.subscribe(now, id, &sid);
            } else {
                self.unsubscribe(now, id, &sid);
            }
        }
        self.negotiate_subscriber(now, id);
    }

    fn on_track_settings(&mut self, now: Instant, id: ParticipantId, s: lk::UpdateTrackSettings) {
        // Requested sizes map onto the layers the publisher announced.
        let mut wanted: Vec<(String, bool, u8, u32)> = Vec::new();
        for sid in s.track_sids.iter().take(MAX_TRACKS_PER_REQUEST) {
            let Some((publisher, _)) = self.find_track(id, sid) else { continue };
            let track = self.participants[&publisher].tracks.iter().find(|t| &t.info.sid == sid);
            let quality = match track {
                Some(t) if s.width > 0 || s.height > 0 => quality_for_size(&t.info.layers, s.width, s.height),
                _ => u8::try_from(s.quality).unwrap_or(QUALITY_HIGH).min(QUALITY_HIGH),
            };
            wanted.push((sid.clone(), s.disabled, quality, s.width.saturating_mul(s.height)));
        }
        let Some(p) = self.participants.get_mut(&id) else { return };
        for (sid, disabled, quality, pixels) in wanted {
            if let Some(dt) = p.downtracks.iter_mut().find(|d| d.track_sid == sid) {
                if disabled && !dt.disabled {
                    // Resuming starts over at a keyframe, without a hole in the sequence.
                    dt.rewriter.pause();
                    dt.waiting_since = None;
                }
                dt.disabled = disabled;
                dt.max_quality = quality;
                dt.requested_pixels = pixels;
            }
        }
        self.allocate_layers(now, id);
    }

    // ----------------------------------------------------------------------------------------
    // Subscriptions
    // ----------------------------------------------------------------------------------------

    /// A track of someone in `id`'s room (a participant only ever deals with those).
    fn find_track(&self, id: ParticipantId, sid: &str) -> Option<(ParticipantId, usize)> {
        let room = self.rooms.get(&self.participants.get(&id)?.room)?;
        room.members.iter().find_map(|m| {
            let p = self.participants.get(m)?;
            p.tracks.iter().position(|t| t.info.sid == sid).map(|i| (*m, i))
        })
    }

    fn auto_subscribe_existing(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.participants.get(&id) else { return };
        if !p.grant.can_subscribe || !p.options.auto_subscribe {
            return;
        }
        let sids: Vec<String> = self.rooms[&p.room]
            .members
            .iter()
            .filter(|m| **m != id)
            .filter_map(|m| self.participants.get(m))
            .flat_map(|o| o.published().map(|t| t.info.sid.clone()))
            .collect();
        for sid in sids {
            self.subscribe(now, id, &sid);
        }
    }

    fn subscribe(&mut self, now: Instant, id: ParticipantId, sid: &str) {
        let Some(sub) = self.participants.get(&id) else { return };
        if !sub.grant.can_subscribe || sub.downtracks.iter().any(|d| d.track_sid == sid && !d.removed) {
            return;
        }
        let Some((publisher, index)) = self.find_track(id, sid) else { return };
        let pub_room = &self.participants[&publisher].room;
        if publisher == id || *pub_room != sub.room {
            return;
        }
        let track = &mut self.participants.get_mut(&publisher).expect("found above").tracks[index];
        if track.mid.is_none() {
            return;
        }
        track.subscribers.push(id);
        let (kind, screen) = (track.kind, track.info.source == lk::TrackSource::ScreenShare as i32);
        let sub = self.participants.get_mut(&id).expect("checked above");
        sub.downtracks.push(DownTrack {
            track_sid: sid.to_owned(),
            publisher,
            kind,
            mid: None,
            removed: false,
            stop_offered: false,
            disabled: false,
            max_quality: QUALITY_ANY,
            target: None,
            waiting_since: None,
            rewriter: Rewriter::default(),
            vp8: Vp8Munger::default(),
            bandwidth_downgrade_at: None,
            pt_map: Vec::new(),
            requested_pixels: 0,
            screen,
        });
        sub.sub_needs_offer = true;
        self.allocate_layers(now, id);
    }

    fn unsubscribe(&mut self, now: Instant, id: ParticipantId, sid: &str) {
        if let Some((publisher, index)) = self.find_track(id, sid)
            && let Some(p) = self.participants.get_mut(&publisher)
        {
            p.tracks[index].subscribers.retain(|s| *s != id);
        }
        self.drop_downtrack(now, id, sid);
    }

    /// Stops sending a track to a subscriber and renegotiates its connection.
    fn drop_downtrack(&mut self, now: Instant, id: ParticipantId, sid: &str) {
        let Some(p) = self.participants.get_mut(&id) else { return };
        let mut changed = false;
        p.downtracks.retain_mut(|d| {
            if d.track_sid != sid || d.removed {
                return true;
            }
            changed = true;
            match d.mid {
                Some(_) => {
                    d.removed = true;
                    true
                }
                None => false,
            }
        });
        if changed {
            p.sub_needs_offer = true;
            self.negotiate_subscriber(now, id);
        }
    }

    /// Sends the subscriber an offer with every change since the last, unless one is
    /// outstanding (then the answer triggers the next).
    fn negotiate_subscriber(&mut self, now: Instant, id: ParticipantId) {
        let Some(p) = self.participants.get(&id) else { return };
        if !p.sub_needs_offer || p.sub_pending.is_some() || p.signal_lost_at.is_some() {
            return;
        }
        if p.first_offer_at.is_some_and(|t| now < t) {
            return;
        }
        // LiveKit clients read the publisher and track from the stream ID `PA_…|TR_…`.
        let publisher_sids: HashMap<ParticipantId, String> = p
            .downtracks
            .iter()
            .filter_map(|d| self.participants.get(&d.publisher).map(|o| (d.publisher, o.sid.clone())))
            .collect();
        let p = self.participants.get_mut(&id).expect("checked above");
        p.first_offer_at = None;
        let mut api = p.subscriber.sdp_api();
        if !p.sub_channels_added {
            // The client expects the SFU's data channels on the subscriber connection.
            api.add_channel_with_config(ChannelConfig {
                label: "_reliable".into(),
                ordered: true,
                reliability: Reliability::Reliable,
                ..Default::default()
            });
            api.add_channel_with_config(ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            });
            p.sub_channels_added = true;
        }
        for dt in p.downtracks.iter_mut() {
            if dt.removed {
                if let Some(mid) = dt.mid {
                    api.stop_media(mid);
                    dt.stop_offered = true;
                }
            } else if dt.mid.is_none() {
                let publisher_sid = publisher_sids.get(&dt.publisher).map_or("", String::as_str);
                let stream_id = format!("{publisher_sid}|{}", dt.track_sid);
                dt.mid = Some(api.add_media(
                    dt.kind,
                    Direction::SendOnly,
                    Some(stream_id),
                    Some(dt.track_sid.clone()),
                    None,
                ));
            }
        }
        p.sub_needs_offer = false;
        let Some((offer, pending)) = api.apply() else { return };
        p.sub_pending = Some(pending);
        p.sub_offer_id += 1;
        let offer_id = p.sub_offer_id;
        let sdp = offer.to_sdp_string();
        p.sub_pending_sdp = Some(sdp.clone());
        self.send_subscriber_offer(id, sdp, offer_id);
        self.mark(id, Side::Subscriber);
        let _ = now;
    }

    fn send_subscriber_offer(&mut self, id: ParticipantId, sdp: String, offer_id: u32) {
        self.send(
            id,
            Resp::Offer(lk::SessionDescription {
                r#type: "offer".into(),
                sdp,
                id: offer_id,
                ..Default::default()
            }),
        );
    }
}

// --------------------------------------------------------------------------------------------
// Datagrams, time, and the peer connections' outputs
// --------------------------------------------------------------------------------------------

impl Sfu {
    /// A UDP datagram arrived. Datagrams nobody expects are dropped.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        self.handle_packet(now, Protocol::Udp, source, destination, data);
    }

    /// One RFC 4571 frame arrived on an ICE-TCP connection from `source`.
    pub fn handle_receive_tcp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.handle_packet(now, Protocol::Tcp, source, destination, data);
    }

    fn handle_packet(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        // The socket's own address (0.0.0.0, or a private address behind NAT) is not what
        // clients sent to: they used the announced candidate, and the ICE agent drops checks
        // addressed to anything but its local candidates. There is one per protocol.
        let destination = match proto {
            Protocol::Tcp => self.cfg.tcp_public_addr.unwrap_or(destination),
            _ => self.cfg.public_addr,
        };
        let Ok(receive) = Receive::new(proto, source, destination, data) else {
            self.stats.bad_datagrams += 1;
            return;
        };
        let input = Input::Receive(now, receive);
        let accepts = |(pid, side): &(ParticipantId, Side)| {
            self.participants.get(pid).is_some_and(|p| match side {
                Side::Publisher => p.publisher.accepts(&input),
                Side::Subscriber => p.subscriber.accepts(&input),
            })
        };
        let route = self.routes.get(&(proto, source)).copied();
        // A connectivity check names its connection by our ufrag, and that decides over the
        // address's route: an address not seen before must start with one (ICE sends checks
        // before anything else, also after an address changes), and a NAT may give a new
        // client the address of one that vanished moments ago, whose connections are still
        // kept for a reconnect. str0m's `accepts` takes everything from a connection's
        // nominated address, checks included, so by the route alone the new client's checks
        // would go to the old connection and the new client would never connect.
        let target = match self.ufrag_owner(data) {
            Some(owner) => Some(owner).filter(accepts),
            None => route.filter(accepts),
        };
        let Some((pid, side)) = target else {
            self.stats.bad_datagrams += 1;
            return;
        };
        if route != Some((pid, side)) {
            self.remember_route(proto, source, pid, side);
        }
        let p = self.participants.get_mut(&pid).expect("found above");
        if let Err(e) = p.rtc(side).handle_input(input) {
            tracing::debug!(error = %e, "datagram refused");
            self.stats.bad_datagrams += 1;
        }
        self.mark(pid, side);
        self.drain(now);
    }

    /// The connection a STUN message is addressed to, by the username's first half (ours).
    fn ufrag_owner(&self, data: &[u8]) -> Option<(ParticipantId, Side)> {
        // RFC 7983: STUN packets start with 0–3.
        if data.first().is_none_or(|b| *b > 3) {
            return None;
        }
        let message = str0m::ice::StunMessage::parse(data).ok()?;
        let (ours, _) = message.split_username()?;
        self.ufrags.get(ours).copied()
    }

    fn remember_route(&mut self, proto: Protocol, source: SocketAddr, pid: ParticipantId, side: Side) {
        let Some(p) = self.participants.get_mut(&pid) else { return };
        if p.routes_held >= ROUTES_PER_PARTICIPANT_MAX {
            // Forgetting is harmless: the next check from a live address routes it again.
            p.routes_held = 0;
            self.routes.retain(|_, (owner, _)| *owner != pid);
        }
        p.routes_held += 1;
        self.routes.insert((proto, source), (pid, side));
    }

    /// Keeps [`Sfu::ufrags`] in step with the participant's connections.
    fn index_ice(&mut self, pid: ParticipantId) {
        let Some(p) = self.participants.get_mut(&pid) else { return };
        for side in [Side::Publisher, Side::Subscriber] {
            let ufrag = p.rtc(side).direct_api().local_ice_credentials().ufrag;
            let held = match side {
                Side::Publisher => &mut p.pub_ufrag,
                Side::Subscriber => &mut p.sub_ufrag,
            };
            if *held != ufrag {
                self.ufrags.remove(held.as_str());
                self.ufrags.insert(ufrag.clone(), (pid, side));
                *held = ufrag;
            }
        }
    }

    /// Time passed: drives the peer connections' timers and the SFU's own.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<(ParticipantId, Side)> = self
            .participants
            .iter()
            .flat_map(|(pid, p)| {
                [
                    (p.pub_deadline <= now).then_some((*pid, Side::Publisher)),
                    (p.sub_deadline <= now).then_some((*pid, Side::Subscriber)),
                ]
            })
            .flatten()
            .collect();
        for (pid, side) in due {
            if let Some(p) = self.participants.get_mut(&pid)
                && let Err(e) = p.rtc(side).handle_input(Input::Timeout(now))
            {
                tracing::debug!(error = %e, "peer connection timer failed");
            }
            self.mark(pid, side);
        }
        let first_offers: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.first_offer_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in first_offers {
            self.negotiate_subscriber(now, id);
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + Duration::from_millis(HOUSEKEEPING_INTERVAL_MS);
            self.housekeeping(now);
        }
        self.drain(now);
        self.send_written();
    }

    /// Runs the timeout round that lets str0m send what was written, on every written
    /// subscriber connection, and polls them.
    fn send_written(&mut self) {
        // `drain` leaves `dirty` empty, so the written connections need no de-duplication.
        let written = std::mem::take(&mut self.written);
        self.dirty.extend(written.into_iter().rev().map(|pid| (pid, Side::Subscriber)));
        self.drain(self.now);
    }

    fn mark(&mut self, pid: ParticipantId, side: Side) {
        if !self.dirty.contains(&(pid, side)) {
            self.dirty.push((pid, side));
        }
    }

    /// Polls every connection that got input until each is waiting for time again; events
    /// may hand work to other connections, which are then polled too.
    fn drain(&mut self, now: Instant) {
        self.now = self.now.max(now);
        while let Some((pid, side)) = self.dirty.pop() {
            let mut events = Vec::new();
            let Some(p) = self.participants.get_mut(&pid) else { continue };
            let local = self.cfg.local_addr;
            let tcp_local = self.cfg.tcp_local_addr;
            if side == Side::Subscriber
                && std::mem::take(&mut p.sub_written)
                && let Err(e) = p.subscriber.handle_input(Input::Timeout(now))
            {
                tracing::debug!(error = %e, "peer connection timer failed");
            }
            loop {
                let rtc = p.rtc(side);
                if !rtc.is_alive() {
                    break;
                }
                match rtc.poll_output() {
                    Ok(RtcOutput::Timeout(t)) => {
                        match side {
                            Side::Publisher => p.pub_deadline = t,
                            Side::Subscriber => p.sub_deadline = t,
                        }
                        break;
                    }
                    Ok(RtcOutput::Transmit(t)) => {
                        let tcp = t.proto == Protocol::Tcp;
                        let source = if tcp { tcp_local.unwrap_or(local) } else { local };
                        self.out.push_back(Output::Transmit {
                            source,
                            destination: t.destination,
                            contents: t.contents.into(),
                            tcp,
                        });
                    }
                    Ok(RtcOutput::Event(e)) => events.push(e),
                    Err(e) => {
                        tracing::debug!(error = %e, "peer connection failed");
                        rtc.disconnect();
                        break;
                    }
                }
            }
            // A dead connection wakes nobody.
            let p = self.participants.get_mut(&pid).expect("polled above");
            if !p.rtc(side).is_alive() {
                let never = now + Duration::from_secs(3600);
                match side {
                    Side::Publisher => p.pub_deadline = never,
                    Side::Subscriber => p.sub_deadline = never,
                }
            }
            for e in events {
                self.on_event(now, pid, side, e);
            }
        }
    }

    fn on_event(&mut self, now: Instant, pid: ParticipantId, side: Side, event: Event) {
        match (side, event) {
            (Side::Publisher, Event::RtpPacket(packet)) => self.forward_rtp(now, pid, packet),
            (Side::Publisher, Event::MediaAdded(m)) if self.client_sends(pid, m.mid) => {
                self.on_media_added(now, pid, m.mid, m.kind)
            }
            (Side::Publisher, Event::MediaChanged(m)) => {
                let kind =
                    self.participants.get_mut(&pid).and_then(|p| p.publisher.media(m.mid).map(|x| x.kind()));
                match kind {
                    Some(kind) if self.client_sends(pid, m.mid) => self.on_media_added(now, pid, m.mid, kind),
                    // Clients unpublish by renegotiating without the track; there is no message.
                    _ => self.unpublish_mid(now, pid, m.mid),
                }
            }
            (side, Event::ChannelOpen(cid, label)) => {
                let reliable = label != "_lossy";
                if let Some(p) = self.participants.get_mut(&pid) {
                    match side {
                        Side::Publisher => p.pub_channels.insert(cid, reliable),
                        Side::Subscriber => p.sub_channels.insert(cid, reliable),
                    };
                }
            }
            (Side::Publisher, Event::ChannelData(d)) => {
                let reliable = self
                    .participants
                    .get(&pid)
                    .and_then(|p| p.pub_channels.get(&d.id).copied())
                    .unwrap_or(true);
                self.forward_data(now, pid, reliable, &d.data);
            }
            (Side::Subscriber, Event::KeyframeRequest(k)) => {
                let Some(p) = self.participants.get(&pid) else { return };
                let Some(dt) = p.downtracks.iter().find(|d| d.mid == Some(k.mid)) else { return };
                let (publisher, sid) = (dt.publisher, dt.track_sid.clone());
                let quality = dt.rewriter.source().or(dt.target);
                if let Some(q) = quality {
                    self.request_keyframe(now, publisher, &sid, q, k.kind);
                }
            }
            (Side::Subscriber, Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })) => {
                if let Some(p) = self.participants.get_mut(&pid) {
                    p.bwe_bps = estimate.as_u64();
                }
            }
            (side, Event::PeerStats(stats)) => {
                let ward_estimates = self.cfg.bandwidth_estimator == BandwidthEstimator::Ward;
                if let Some(p) = self.participants.get_mut(&pid) {
                    match side {
                        Side::Publisher => p.pub_loss = stats.ingress_loss_fraction.unwrap_or(0.0),
                        Side::Subscriber => {
                            p.sub_loss = stats.egress_loss_fraction.unwrap_or(0.0);
                            if ward_estimates {
                                let report = bwe::Report {
                                    bytes_sent: stats.peer_bytes_tx,
                                    loss: stats.egress_loss_fraction,
                                    rtt: stats.rtt,
                                    step_up_bps: p.step_up_bps,
                                };
                                let before = p.bwe_bps;
                                p.bwe_bps = p.estimator.report(now, report);
                                if p.bwe_bps != before {
                                    tracing::debug!(
                                        participant = %p.sid, from = before, to = p.bwe_bps,
                                        loss = ?stats.egress_loss_fraction, rtt = ?stats.rtt,
                                        "bandwidth estimate"
                                    );
                                }
                            }
                        }
                    }
                }
            }
            (side, Event::MediaEgressStats(stats)) => {
                let added = self.nack_increment(pid, side, stats.mid, stats.rid, stats.nacks);
                self.stats.nacks_received += added;
            }
            (side, Event::MediaIngressStats(stats)) => {
                let added = self.nack_increment(pid, side, stats.mid, stats.rid, stats.nacks);
                self.stats.nacks_sent += added;
            }
            (_, Event::IceConnectionStateChange(state)) => {
                tracing::debug!(?side, ?state, "ICE state");
            }
            _ => {}
        }
    }

    fn nack_increment(
        &mut self,
        pid: ParticipantId,
        side: Side,
        mid: Mid,
        rid: Option<str0m::media::Rid>,
        total: u64,
    ) -> u64 {
        let Some(p) = self.participants.get_mut(&pid) else { return 0 };
        let last = p.nack_totals.insert((side, mid, rid), total).unwrap_or(0);
        total.saturating_sub(last)
    }

    // ----------------------------------------------------------------------------------------
    // Publishing
    // ----------------------------------------------------------------------------------------

    fn client_sends(&self, pid: ParticipantId, mid: Mid) -> bool {
        self.participants
            .get(&pid)
            .and_then(|p| p.client_sends.get(&mid.to_string()))
            .copied()
            .unwrap_or(false)
    }

    fn on_media_added(&mut self, now: Instant, pid: ParticipantId, mid: Mid, kind: MediaKind) {
        let Some(p) = self.participants.get_mut(&pid) else { return };
        if p.tracks.iter().any(|t| t.mid == Some(mid)) {
            return;
        }
        // Match the announced track by the client's track ID in the SDP; an m-line without one
        // falls back to the oldest pending track of the same kind.
        let index = match p.mid_to_cid.get(&mid.to_string()) {
            Some(cid) => {
                // The announced kind must match the m-line's: an "audio" track on a video m-line
                // would slip past source permissions.
                p.tracks
                    .iter()
                    .position(|t| t.mid.is_none() && t.kind == kind && (t.cid == *cid || t.info.sid == *cid))
            }
            None => p.tracks.iter().position(|t| t.mid.is_none() && t.kind == kind),
        };
        let Some(index) = index else {
            tracing::debug!(%mid, "media without an announced track");
            return;
        };
        let track = &mut p.tracks[index];
        track.mid = Some(mid);
        track.info.mid = mid.to_string();
        p.version += 1;
        let sid = track.info.sid.clone();
        let (room, hidden, info) = (p.room.clone(), p.grant.hidden, p.info());
        if !hidden {
            self.broadcast(
                &room,
                Some(pid),
                Resp::Update(lk::ParticipantUpdate { participants: vec![info] }),
            );
        }
        // Everyone auto-subscribing gets it.
        let subscribers: Vec<ParticipantId> = self.rooms[&room]
            .members
            .iter()
            .copied()
            .filter(|m| *m != pid)
            .filter(|m| {
                self.participants.get(m).is_some_and(|o| o.options.auto_subscribe && o.grant.can_subscribe)
            })
            .collect();
        for s in subscribers {
            self.subscribe(now, s, &sid);
            self.negotiate_subscriber(now, s);
        }
    }

    fn unpublish_mid(&mut self, now: Instant, pid: ParticipantId, mid: Mid) {
        let Some(p) = self.participants.get_mut(&pid) else { return };
        let Some(index) = p.tracks.iter().position(|t| t.mid == Some(mid)) else { return };
        let track = p.tracks.remove(index);
        p.version += 1;
        let (room, hidden, info) = (p.room.clone(), p.grant.hidden, p.info());
        self.send(
            pid,
            Resp::TrackUnpublished(lk::TrackUnpublishedResponse { track_sid: track.info.sid.clone() }),
        );
        for s in &track.subscribers {
            self.drop_downtrack(now, *s, &track.info.sid);
        }
        if !hidden {
            self.broadcast(
                &room,
                Some(pid),
                Resp::Update(lk::ParticipantUpdate { participants: vec![info] }),
            );
        }
    }

    fn forward_rtp(&mut self, now: Instant, pid: ParticipantId, packet: RtpPacket) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += packet.payload.len() as u64;
        let Some(p) = self.participants.get_mut(&pid) else { return };
        let ssrc = packet.header.ssrc;
        let Some((mid, rid)) = p.publisher.direct_api().stream_rx(&ssrc).map(|s| (s.mid(), s.rid())) else {
            return;
        };
        let pt = packet.header.payload_type;
        let spec = p.publisher.codec_config().find(|c| c.pt() == pt).map(|c| c.spec());
        let Some(track) = p.tracks.iter_mut().find(|t| t.mid == Some(mid)) else {
            return;
        };
        let Some(spec) = spec else {
            tracing::debug!(%pt, "RTP with a payload type that was not negotiated");
            return;
        };
        if track.codec == VideoCodec::Other && track.kind == MediaKind::Video {
            track.codec = match spec.codec {
                Codec::Vp8 => VideoCodec::Vp8,
                Codec::H264 => VideoCodec::H264,
                _ => VideoCodec::Other,
            };
        }
        track.clock_rate = spec.clock_rate.get();
        // The announced type was a guess from the publish request: when the negotiated codec
        // differs (or nothing was announced), everyone is told the real one.
        let mut retyped = false;
        if !track.mime_confirmed {
            track.mime_confirmed = true;
            let mime = mime_of(&spec);
            if track.info.mime_type != mime {
                let cid = track.cid.clone();
                set_mime(&mut track.info, mime, &cid);
                retyped = true;
            }
        }
        let quality =
            if track.kind == MediaKind::Video { quality_of_rid(rid.as_deref()) } else { QUALITY_HIGH };
        let layer = track.layer_mut(quality);
        layer.bytes_window += packet.payload.len() as u64;
        layer.last_packet_at = Some(now);
        let keyframe = track.kind == MediaKind::Video && starts_keyframe(track.codec, &packet.payload);
        let vp8 =
            (track.codec == VideoCodec::Vp8).then(|| Vp8Descriptor::parse(&packet.payload).ok()).flatten();
        let (kind, clock_rate, sid) = (track.kind, track.clock_rate, track.info.sid.clone());
        let subscribers = track.subscribers.clone();
        if kind == MediaKind::Audio
            && let Some(level) = packet.header.ext_vals.audio_level
        {
            let dbov = f32::from(level.min(0));
            p.speech_dbov = Some(p.speech_dbov.map_or(dbov, |l| l.max(dbov)));
        }
        let ext_vals = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let now_ms = u64::try_from(now.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX);
        for s in subscribers {
            let Some(sub) = self.participants.get_mut(&s) else { continue };
            let Some(dt) = sub.downtracks.iter_mut().find(|d| d.track_sid == sid && !d.removed) else {
                continue;
            };
            let Some(out_mid) = dt.mid else { continue };
            if dt.disabled || sub.sub_pending.is_some() && !sub.subscriber.is_connected() {
                continue;
            }
            let switch = if kind == MediaKind::Video {
                let current = dt.rewriter.source();
                let target = dt.target.unwrap_or(quality);
                if quality == target && current != Some(target) {
                    if !keyframe {
                        continue;
                    }
                    true
                } else if current != Some(quality) {
                    continue;
                } else {
                    false
                }
            } else {
                false
            };
            let Some((out_seq, out_ts)) = dt.rewriter.rewrite(
                quality,
                *packet.seq_no,
                packet.header.timestamp,
                now_ms,
                clock_rate,
                switch,
            ) else {
                continue;
            };
            if switch {
                tracing::debug!(track = %sid, layer = quality, "layer switch at a keyframe");
                dt.waiting_since = None;
                self.stats.layer_switches += 1;
            }
            let out_pt = match dt.pt_map.iter().find(|(from, _)| *from == pt) {
                Some((_, to)) => *to,
                None => {
                    let to = sub
                        .subscriber
                        .codec_config()
                        .find(|c| {
                            c.spec().codec == spec.codec
                                && c.spec().clock_rate == spec.clock_rate
                                && format_compatible(&c.spec(), &spec)
                        })
                        .map(|c| c.pt());
                    let Some(to) = to else {
                        continue;
                    };
                    dt.pt_map.push((pt, to));
                    to
                }
            };
            let mut api = sub.subscriber.direct_api();
            let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                continue;
            };
            let mut write = RtpWrite::new(out_pt, out_seq.into(), out_ts, now, packet.payload.clone())
                .marker(packet.header.marker)
                .ext_vals(ext_vals.clone())
                .nackable(kind == MediaKind::Video);
            if let Some(d) = &vp8 {
                let (pid, tl0, key) = dt.vp8.munge(switch, d.picture_id(), d.tl0_pic_idx(), d.key_idx());
                if let Some(patch) = vp8_patch(d, pid, tl0, key) {
                    write = write.vp8_patch(patch);
                }
            }
            tx.write_rtp(write);
            if !std::mem::replace(&mut sub.sub_written, true) {
                self.written.push(s);
            }
            self.stats.packets_forwarded += 1;
            self.stats.bytes_forwarded += packet.payload.len() as u64;
        }
        if retyped && let Some(p) = self.participants.get_mut(&pid) {
            p.version += 1;
            let (room, hidden, info) = (p.room.clone(), p.grant.hidden, p.info());
            if !hidden {
                self.broadcast(
                    &room,
                    Some(pid),
                    Resp::Update(lk::ParticipantUpdate { participants: vec![info] }),
                );
            }
        }
    }

    /// Asks a publisher for a keyframe on one layer, at most once per throttle interval.
    fn request_keyframe(
        &mut self,
        now: Instant,
        publisher: ParticipantId,
        sid: &str,
        quality: u8,
        kind: KeyframeRequestKind,
    ) {
        let min_interval = Duration::from_millis(self.cfg.keyframe_request_min_interval_ms);
        let Some(p) = self.participants.get_mut(&publisher) else { return };
        let Some(track) = p.tracks.iter_mut().find(|t| t.info.sid == sid) else { return };
        let Some(mid) = track.mid else { return };
        let layer = track.layer_mut(quality);
        if layer.last_keyframe_request.is_some_and(|t| now.duration_since(t) < min_interval) {
            self.stats.keyframe_requests_throttled += 1;
            return;
        }
        layer.last_keyframe_request = Some(now);
        let rid = track.info.simulcast.then(|| rid_of_quality(quality));
        let rid = rid.map(str0m::media::Rid::from);
        let mut api = p.publisher.direct_api();
        let Some(rx) = api.stream_rx_by_mid(mid, rid) else { return };
        rx.request_keyframe(kind);
        tracing::debug!(track = %sid, layer = quality, "keyframe requested");
        self.stats.keyframe_requests_sent += 1;
        self.mark(publisher, Side::Publisher);
    }

    // ----------------------------------------------------------------------------------------
    // Data packets
    // ----------------------------------------------------------------------------------------

    fn forward_data(&mut self, now: Instant, from: ParticipantId, reliable: bool, data: &[u8]) {
        if data.len() > self.cfg.max_data_packet_bytes {
            self.stats.bad_signals += 1;
            return;
        }
        let Some(p) = self.participants.get(&from) else { return };
        if !p.grant.can_publish_data {
            return;
        }
        let Ok(mut packet) = lk::DataPacket::decode(data) else {
            self.stats.bad_signals += 1;
            return;
        };
        // Only what participants send each other: active speakers, transcriptions and metrics are
        // the server's (or an agent's) to say, and SIP tones have no place here.
        use lk::data_packet::Value;
        match &packet.value {
            Some(
                Value::User(_)
                | Value::ChatMessage(_)
                | Value::RpcRequest(_)
                | Value::RpcAck(_)
                | Value::RpcResponse(_)
                | Value::StreamHeader(_)
                | Value::StreamChunk(_)
                | Value::StreamTrailer(_)
                | Value::EncryptedPacket(_),
            ) => {}
            _ => {
                self.stats.bad_signals += 1;
                return;
            }
        }
        // The SFU says who sent it; a client cannot speak for someone else.
        packet.participant_identity = p.grant.identity.clone();
        packet.participant_sid = p.sid.clone();
        if let Some(lk::data_packet::Value::User(user)) = packet.value.as_mut() {
            user.participant_identity = p.grant.identity.clone();
            user.participant_sid = p.sid.clone();
        }
        let room = p.room.clone();
        self.deliver_data(&room, Some(from), reliable, packet);
        let _ = now;
    }

    /// Sends a data packet to its `destination_identities` in `room` (everyone if none),
    /// except its sender. Returns how many got it.
    fn deliver_data(
        &mut self,
        room: &str,
        from: Option<ParticipantId>,
        reliable: bool,
        mut packet: lk::DataPacket,
    ) -> usize {
        let destinations = std::mem::take(&mut packet.destination_identities);
        let bytes = packet.encode_to_vec();
        let Some(r) = self.rooms.get(room) else { return 0 };
        let targets: Vec<ParticipantId> = r
            .members
            .iter()
            .copied()
            .filter(|m| Some(*m) != from)
            .filter(|m| {
                destinations.is_empty()
                    || self.participants.get(m).is_some_and(|o| destinations.contains(&o.grant.identity))
            })
            .collect();
        let mut delivered = 0;
        for t in targets {
            let Some(o) = self.participants.get_mut(&t) else { continue };
            let Some(channel) = o.sub_channels.iter().find(|(_, r)| **r == reliable).map(|(c, _)| *c) else {
                continue;
            };
            if let Some(mut ch) = o.subscriber.channel(channel)
                && ch.write(true, &bytes).is_ok()
            {
                self.stats.data_packets_forwarded += 1;
                delivered += 1;
                self.mark(t, Side::Subscriber);
            }
        }
        delivered
    }

    // ----------------------------------------------------------------------------------------
    // Housekeeping: layer choice, speakers, quality, timers
    // ----------------------------------------------------------------------------------------

    /// Tells each publisher the most it may send (REMB, which browsers apply as an upper bound
    /// to their own estimate): `max_bitrate_bps_per_track` for each of its video tracks.
    fn cap_publishers(&mut self) {
        let per_track = self.cfg.max_bitrate_bps_per_track;
        let capped: Vec<ParticipantId> = self
            .participants
            .iter_mut()
            .filter_map(|(pid, p)| {
                let video: Vec<Mid> =
                    p.tracks.iter().filter(|t| t.kind == MediaKind::Video).filter_map(|t| t.mid).collect();
                let first = *video.first()?;
                let cap = Bitrate::bps(per_track.saturating_mul(video.len() as u64));
                let mut api = p.publisher.direct_api();
                // One REMB covers the whole connection; any receiving stream can carry it.
                let ssrc = api.stream_rx_by_mid(first, None).map(|rx| rx.ssrc()).or_else(|| {
                    ["f", "h", "q"].into_iter().find_map(|rid| {
                        api.stream_rx_by_mid(first, Some(str0m::media::Rid::from(rid))).map(|rx| rx.ssrc())
                    })
                })?;
                api.stream_rx(&ssrc)?.request_remb(cap);
                Some(*pid)
            })
            .collect();
        for pid in capped {
            self.mark(pid, Side::Publisher);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        // Bitrates per layer over the last window.
        let window_ms = HOUSEKEEPING_INTERVAL_MS;
        for p in self.participants.values_mut() {
            for t in p.tracks.iter_mut() {
                for l in t.layers.iter_mut() {
                    let bps = l.bytes_window * 8 * 1000 / window_ms;
                    // Smoothed: a single frame burst does not swing the choice.
                    l.bitrate_bps = (l.bitrate_bps * 3 + bps) / 4;
                    l.bytes_window = 0;
                }
            }
        }
        let ids: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for id in &ids {
            self.allocate_layers(now, *id);
        }
        self.dynacast(now);
        self.update_speakers();
        if now >= self.next_remb {
            self.next_remb = now + Duration::from_millis(REMB_INTERVAL_MS);
            self.cap_publishers();
        }
        if now >= self.next_quality {
            self.next_quality = now + Duration::from_millis(QUALITY_INTERVAL_MS);
            self.report_quality();
        }
        // Silent participants count as disconnected (then the reconnect window applies).
        let silence = Duration::from_secs(u64::from(self.cfg.ping_timeout_s) * 3);
        let silent: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.signal_lost_at.is_none() && now.duration_since(p.last_signal_at) >= silence)
            .map(|(id, _)| *id)
            .collect();
        for id in silent {
            tracing::info!(participant = ?id, "no signalling for three ping timeouts; treated as disconnected");
            self.signal_closed(now, id);
        }
        // Participants whose signalling did not come back, and empty rooms.
        let window = Duration::from_millis(self.cfg.reconnect_window_ms);
        let gone: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter(|(_, p)| p.signal_lost_at.is_some_and(|t| now.duration_since(t) >= window))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove_participant(now, id);
        }
        let default_empty = self.cfg.empty_room_timeout_ms;
        self.rooms.retain(|name, r| {
            let empty = Duration::from_millis(r.empty_timeout_ms.unwrap_or(default_empty));
            let keep = !r.members.is_empty() || r.empty_since.is_none_or(|t| now.duration_since(t) < empty);
            if !keep {
                tracing::info!(room = %name, "empty room closed");
            }
            keep
        });
    }

    /// Chooses each video subscription's layer from the subscriber's bandwidth and requested
    /// sizes, and asks publishers for keyframes where a switch waits for one.
    /// Dynacast (as LiveKit's clients call it): publishers of simulcast video are told which
    /// layers anyone watches — the largest size a subscriber asked for, whatever its bandwidth
    /// allows at the moment — so that an upload link does not carry a high layer that nobody
    /// receives. The lowest layer always stays on, so that a new subscriber sees a picture at
    /// once and the estimate has something to measure.
    fn dynacast(&mut self, now: Instant) {
        let mut updates = Vec::new();
        for (pid, p) in &self.participants {
            for t in &p.tracks {
                if t.kind != MediaKind::Video || t.info.layers.len() < 2 {
                    continue;
                }
                let codec = match t.info.mime_type.split_once('/') {
                    Some((_, name)) if !name.is_empty() => name.to_ascii_lowercase(),
                    _ => continue,
                };
                let wanted = t
                    .subscribers
                    .iter()
                    .filter_map(|s| self.participants.get(s))
                    .flat_map(|s| s.downtracks.iter())
                    .filter(|d| d.track_sid == t.info.sid && !d.removed && !d.disabled)
                    .map(|d| d.max_quality)
                    .max()
                    .unwrap_or(QUALITY_LOW);
                updates.push((*pid, t.info.sid.clone(), codec, wanted));
            }
        }
        for (pid, sid, codec, wanted) in updates {
            let Some(t) =
                self.participants.get_mut(&pid).and_then(|p| p.tracks.iter_mut().find(|t| t.info.sid == sid))
            else {
                continue;
            };
            let on = t.layers_on.unwrap_or(QUALITY_HIGH);
            let change = if wanted > on {
                true
            } else if wanted < on {
                let since = *t.fewer_layers_since.get_or_insert(now);
                now.duration_since(since) >= Duration::from_millis(DYNACAST_LAYER_OFF_DELAY_MS)
            } else {
                t.fewer_layers_since = None;
                false
            };
            if !change {
                continue;
            }
            t.layers_on = Some(wanted);
            t.fewer_layers_since = None;
            tracing::debug!(track = %sid, layers_on = wanted, "dynacast");
            let qualities: Vec<lk::SubscribedQuality> =
                [lk::VideoQuality::Low, lk::VideoQuality::Medium, lk::VideoQuality::High]
                    .into_iter()
                    .map(|q| lk::SubscribedQuality {
                        quality: q as i32,
                        enabled: q as i32 <= i32::from(wanted),
                    })
                    .collect();
            self.send(
                pid,
                Resp::SubscribedQualityUpdate(lk::SubscribedQualityUpdate {
                    track_sid: sid,
                    // Deprecated in the protocol, read by clients older than the codec list.
                    subscribed_qualities: qualities.clone(),
                    subscribed_codecs: vec![lk::SubscribedCodec { codec, qualities }],
                }),
            );
        }
    }

    fn allocate_layers(&mut self, now: Instant, id: ParticipantId) {
        let Some(sub) = self.participants.get(&id) else { return };
        let mut order: Vec<usize> = (0..sub.downtracks.len())
            .filter(|i| sub.downtracks[*i].kind == MediaKind::Video && !sub.downtracks[*i].disabled)
            .collect();
        order.sort_by_key(|i| {
            let d = &sub.downtracks[*i];
            (!d.screen, std::cmp::Reverse(d.requested_pixels))
        });
        let layer_sets: Vec<Vec<LayerState>> = order
            .iter()
            .map(|i| {
                let d = &sub.downtracks[*i];
                self.participants
                    .get(&d.publisher)
                    .and_then(|p| p.tracks.iter().find(|t| t.info.sid == d.track_sid))
                    .map(|t| t.layer_states(now))
                    .unwrap_or_default()
            })
            .collect();
        let audio_bps = 64_000 * sub.downtracks.iter().filter(|d| d.kind == MediaKind::Audio).count() as u64;
        let budget = sub.bwe_bps.saturating_sub(audio_bps);
        let requests: Vec<(&[LayerState], u8)> = order
            .iter()
            .zip(&layer_sets)
            .map(|(i, l)| (l.as_slice(), sub.downtracks[*i].max_quality))
            .collect();
        // Layers stay within the tolerance only while the budget holds: a layer whose own rate
        // wobbled up stays, an estimate that fell moves it down.
        let current: Vec<Option<u8>> = if budget >= sub.last_budget_bps {
            order.iter().map(|i| sub.downtracks[*i].target).collect()
        } else {
            Vec::new()
        };
        let chosen = allocate(&requests, &current, budget);
        let mut keyframes = Vec::new();
        let str0m_estimates = self.cfg.bandwidth_estimator == BandwidthEstimator::Str0m;
        if str0m_estimates {
            self.mark(id, Side::Subscriber);
        }
        let sub = self.participants.get_mut(&id).expect("checked above");
        sub.last_budget_bps = budget;
        let estimate_fell = sub.bwe_bps < std::mem::replace(&mut sub.last_estimate_bps, sub.bwe_bps);
        if str0m_estimates {
            // What the subscriber would take with bandwidth to spare: str0m probes up to it (it
            // never probes without a desired rate, so an estimate that dropped once would keep
            // the subscriber on low layers for good).
            let wanted_bps: u64 = requests
                .iter()
                .map(|(layers, max_quality)| {
                    let usable = layers.iter().filter(|l| l.active && l.quality <= *max_quality);
                    usable.map(|l| l.bitrate_bps).max().unwrap_or(0)
                })
                .sum();
            sub.subscriber.bwe().set_bitrate(Bitrate::ZERO, Bitrate::bps((audio_bps + wanted_bps) * 5 / 4));
        } else {
            // Ward's estimator tries one step up at a time.
            sub.step_up_bps = step_up(&requests, &chosen, audio_bps).unwrap_or(0);
        }
        let unconstrained: Vec<Option<u8>> =
            requests.iter().map(|(layers, max_quality)| pick_layer(layers, *max_quality, u64::MAX)).collect();
        let mut shed_mids = Vec::new();
        for ((i, target), free) in order.iter().zip(chosen).zip(unconstrained) {
            let d = &mut sub.downtracks[*i];
            if target.is_none() {
                continue;
            }
            let bandwidth_limited = target < free;
            let going_up = d.target.is_some_and(|current| target > Some(current));
            let holding = d
                .bandwidth_downgrade_at
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(UPGRADE_HOLD_MS));
            if going_up && holding {
                continue;
            }
            if d.target.is_some_and(|current| target < Some(current)) && bandwidth_limited {
                d.bandwidth_downgrade_at = Some(now);
            }
            if d.target != target {
                tracing::debug!(track = %d.track_sid, from = ?d.target, to = ?target, bandwidth_limited, "layer target");
                d.target = target;
                // The estimate fell below the layer being forwarded: it stops now, not at the
                // lower layer's keyframe. Its frames are being lost in the congested queue
                // anyway, and each packet more would wait there ahead of the keyframe the viewer
                // needs (behind a tight cap the queue drains only at what the link has left
                // over the lower layer: seconds of frozen picture in a browser). A switch for
                // any other reason (a smaller window, the budget shared with another video)
                // keeps the old layer until the new one can be decoded.
                if estimate_fell && bandwidth_limited && d.rewriter.source() > target {
                    d.rewriter.pause();
                    shed_mids.extend(d.mid);
                }
            }
            let needs_switch = d.rewriter.source() != d.target;
            if needs_switch {
                let retry = d
                    .waiting_since
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_millis(KEYFRAME_RETRY_MS));
                if retry {
                    d.waiting_since = Some(now);
                    keyframes.push((d.publisher, d.track_sid.clone(), target.unwrap_or(QUALITY_HIGH)));
                }
            }
        }
        for mid in shed_mids {
            // Repairs of the layer that stopped would queue ahead of the keyframe too: a fresh
            // resend buffer answers no NACK for what was sent before.
            if let Some(tx) = sub.subscriber.direct_api().stream_tx_by_mid(mid, None) {
                tx.set_rtx_cache(
                    VIDEO_RESEND_PACKETS_MAX,
                    Duration::from_millis(VIDEO_RESEND_MAX_AGE_MS),
                    Some(VIDEO_RESEND_RATIO_CAP),
                );
            }
        }
        for (publisher, sid, quality) in keyframes {
            self.request_keyframe(now, publisher, &sid, quality, KeyframeRequestKind::Pli);
        }
    }

    fn update_speakers(&mut self) {
        let names: Vec<String> = self.rooms.keys().cloned().collect();
        for name in names {
            let members = self.rooms[&name].members.clone();
            let mut speakers: Vec<(String, f32)> = Vec::new();
            for m in &members {
                let Some(p) = self.participants.get_mut(m) else { continue };
                let level = p.speech_dbov.take();
                p.speaking = level.is_some_and(|l| l > SPEECH_THRESHOLD_DBOV);
                if p.speaking && !p.grant.hidden {
                    speakers.push((p.sid.clone(), 10f32.powf(level.unwrap_or(-127.0) / 20.0)));
                }
            }
            speakers.sort_by(|a, b| b.1.total_cmp(&a.1));
            let room = self.rooms.get_mut(&name).expect("listed above");
            let now_active: Vec<(String, bool)> = speakers.iter().map(|(s, _)| (s.clone(), true)).collect();
            let active_set: Vec<&String> = now_active.iter().map(|(s, _)| s).collect();
            let before: Vec<&String> = room.speakers.iter().map(|(s, _)| s).collect();
            if active_set == before {
                continue;
            }
            let mut infos: Vec<lk::SpeakerInfo> = speakers
                .iter()
                .map(|(sid, level)| lk::SpeakerInfo { sid: sid.clone(), level: *level, active: true })
                .collect();
            for (sid, _) in &room.speakers {
                if !speakers.iter().any(|(s, _)| s == sid) {
                    infos.push(lk::SpeakerInfo { sid: sid.clone(), level: 0.0, active: false });
                }
            }
            room.speakers = now_active;
            self.broadcast(&name, None, Resp::SpeakersChanged(lk::SpeakersChanged { speakers: infos }));
        }
    }

    fn report_quality(&mut self) {
        let names: Vec<String> = self.rooms.keys().cloned().collect();
        for name in names {
            let updates: Vec<lk::ConnectionQualityInfo> = self.rooms[&name]
                .members
                .iter()
                .filter_map(|m| self.participants.get(m))
                .filter(|p| !p.grant.hidden)
                .map(|p| {
                    // Loss hurts more than a modest estimate: a few percent already shows as
                    // artefacts, while 300 kbit/s still carries a small picture.
                    let loss = p.pub_loss.max(p.sub_loss);
                    let quality = if loss > 0.10 || p.bwe_bps < 300_000 {
                        lk::ConnectionQuality::Poor
                    } else if loss > 0.03 || p.bwe_bps < 1_000_000 {
                        lk::ConnectionQuality::Good
                    } else {
                        lk::ConnectionQuality::Excellent
                    };
                    lk::ConnectionQualityInfo {
                        participant_sid: p.sid.clone(),
                        quality: quality as i32,
                        score: match quality {
                            lk::ConnectionQuality::Excellent => 5.0,
                            lk::ConnectionQuality::Good => 4.0,
                            _ => 2.0,
                        },
                    }
                })
                .collect();
            if !updates.is_empty() {
                self.broadcast(&name, None, Resp::ConnectionQuality(lk::ConnectionQualityUpdate { updates }));
            }
        }
    }
}

fn leave_message(reason: lk::DisconnectReason, can_reconnect: bool) -> Resp {
    Resp::Leave(lk::LeaveRequest {
        can_reconnect,
        reason: reason as i32,
        action: lk::leave_request::Action::Disconnect as i32,
        regions: None,
    })
}

fn enabled_codecs() -> Vec<lk::Codec> {
    ["audio/opus", "video/VP8", "video/H264"]
        .into_iter()
        .map(|mime| lk::Codec { mime: mime.into(), fmtp_line: String::new() })
        .collect()
}

/// The MIME type a published track will most likely have, from its publish request: the video
/// codec the client asks for (livekit-client names it in `simulcast_codecs`), Opus for audio
/// (the only audio codec the SFU negotiates); empty when the request does not say.
fn announced_mime(req: &lk::AddTrackRequest, kind: MediaKind) -> String {
    if kind == MediaKind::Audio {
        return "audio/opus".into();
    }
    match req.simulcast_codecs.iter().map(|c| c.codec.to_ascii_lowercase()).find(|c| !c.is_empty()).as_deref()
    {
        Some("vp8") => "video/VP8".into(),
        Some("h264") => "video/H264".into(),
        _ => String::new(),
    }
}

/// A track's MIME type goes in two places: `mime_type`, and the codec list, which
/// livekit-client reads for its own tracks in Safari (where the encoded frames do not tell the
/// codec) to set up end-to-end encryption — an empty list fails its publishing there.
fn set_mime(info: &mut lk::TrackInfo, mime: String, cid: &str) {
    if mime.is_empty() {
        return;
    }
    match info.codecs.first_mut() {
        Some(codec) => codec.mime_type = mime.clone(),
        None => info.codecs.push(lk::SimulcastCodecInfo {
            mime_type: mime.clone(),
            cid: cid.to_owned(),
            layers: info.layers.clone(),
            ..Default::default()
        }),
    }
    info.mime_type = mime;
}

fn mime_of(spec: &CodecSpec) -> String {
    match spec.codec {
        Codec::Opus => "audio/opus".into(),
        Codec::Vp8 => "video/VP8".into(),
        Codec::H264 => "video/H264".into(),
        other => format!("{other}"),
    }
}

/// H.264 profiles must match between the publisher's stream and the subscriber's payload type.
fn format_compatible(a: &CodecSpec, b: &CodecSpec) -> bool {
    a.codec != Codec::H264
        || (a.format.profile_level_id == b.format.profile_level_id
            && a.format.packetization_mode == b.format.packetization_mode)
}

/// The descriptor patch for munged VP8 values; `None` if the descriptor has none of them.
fn vp8_patch(d: &Vp8Descriptor, pid: Option<u16>, tl0: Option<u8>, key: Option<u8>) -> Option<Vp8Patch> {
    let build = |pid: Option<u16>| {
        let mut b = d.patch();
        if let Some(p) = pid {
            b = b.picture_id(p);
        }
        if let Some(t) = tl0 {
            b = b.tl0_pic_idx(t);
        }
        if let Some(k) = key {
            b = b.key_idx(k);
        }
        b.build()
    };
    if pid.is_none() && tl0.is_none() && key.is_none() {
        return None;
    }
    // A 7-bit picture ID field keeps 7 bits.
    build(pid).or_else(|_| build(pid.map(|p| p & 0x7f))).ok()
}

fn rid_of_quality(quality: u8) -> &'static str {
    match quality {
        0 => "q",
        1 => "h",
        _ => "f",
    }
}

/// The estimate a trial of one step up needs: the allocation with the next active layer for
/// the most important subscription held below the best layer it accepts, plus audio, with a
/// quarter on top (layer rates swell with keyframes), but less than the layer after it would
/// need, so that the allocator takes one step and not two (Chromium's 720p simulcast can put
/// the top layer within that quarter of the middle one). `None` if nothing is held back.
fn step_up(requests: &[(&[LayerState], u8)], chosen: &[Option<u8>], audio_bps: u64) -> Option<u64> {
    let rate = |layers: &[LayerState], q: Option<u8>| {
        q.and_then(|q| layers.iter().find(|l| l.quality == q)).map_or(0, |l| l.bitrate_bps)
    };
    let total: u64 = requests.iter().zip(chosen).map(|((layers, _), q)| rate(layers, *q)).sum();
    requests.iter().zip(chosen).find_map(|((layers, max_quality), q)| {
        let current = (*q)?;
        let mut above: Vec<&LayerState> =
            layers.iter().filter(|l| l.active && l.quality > current && l.quality <= *max_quality).collect();
        above.sort_by_key(|l| l.quality);
        let others = audio_bps + total - rate(layers, Some(current));
        let need = others + above.first()?.bitrate_bps;
        let mut trial = need * 5 / 4;
        if let Some(after) = above.get(1) {
            trial = trial.min((others + after.bitrate_bps).saturating_sub(1)).max(need);
        }
        Some(trial)
    })
}

/// The layer that best matches a requested display size: the smallest layer at least as
/// large, else the largest.
fn quality_for_size(layers: &[lk::VideoLayer], width: u32, height: u32) -> u8 {
    if layers.is_empty() {
        return QUALITY_HIGH;
    }
    let mut sorted: Vec<&lk::VideoLayer> = layers.iter().collect();
    sorted.sort_by_key(|l| l.width.max(l.height));
    let want = width.max(height);
    let layer = sorted
        .iter()
        .find(|l| l.width.max(l.height) >= want)
        .unwrap_or_else(|| sorted.last().expect("not empty"));
    u8::try_from(layer.quality).unwrap_or(QUALITY_HIGH).min(QUALITY_HIGH)
}

fn source_from_name(name: &str) -> Option<i32> {
    let source = match name {
        "camera" => lk::TrackSource::Camera,
        "microphone" => lk::TrackSource::Microphone,
        "screen_share" => lk::TrackSource::ScreenShare,
        "screen_share_audio" => lk::TrackSource::ScreenShareAudio,
        _ => return None,
    };
    Some(source as i32)
}

fn source_allowed(grant: &Grant, source: lk::TrackSource) -> bool {
    grant.can_publish_sources.is_empty()
        || grant.can_publish_sources.iter().any(|s| source_from_name(s) == Some(source as i32))
}

/// One m-line of an SDP offer, as far as track matching needs it.
#[derive(Debug, PartialEq, Eq)]
struct MediaLine {
    mid: String,
    /// The track ID of `a=msid:<stream> <track>`.
    track: Option<String>,
    client_sends: bool,
}

/// Reads mids, track IDs and directions from an SDP text. str0m keeps no track ID when the
/// stream ID is `-` (what LiveKit's Rust SDK sends), so the offer is read here.
fn sdp_media_lines(sdp: &str) -> Vec<MediaLine> {
    let mut found = Vec::new();
    let mut current: Option<MediaLine> = None;
    for line in sdp.lines() {
        let line = line.trim_end();
        if line.starts_with("m=") {
            found.extend(current.take().filter(|m| !m.mid.is_empty()));
            // Application (data channel) sections carry no track.
            if !line.starts_with("m=application") {
                current = Some(MediaLine { mid: String::new(), track: None, client_sends: true });
            }
            continue;
        }
        let Some(m) = current.as_mut() else { continue };
        if let Some(mid) = line.strip_prefix("a=mid:") {
            m.mid = mid.to_owned();
        } else if let Some(rest) = line.strip_prefix("a=msid:") {
            m.track = rest.split_whitespace().nth(1).map(str::to_owned);
        } else if line == "a=recvonly" || line == "a=inactive" {
            m.client_sends = false;
        }
    }
    found.extend(current.filter(|m| !m.mid.is_empty()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msid_lines_map_mids_to_track_ids() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=msid:s1 trackA\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:- trackB\r\nm=application 9 x\r\na=mid:2\r\n";
        let lines = sdp_media_lines(sdp);
        assert_eq!(
            lines,
            vec![
                MediaLine { mid: "0".into(), track: Some("trackA".into()), client_sends: true },
                MediaLine { mid: "1".into(), track: Some("trackB".into()), client_sends: true },
            ]
        );
        let recv = "m=audio 9 x\r\na=mid:7\r\na=recvonly\r\nm=video 9 x\r\na=mid:8\r\na=inactive\r\n";
        assert!(sdp_media_lines(recv).iter().all(|l| !l.client_sends));
    }

    /// A trial takes one step: its estimate covers the next layer with room for keyframes,
    /// but not the layer after it, however close the two are.
    #[test]
    fn a_trial_steps_up_one_layer() {
        let layer = |quality, bitrate_bps| LayerState { quality, bitrate_bps, active: true };
        let audio = 40_000;
        // Layers a third apart: a quarter on top of the middle one fits below the top one.
        let apart = [layer(0, 150_000), layer(1, 500_000), layer(2, 1_500_000)];
        assert_eq!(step_up(&[(&apart, 2)], &[Some(0)], audio), Some(675_000));
        // Chromium's 720p camera as measured in test_rtc_congestion: the top layer is within
        // a quarter of the middle one (with a keyframe in its window).
        let close = [layer(0, 150_000), layer(1, 700_000), layer(2, 830_000)];
        let trial = step_up(&[(&close, 2)], &[Some(0)], audio).expect("held back");
        assert_eq!(trial, 869_999);
        assert_eq!(allocate(&[(&close, 2)], &[], trial - audio), vec![Some(1)]);
        // From the middle layer the top one is the last step: a quarter on top of it.
        assert_eq!(step_up(&[(&close, 2)], &[Some(1)], audio), Some(1_087_500));
        // Nothing held back.
        assert_eq!(step_up(&[(&close, 2)], &[Some(2)], audio), None);
        assert_eq!(step_up(&[(&close, 1)], &[Some(1)], audio), None);
    }

    #[test]
    fn requested_sizes_pick_layers() {
        let layers = [
            lk::VideoLayer { quality: 0, width: 320, height: 180, ..Default::default() },
            lk::VideoLayer { quality: 1, width: 640, height: 360, ..Default::default() },
            lk::VideoLayer { quality: 2, width: 1280, height: 720, ..Default::default() },
        ];
        assert_eq!(quality_for_size(&layers, 300, 150), 0);
        assert_eq!(quality_for_size(&layers, 600, 400), 1);
        assert_eq!(quality_for_size(&layers, 1920, 1080), 2);
        assert_eq!(quality_for_size(&[], 10, 10), QUALITY_HIGH);
    }
}

// --------------------------------------------------------------------------------------------
// The room service: what operators and moderators do (LiveKit's RoomService API)
// --------------------------------------------------------------------------------------------

/// Why a room-service request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("no room `{0}`")]
    NoRoom(String),
    #[error("no participant `{0}` in this room")]
    NoParticipant(String),
    #[error("no track `{0}` published by this participant")]
    NoTrack(String),
    #[error("{0}")]
    Refused(String),
}

impl Sfu {
    /// Rooms with their participant counts; only the named ones if `names` is not empty.
    pub fn list_rooms(&self, names: &[String]) -> Vec<lk::Room> {
        let mut rooms: Vec<lk::Room> = self
            .rooms
            .keys()
            .filter(|n| names.is_empty() || names.contains(n))
            .map(|n| self.room_info(n))
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    /// Creates an empty room (or returns the existing one). `max_participants` is capped by
    /// the configured per-room limit; 0 keeps the default, as in LiveKit.
    pub fn create_room(
        &mut self,
        now: Instant,
        name: &str,
        empty_timeout_s: u32,
        max_participants: u32,
        metadata: String,
    ) -> Result<lk::Room, ServiceError> {
        if name.is_empty() {
            return Err(ServiceError::Refused("a room needs a name".into()));
        }
        if !self.rooms.contains_key(name) {
            let sid = self.new_id("RM_");
            let created_unix_ms = self.unix_ms(now);
            self.rooms.insert(
                name.to_owned(),
                Room {
                    sid,
                    created_unix_ms,
                    members: Vec::new(),
                    empty_since: Some(now),
                    speakers: Vec::new(),
                    max_participants: None,
                    empty_timeout_ms: None,
                    metadata: String::new(),
                },
            );
        }
        let cap = self.cfg.max_participants_per_room;
        let room = self.rooms.get_mut(name).expect("inserted above");
        if max_participants > 0 {
            room.max_participants = Some(usize::try_from(max_participants).unwrap_or(cap).min(cap));
        }
        if empty_timeout_s > 0 {
            room.empty_timeout_ms = Some(u64::from(empty_timeout_s) * 1000);
        }
        if !metadata.is_empty() {
            room.metadata = metadata;
        }
        Ok(self.room_info(name))
    }

    /// Ends a room: everyone in it is told (`ROOM_DELETED`) and disconnected.
    pub fn delete_room(&mut self, now: Instant, name: &str) -> Result<(), ServiceError> {
        let room = self.rooms.get(name).ok_or_else(|| ServiceError::NoRoom(name.to_owned()))?;
        for id in room.members.clone() {
            self.send(id, leave_message(lk::DisconnectReason::RoomDeleted, false));
            self.remove_participant(now, id);
        }
        self.rooms.remove(name);
        self.drain(now);
        tracing::info!(room = %name, "room deleted by the room service");
        Ok(())
    }

    fn member(&self, room: &str, identity: &str) -> Result<ParticipantId, ServiceError> {
        let r = self.rooms.get(room).ok_or_else(|| ServiceError::NoRoom(room.to_owned()))?;
        r.members
            .iter()
            .copied()
            .find(|m| self.participants.get(m).is_some_and(|p| p.grant.identity == identity))
            .ok_or_else(|| ServiceError::NoParticipant(identity.to_owned()))
    }

    pub fn list_participants(&self, room: &str) -> Result<Vec<lk::ParticipantInfo>, ServiceError> {
        let r = self.rooms.get(room).ok_or_else(|| ServiceError::NoRoom(room.to_owned()))?;
        Ok(r.members.iter().filter_map(|m| self.participants.get(m)).map(Participant::info).collect())
    }

    pub fn get_participant(&self, room: &str, identity: &str) -> Result<lk::ParticipantInfo, ServiceError> {
        let id = self.member(room, identity)?;
        Ok(self.participants[&id].info())
    }

    /// Removes a participant (a moderator's "remove"): it is told `PARTICIPANT_REMOVED` and
    /// disconnected; the others see it leave.
    pub fn remove_participant_by_identity(
        &mut self,
        now: Instant,
        room: &str,
        identity: &str,
    ) -> Result<(), ServiceError> {
        let id = self.member(room, identity)?;
        self.send(id, leave_message(lk::DisconnectReason::ParticipantRemoved, false));
        self.remove_participant(now, id);
        self.drain(now);
        Ok(())
    }

    /// Mutes a participant's published track (a moderator's "mute"): its client is asked to
    /// mute and everyone sees the track muted. Unmuting someone else is refused — a moderator
    /// must not be able to switch on another person's microphone or camera.
    pub fn mute_published_track(
        &mut self,
        now: Instant,
        room: &str,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<lk::TrackInfo, ServiceError> {
        if !muted {
            return Err(ServiceError::Refused("only the participant can unmute their own tracks".into()));
        }
        let id = self.member(room, identity)?;
        let p = self.participants.get_mut(&id).expect("a member");
        let track = p
            .tracks
            .iter_mut()
            .find(|t| t.info.sid == track_sid)
            .ok_or_else(|| ServiceError::NoTrack(track_sid.to_owned()))?;
        track.info.muted = true;
        let info = track.info.clone();
        p.version += 1;
        let (participant, hidden) = (p.info(), p.grant.hidden);
        self.send(id, Resp::Mute(lk::MuteTrackRequest { sid: track_sid.to_owned(), muted: true }));
        if !hidden {
            self.broadcast(
                room,
                None,
                Resp::Update(lk::ParticipantUpdate { participants: vec![participant] }),
            );
        }
        self.drain(now);
        Ok(info)
    }

    /// Sends a data packet from the server to a room (all, or `destination_identities`).
    pub fn send_data(
        &mut self,
        now: Instant,
        room: &str,
        reliable: bool,
        packet: lk::DataPacket,
    ) -> Result<usize, ServiceError> {
        if !self.rooms.contains_key(room) {
            return Err(ServiceError::NoRoom(room.to_owned()));
        }
        if packet.encoded_len() > self.cfg.max_data_packet_bytes {
            return Err(ServiceError::Refused(format!(
                "data packets are limited to {} bytes",
                self.cfg.max_data_packet_bytes
            )));
        }
        let delivered = self.deliver_data(room, None, reliable, packet);
        self.drain(now);
        Ok(delivered)
    }
}
