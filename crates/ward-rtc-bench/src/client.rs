//! One load client: a LiveKit participant over a real WebSocket and real UDP.
//!
//! Like LiveKit's clients it keeps two peer connections (str0m, RTP mode, full ICE): a
//! publisher it offers to the SFU and a subscriber the SFU offers to it, each on its own UDP
//! socket on 127.0.0.1. A publishing client announces one camera track (`AddTrackRequest`),
//! negotiates it and writes synthetic VP8 RTP: 30 frames a second sized for the bitrate, a
//! keyframe every two seconds and whenever the SFU asks for one, frames split into packets of
//! at most `packet_bytes`. After the VP8 descriptor each payload carries a magic, the
//! publisher's number, a per-publisher packet counter and the send time (nanoseconds since the
//! run's shared epoch), so that a receiver in the same process can count what is missing and
//! how long each packet took, on one clock.
//!
//! A subscriber connection either decrypts every packet through str0m ([`Receiving::Decrypting`],
//! as a real client does) or only counts RTP by its clear header ([`Receiving::Counting`]),
//! which costs the load generator a fraction as much, so that it can drive the server near a
//! full core.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use livekit_protocol as lk;
use lk::signal_request::Message as Req;
use lk::signal_response::Message as Resp;
use prost::Message as _;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Marks the bench's payloads (after the VP8 descriptor and payload header).
const MAGIC: [u8; 2] = *b"WB";
/// Descriptor (1) + VP8 header byte (1) + magic (2) + publisher (4) + counter (8) + send time (8).
const HEADER_BYTES: usize = 24;
const FPS: u32 = 30;
const KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);
/// Keyframes are this many times larger than other frames.
const KEYFRAME_FACTOR: usize = 3;
/// str0m learns the time only from inputs; a peer connection is never left alone longer.
const MAX_SLEEP: Duration = Duration::from_millis(50);
const DATAGRAM_MAX: usize = 2048;
/// The signalling socket's read buffer. The client's loop polls the socket on every turn (each
/// datagram), and tungstenite zeroes its whole read buffer on every read attempt: at the
/// default 128 KiB that memset took 10–15 % of the load generator's time, and 44 % with
/// counting subscribers. Signalling messages are small, and larger ones are still read, in
/// several chunks.
const SIGNAL_READ_BUFFER_BYTES: usize = 4 * 1024;

/// What every client of a run shares with the orchestrator.
pub struct Shared {
    pub epoch: Instant,
    /// The measurement window, in nanoseconds since `epoch`; `u64::MAX` until set.
    window_start_ns: AtomicU64,
    window_end_ns: AtomicU64,
    /// (subscriber, publisher) pairs that have received media.
    pub flowing: AtomicUsize,
    /// Per client number: its participant SID (from the join response) and how many
    /// publishers' streams it has received, to name the clients a failed setup left without.
    pub progress: Mutex<BTreeMap<u32, (String, usize)>>,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            window_start_ns: AtomicU64::new(u64::MAX),
            window_end_ns: AtomicU64::new(u64::MAX),
            flowing: AtomicUsize::new(0),
            progress: Mutex::default(),
        }
    }

    pub fn ns(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn start_window(&self, at: Instant) {
        self.window_start_ns.store(self.ns(at), Ordering::SeqCst);
    }

    pub fn end_window(&self, at: Instant) {
        self.window_end_ns.store(self.ns(at), Ordering::SeqCst);
    }

    fn in_window(&self, ns: u64) -> bool {
        ns >= self.window_start_ns.load(Ordering::Relaxed) && ns < self.window_end_ns.load(Ordering::Relaxed)
    }
}

/// How a subscriber connection takes in media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiving {
    /// Every datagram goes through str0m: decrypted, NACKed when missing, reported on (receiver
    /// reports, congestion-control feedback), and timed.
    Decrypting,
    /// RTP is counted by its clear header (SSRC and sequence number) and never decrypted; str0m
    /// gets only STUN, DTLS and RTCP, so the connection stays up but sends the server no NACKs
    /// and no reports of what arrived. No latency is measured.
    Counting,
}

#[derive(Debug, Clone)]
pub struct Spec {
    /// The publisher number written into payloads (unique in the run).
    pub number: u32,
    /// `ws://…/rtc?access_token=…`
    pub url: String,
    pub publish: bool,
    pub bitrate_bps: u64,
    pub packet_bytes: usize,
    /// Packets leave at this many times `bitrate_bps` (0: a frame's packets leave at once).
    pub pacing_factor: f64,
    pub receiving: Receiving,
}

/// What a client saw; only packets sent inside the measurement window count.
#[derive(Debug, Default)]
pub struct Report {
    /// Packets this client published in the window.
    pub sent: u64,
    /// Per publisher: the counters of the packets received (duplicates possible).
    pub received: HashMap<u32, Vec<u64>>,
    /// Send → receive, in microseconds, of every packet received.
    pub latency_us: Vec<u32>,
    /// A counting subscriber's RTP arrivals in the window (by arrival time): per SSRC, the
    /// extended sequence numbers (duplicates possible).
    pub counted: HashMap<u32, Vec<u64>>,
    /// Datagrams the client's sockets could not send (full buffers).
    pub send_drops: u64,
}

/// Takes a counting subscriber's RTP datagram and its arrival time.
type CountRtp<'a> = dyn FnMut(&[u8], Instant) + 'a;

struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    addr: SocketAddr,
    deadline: Instant,
    woken: Instant,
}

impl Peer {
    async fn new(now: Instant) -> io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        // A client that falls behind for a moment must not lose what the SFU sent it: the
        // load generator shares the CPUs with the server.
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(1024 * 1024);
        let addr = socket.local_addr()?;
        let mut rtc = Rtc::builder().set_rtp_mode(true).clear_codecs().enable_vp8(true).build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").map_err(io::Error::other)?);
        Ok(Self { rtc, socket, addr, deadline: now, woken: now })
    }

    /// Feeds every datagram waiting on the socket to the connection, except RTP when `counting`
    /// is given: that goes to `counting` instead, undecrypted.
    fn receive(&mut self, buf: &mut [u8], mut counting: Option<&mut CountRtp<'_>>) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            match self.socket.try_recv_from(buf) {
                Ok((n, source)) => {
                    let now = Instant::now();
                    if let Some(count) = counting.as_mut()
                        && is_rtp(&buf[..n])
                    {
                        count(&buf[..n], now);
                        continue;
                    }
                    if let Ok(r) = Receive::new(Protocol::Udp, source, self.addr, &buf[..n]) {
                        let _ = self.rtc.handle_input(Input::Receive(now, r));
                    }
                    self.poll(&mut events, &mut 0);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors from a closed port surface here; harmless.
                Err(_) => break,
            }
        }
        events
    }

    fn timeout(&mut self, now: Instant, events: &mut Vec<Event>, drops: &mut u64) {
        if self.deadline <= now {
            self.woken = now;
            let _ = self.rtc.handle_input(Input::Timeout(now));
            self.poll(events, drops);
        }
    }

    /// Sends what the connection has to send; events go to `events`.
    fn poll(&mut self, events: &mut Vec<Event>, drops: &mut u64) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    let now = Instant::now();
                    // Due already (str0m asks for the time again before it releases queued
                    // packets): give it now rather than sleeping for a timer tick.
                    if t <= now {
                        self.woken = now;
                        let _ = self.rtc.handle_input(Input::Timeout(now));
                        continue;
                    }
                    self.deadline = t.min(self.woken.max(now) + MAX_SLEEP);
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    if self.socket.try_send_to(&t.contents, t.destination).is_err() {
                        *drops += 1;
                    }
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(_) => {
                    self.deadline = Instant::now() + Duration::from_secs(3600);
                    return;
                }
            }
        }
    }
}

/// RTP rather than RTCP, STUN or DTLS (RFC 7983 demultiplexing; RTCP packet types 192–223).
fn is_rtp(datagram: &[u8]) -> bool {
    datagram.len() >= 12 && datagram[0] >> 6 == 2 && !(192..=223).contains(&datagram[1])
}

/// The full sequence number of a 16-bit one, given the last one of the same stream: the
/// candidate nearest to it.
fn extend_seq(last: u64, seq: u16) -> u64 {
    let candidate = (last & !0xFFFF) | u64::from(seq);
    [candidate.wrapping_sub(1 << 16), candidate, candidate + (1 << 16)]
        .into_iter()
        .min_by_key(|c| c.abs_diff(last))
        .unwrap_or(candidate)
}

/// A counting subscriber's state: the last extended sequence number per SSRC.
#[derive(Default)]
struct Counting {
    last_seq: HashMap<u32, u64>,
}

impl Counting {
    fn count(&mut self, shared: &Shared, me: u32, report: &mut Report, datagram: &[u8], at: Instant) {
        let seq = u16::from_be_bytes([datagram[2], datagram[3]]);
        let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
        let extended = match self.last_seq.get(&ssrc) {
            Some(last) => extend_seq(*last, seq),
            None => {
                // Each publisher's stream reaches a subscriber on one SSRC (no retransmissions
                // come without NACKs).
                shared.flowing.fetch_add(1, Ordering::SeqCst);
                shared.progress.lock().unwrap_or_else(|e| e.into_inner()).entry(me).or_default().1 += 1;
                (1 << 32) | u64::from(seq)
            }
        };
        let last = self.last_seq.entry(ssrc).or_insert(extended);
        *last = (*last).max(extended);
        if shared.in_window(shared.ns(at)) {
            report.counted.entry(ssrc).or_default().push(extended);
        }
    }
}

struct Publishing {
    mid: Mid,
    pending: Option<SdpPendingOffer>,
    seq: u64,
    ts: u32,
    counter: u64,
    next_frame: Instant,
    next_keyframe: Instant,
    keyframe_requested: bool,
    /// Packets of frames made but not sent yet (the pacer's queue), oldest first.
    queue: VecDeque<QueuedPacket>,
    /// When the pacer lets the next packet go.
    next_packet: Instant,
}

/// A packet the pacer holds; its payload is made when it leaves, so that the send time written
/// into it is the time it left.
struct QueuedPacket {
    len: usize,
    first: bool,
    last: bool,
    keyframe: bool,
    ts: u32,
}

/// How long a leaving client waits for the server to close the signalling connection.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Until the join response tells the server's interval.
const DEFAULT_PING_INTERVAL_S: u64 = 5;

fn signal(message: Req) -> Message {
    Message::Binary(lk::SignalRequest { message: Some(message) }.encode_to_vec().into())
}

/// Runs one client until `stop` turns true, then leaves the room.
pub async fn run(spec: Spec, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> Result<Report, String> {
    let config = WebSocketConfig::default().read_buffer_size(SIGNAL_READ_BUFFER_BYTES);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(spec.url.as_str(), Some(config), false)
        .await
        .map_err(|e| format!("client {}: signalling connection: {e}", spec.number))?;
    let (mut ws_tx, mut ws_rx) = ws.split();
    let now = Instant::now();
    let mut publisher = Peer::new(now).await.map_err(|e| e.to_string())?;
    let mut subscriber = Peer::new(now).await.map_err(|e| e.to_string())?;
    let mut report = Report::default();
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let mut events = Vec::new();
    // Which publisher each subscriber m-line carries is learnt from the payloads; this only
    // notices the first packet of each.
    let mut seen: HashMap<u32, ()> = HashMap::new();
    let mut counting = (spec.receiving == Receiving::Counting).then(Counting::default);

    let mut publishing = None;
    if spec.publish {
        let cid = format!("cam-{}", spec.number);
        let add = lk::AddTrackRequest {
            cid: cid.clone(),
            name: "camera".into(),
            r#type: lk::TrackType::Video as i32,
            width: 1280,
            height: 720,
            source: lk::TrackSource::Camera as i32,
            simulcast_codecs: vec![lk::SimulcastCodec {
                codec: "vp8".into(),
                cid: cid.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        ws_tx.send(signal(Req::AddTrack(add))).await.map_err(|e| e.to_string())?;
        let mut api = publisher.rtc.sdp_api();
        let mid = api.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some(format!("stream-{}", spec.number)),
            Some(cid),
            None,
        );
        let (offer, pending) = api.apply().ok_or("no publisher offer")?;
        let sd = lk::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id: 1,
            ..Default::default()
        };
        ws_tx.send(signal(Req::Offer(sd))).await.map_err(|e| e.to_string())?;
        publishing = Some(Publishing {
            mid,
            pending: Some(pending),
            seq: 1,
            ts: 0,
            counter: 0,
            next_frame: now,
            next_keyframe: now,
            keyframe_requested: false,
            queue: VecDeque::new(),
            next_packet: now,
        });
    }
    let frame_interval = Duration::from_secs(1) / FPS;
    let frame_bytes = usize::try_from(spec.bitrate_bps / 8 / u64::from(FPS)).unwrap_or(usize::MAX).max(1);
    let payload_max = spec.packet_bytes.max(HEADER_BYTES + 1);
    // Like LiveKit's clients: a server that hears nothing for three ping timeouts takes the
    // client for gone (before the bench pinged, long fanout setups lost their first viewers).
    let mut ping = tokio::time::interval(Duration::from_secs(DEFAULT_PING_INTERVAL_S));
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let mut wake = publisher.deadline.min(subscriber.deadline);
        if let Some(p) = &publishing
            && p.pending.is_none()
        {
            wake = wake.min(p.next_frame);
            if !p.queue.is_empty() {
                wake = wake.min(p.next_packet);
            }
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ping.tick() => {
                let sent_ms = i64::try_from(shared.ns(Instant::now()) / 1_000_000).unwrap_or_default();
                ws_tx.send(signal(Req::Ping(sent_ms))).await.map_err(|e| e.to_string())?;
            }
            r = subscriber.socket.readable() => {
                if r.is_ok() {
                    events = match &mut counting {
                        Some(c) => {
                            let mut count = |d: &[u8], at| c.count(&shared, spec.number, &mut report, d, at);
                            subscriber.receive(&mut buf, Some(&mut count))
                        }
                        None => subscriber.receive(&mut buf, None),
                    };
                    for e in events.drain(..) {
                        if let Event::RtpPacket(p) = e {
                            on_rtp(&shared, spec.number, &mut report, &mut seen, p.timestamp, &p.payload);
                        }
                    }
                }
            }
            r = publisher.socket.readable() => {
                if r.is_ok() {
                    events = publisher.receive(&mut buf, None);
                    on_publisher_events(&mut publishing, events.drain(..));
                }
            }
            msg = ws_rx.next() => {
                let bytes = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Close(_))) | None => return Err(format!("client {}: the SFU closed the signalling connection", spec.number)),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(format!("client {}: signalling: {e}", spec.number)),
                };
                let Ok(resp) = lk::SignalResponse::decode(&bytes[..]) else { continue };
                match resp.message {
                    Some(Resp::Offer(sd)) => {
                        let offer = SdpOffer::from_sdp_string(&sd.sdp).map_err(|e| e.to_string())?;
                        let answer = subscriber.rtc.sdp_api().accept_offer(offer).map_err(|e| e.to_string())?;
                        let reply = lk::SessionDescription {
                            r#type: "answer".into(),
                            sdp: answer.to_sdp_string(),
                            id: sd.id,
                            ..Default::default()
                        };
                        ws_tx.send(signal(Req::Answer(reply))).await.map_err(|e| e.to_string())?;
                        subscriber.poll(&mut events, &mut report.send_drops);
                    }
                    Some(Resp::Answer(sd)) => {
                        let answer = SdpAnswer::from_sdp_string(&sd.sdp).map_err(|e| e.to_string())?;
                        if let Some(p) = &mut publishing
                            && let Some(pending) = p.pending.take()
                        {
                            publisher.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| e.to_string())?;
                            publisher.poll(&mut events, &mut report.send_drops);
                        }
                    }
                    Some(Resp::Join(j)) => {
                        let sid = j.participant.map(|p| p.sid).unwrap_or_default();
                        shared.progress.lock().unwrap_or_else(|e| e.into_inner()).entry(spec.number).or_default().0 = sid;
                        if j.ping_interval > 0 {
                            let every = Duration::from_secs(u64::from(j.ping_interval.unsigned_abs()));
                            ping = tokio::time::interval(every);
                            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        }
                    }
                    Some(Resp::Leave(_)) => return Err(format!("client {}: the SFU sent leave", spec.number)),
                    _ => {}
                }
                events.clear();
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                subscriber.timeout(now, &mut events, &mut report.send_drops);
                for e in events.drain(..) {
                    if let Event::RtpPacket(p) = e {
                        on_rtp(&shared, spec.number, &mut report, &mut seen, p.timestamp, &p.payload);
                    }
                }
                publisher.timeout(now, &mut events, &mut report.send_drops);
                on_publisher_events(&mut publishing, events.drain(..));
                if let Some(p) = &mut publishing
                    && p.pending.is_none()
                {
                    if p.next_frame <= now {
                        make_frame(p, &publisher, frame_bytes, payload_max, now);
                        p.next_frame += frame_interval;
                        // Late by more than a frame (the machine is busy): skip, do not burst.
                        if p.next_frame + frame_interval < now {
                            p.next_frame = now + frame_interval;
                        }
                    }
                    send_paced(&spec, &shared, p, &mut publisher, &mut report, now);
                }
            }
        }
    }
    let leave = lk::LeaveRequest {
        reason: lk::DisconnectReason::ClientInitiated as i32,
        action: lk::leave_request::Action::Disconnect as i32,
        ..Default::default()
    };
    let _ = ws_tx.send(signal(Req::Leave(leave))).await;
    let _ = ws_tx.close().await;
    // Finish the closing handshake, as browsers do: a socket closed at once answers whatever
    // the server still sends (updates about the others leaving) with a reset, and a reset
    // throws away the leave the server has not read yet, so the server would keep this
    // participant for its reconnect window (about half of a fanout's viewers did).
    let _ = tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = ws_rx.next().await {} }).await;
    Ok(report)
}

fn on_publisher_events(publishing: &mut Option<Publishing>, events: impl Iterator<Item = Event>) {
    for e in events {
        if let (Event::KeyframeRequest(_), Some(p)) = (e, publishing.as_mut()) {
            p.keyframe_requested = true;
        }
    }
}

fn on_rtp(
    shared: &Shared,
    me: u32,
    report: &mut Report,
    seen: &mut HashMap<u32, ()>,
    at: Instant,
    payload: &[u8],
) {
    if payload.len() < HEADER_BYTES || payload[2..4] != MAGIC {
        return;
    }
    let number = u32::from_be_bytes(payload[4..8].try_into().expect("4 bytes"));
    let counter = u64::from_be_bytes(payload[8..16].try_into().expect("8 bytes"));
    let sent_ns = u64::from_be_bytes(payload[16..24].try_into().expect("8 bytes"));
    if seen.insert(number, ()).is_none() {
        shared.flowing.fetch_add(1, Ordering::SeqCst);
        shared.progress.lock().unwrap_or_else(|e| e.into_inner()).entry(me).or_default().1 += 1;
    }
    if !shared.in_window(sent_ns) {
        return;
    }
    report.received.entry(number).or_default().push(counter);
    let latency_ns = shared.ns(at).saturating_sub(sent_ns);
    report.latency_us.push(u32::try_from(latency_ns / 1000).unwrap_or(u32::MAX));
}

/// Cuts one frame into packets for the pacer's queue.
fn make_frame(p: &mut Publishing, peer: &Peer, frame_bytes: usize, payload_max: usize, now: Instant) {
    if !peer.rtc.is_connected() {
        return;
    }
    let keyframe = p.keyframe_requested || now >= p.next_keyframe;
    if keyframe {
        p.keyframe_requested = false;
        p.next_keyframe = now + KEYFRAME_INTERVAL;
    }
    let size = if keyframe { frame_bytes * KEYFRAME_FACTOR } else { frame_bytes };
    let count = size.div_ceil(payload_max).max(1);
    let len = size.div_ceil(count).max(HEADER_BYTES);
    if p.queue.is_empty() {
        p.next_packet = p.next_packet.max(now);
    }
    for index in 0..count {
        p.queue.push_back(QueuedPacket {
            len,
            first: index == 0,
            last: index + 1 == count,
            keyframe,
            ts: p.ts,
        });
    }
    p.ts = p.ts.wrapping_add(90_000 / FPS);
}

/// Sends the queued packets whose time has come: each one holds the next back by its size at
/// `pacing_factor` × the bitrate (or none, without pacing); each goes out before the next is
/// made, so the send time in it is the time it left.
fn send_paced(
    spec: &Spec,
    shared: &Shared,
    p: &mut Publishing,
    peer: &mut Peer,
    report: &mut Report,
    now: Instant,
) {
    let Some(pt) = peer.rtc.codec_config().find(|c| c.spec().codec == Codec::Vp8).map(|c| c.pt()) else {
        return;
    };
    let pacing_bps = spec.bitrate_bps as f64 * spec.pacing_factor;
    let mut events = Vec::new();
    while p.next_packet <= now
        && let Some(q) = p.queue.pop_front()
    {
        let sent_at = Instant::now();
        let sent_ns = shared.ns(sent_at);
        let mut payload = Vec::with_capacity(q.len);
        // VP8 payload descriptor: S bit on a frame's first packet, partition 0; then the VP8
        // payload header, whose P bit (bit 0) is clear on keyframes.
        payload.push(if q.first { 0x10 } else { 0x00 });
        payload.push(if q.first && q.keyframe { 0x00 } else { 0x01 });
        payload.extend_from_slice(&MAGIC);
        payload.extend_from_slice(&spec.number.to_be_bytes());
        payload.extend_from_slice(&p.counter.to_be_bytes());
        payload.extend_from_slice(&sent_ns.to_be_bytes());
        payload.resize(q.len, 0xEE);
        let mut api = peer.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(p.mid, None) else { return };
        tx.write_rtp(RtpWrite::new(pt, p.seq.into(), q.ts, sent_at, payload).marker(q.last).nackable(true));
        if shared.in_window(sent_ns) {
            report.sent += 1;
        }
        p.seq += 1;
        p.counter += 1;
        peer.woken = sent_at;
        peer.poll(&mut events, &mut report.send_drops);
        if pacing_bps > 0.0 {
            p.next_packet += Duration::from_secs_f64((q.len * 8) as f64 / pacing_bps);
        }
    }
    if events.iter().any(|e| matches!(e, Event::KeyframeRequest(_))) {
        p.keyframe_requested = true;
    }
}

#[cfg(test)]
mod tests {
    use super::{extend_seq, is_rtp};

    #[test]
    fn sequence_numbers_extend_across_wraps_both_ways() {
        let base = 1 << 32;
        assert_eq!(extend_seq(base | 10, 11), base | 11);
        assert_eq!(extend_seq(base | 0xFFFF, 2), base + 0x1_0002);
        assert_eq!(extend_seq(base + 0x1_0002, 0xFFFE), base | 0xFFFE, "reordered across the wrap");
    }

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        let mut rtp = [0u8; 12];
        rtp[0] = 0x80;
        rtp[1] = 96;
        assert!(is_rtp(&rtp));
        rtp[1] = 0x80 | 96; // marker bit set
        assert!(is_rtp(&rtp));
        let mut rtcp = rtp;
        rtcp[1] = 200; // sender report
        assert!(!is_rtp(&rtcp));
        assert!(!is_rtp(&[0x00, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0]), "STUN");
        assert!(!is_rtp(&[22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "DTLS");
    }
}
