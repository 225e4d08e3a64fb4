//! The SFU's task: one tokio task owns the core and its UDP socket, and talks to signalling
//! sessions through bounded channels. Nothing else touches the core, so it needs no locks.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use ward_sfu::protocol as lk;
use ward_sfu::{
    Grant, JoinError, JoinOptions, Output, ParticipantId, ServiceError, Sfu, SfuConfig, SfuStats,
};

/// Signalling messages queued for one participant's WebSocket. A client that does not read
/// them is too slow to take part and is disconnected rather than buffered without bound.
pub const SIGNAL_QUEUE_MAX: usize = 512;
/// Requests from all signalling sessions to the SFU task.
pub const COMMAND_QUEUE_MAX: usize = 4096;
/// The largest UDP datagram read (WebRTC stays under the path MTU; this leaves room).
const DATAGRAM_MAX_BYTES: usize = 2048;
/// ICE-TCP connections at once (each is one client's peer connection over TCP).
pub const MAX_TCP_CONNECTIONS: usize = 2048;
/// ICE-TCP connections from one IP address (a practice behind one NAT address has two per
/// person in a call; one address cannot take every slot).
pub const MAX_TCP_CONNECTIONS_PER_IP: usize = 128;
/// Frames from all ICE-TCP connections waiting for the SFU task. Media has its own queue, so
/// a flood over TCP cannot delay joins and signalling; when it is full, frames are dropped as
/// a full UDP socket would drop datagrams.
const TCP_PACKET_QUEUE_MAX: usize = 1024;
/// A new ICE-TCP connection must send its first frame (a connectivity check) within this time.
const TCP_FIRST_FRAME_TIMEOUT_MS: u64 = 5_000;
/// Framed packets queued for one ICE-TCP connection; more are dropped like UDP would be.
const TCP_QUEUE_MAX: usize = 256;
/// The largest RFC 4571 frame accepted; a longer one means the peer speaks something else.
const TCP_FRAME_MAX_BYTES: usize = 4096;
/// An ICE-TCP connection silent this long is closed (clients send consent checks every few
/// seconds).
const TCP_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Datagrams read from the socket, when they are waiting there already, before the copies
/// of their media are sent. A subscriber connection written by several pays str0m's
/// per-connection round once for all of them, so a busier loop forwards more per core; an
/// idle one reads a single datagram and forwards it at once. Bounded so that the first
/// datagram's copies do not wait long behind the others' reading.
const DATAGRAM_BATCH_MAX: usize = 16;
/// UDP datagrams handed to the kernel in one system call (`sendmmsg` on Linux). A call costs
/// about as much as a fifth of a datagram's own sending; more per call would save little and
/// hold the first copies back while str0m prepares the others.
const SEND_BATCH_MAX: usize = 16;
/// Rounds of due timers run back to back before the loop looks at the socket again.
const DUE_TIMER_ROUNDS_MAX: usize = 64;
/// How often the metrics are refreshed from the core's counters.
const METRICS_INTERVAL_MS: u64 = 1000;

/// What the SFU task sends a signalling session.
#[derive(Debug)]
pub enum Outgoing {
    /// An encoded `SignalResponse`.
    Signal(Vec<u8>),
    /// The SFU closed the session (after a leave message, if any).
    Close,
}

/// A joined participant's side of the channel pair.
pub struct Session {
    pub id: ParticipantId,
    /// Tells this connection apart from an earlier or later one of the same participant (a
    /// resume replaces the channel; the old connection's end must not close the new one).
    pub generation: u64,
    pub outgoing: mpsc::Receiver<Outgoing>,
}

enum Command {
    Join { grant: Grant, options: JoinOptions, reply: oneshot::Sender<Result<Session, JoinError>> },
    Resume { grant: Grant, sid: String, reply: oneshot::Sender<Result<Session, JoinError>> },
    Signal { id: ParticipantId, bytes: Vec<u8> },
    Closed { id: ParticipantId, generation: u64 },
    TcpOpened { peer: SocketAddr, frames: mpsc::Sender<Vec<u8>> },
    TcpClosed { peer: SocketAddr },
    Service { request: ServiceRequest, reply: oneshot::Sender<Result<ServiceReply, ServiceError>> },
}

/// One RFC 4571 frame from an ICE-TCP connection.
struct TcpPacket {
    peer: SocketAddr,
    local: SocketAddr,
    data: Vec<u8>,
}

/// A room-service request (LiveKit's RoomService API), already authorised.
#[derive(Debug)]
pub enum ServiceRequest {
    ListRooms { names: Vec<String> },
    CreateRoom { name: String, empty_timeout_s: u32, max_participants: u32, metadata: String },
    DeleteRoom { room: String },
    ListParticipants { room: String },
    GetParticipant { room: String, identity: String },
    RemoveParticipant { room: String, identity: String },
    MuteTrack { room: String, identity: String, track_sid: String, muted: bool },
    SendData { room: String, reliable: bool, packet: Box<lk::DataPacket> },
}

#[derive(Debug)]
pub enum ServiceReply {
    Rooms(Vec<lk::Room>),
    Room(Box<lk::Room>),
    Participants(Vec<lk::ParticipantInfo>),
    Participant(Box<lk::ParticipantInfo>),
    Track(Box<lk::TrackInfo>),
    Done,
}

/// The way in to the SFU task; cheap to clone.
#[derive(Clone)]
pub struct SfuHandle {
    commands: mpsc::Sender<Command>,
    stats: Arc<Mutex<SfuStats>>,
    udp_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
}

/// The SFU task stopped or is overloaded.
#[derive(Debug, thiserror::Error)]
#[error("the media server is not available")]
pub struct Unavailable;

impl SfuHandle {
    pub async fn join(
        &self,
        grant: Grant,
        options: JoinOptions,
    ) -> Result<Result<Session, JoinError>, Unavailable> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Join { grant, options, reply }).await.map_err(|_| Unavailable)?;
        rx.await.map_err(|_| Unavailable)
    }

    pub async fn resume(&self, grant: Grant, sid: String) -> Result<Result<Session, JoinError>, Unavailable> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Resume { grant, sid, reply }).await.map_err(|_| Unavailable)?;
        rx.await.map_err(|_| Unavailable)
    }

    /// A message from the participant's WebSocket. Waits when the SFU is busy, which slows
    /// that one reader down rather than dropping its requests.
    pub async fn signal(&self, id: ParticipantId, bytes: Vec<u8>) -> Result<(), Unavailable> {
        self.commands.send(Command::Signal { id, bytes }).await.map_err(|_| Unavailable)
    }

    /// Runs a room-service request in the SFU task.
    pub async fn service(
        &self,
        request: ServiceRequest,
    ) -> Result<Result<ServiceReply, ServiceError>, Unavailable> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::Service { request, reply }).await.map_err(|_| Unavailable)?;
        rx.await.map_err(|_| Unavailable)
    }

    pub async fn closed(&self, id: ParticipantId, generation: u64) {
        let _ = self.commands.send(Command::Closed { id, generation }).await;
    }

    pub fn stats(&self) -> SfuStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bound UDP address (useful when the configured port was 0).
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The bound ICE-TCP address, if ICE-TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }
}

/// Binds the media socket (and the ICE-TCP listener) and starts the SFU task.
/// `cfg.local_addr`/`tcp_local_addr` are replaced by the bound addresses, and public addresses
/// with port 0 get the bound port.
pub async fn start(
    mut cfg: SfuConfig,
    bind: SocketAddr,
    tcp_bind: Option<SocketAddr>,
) -> io::Result<SfuHandle> {
    let socket = UdpSocket::bind(bind).await?;
    let local = socket.local_addr()?;
    cfg.local_addr = local;
    if cfg.public_addr.port() == 0 {
        cfg.public_addr.set_port(local.port());
    }
    let listener = match tcp_bind {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            let tcp_local = listener.local_addr()?;
            cfg.tcp_local_addr = Some(tcp_local);
            let public = cfg.tcp_public_addr.get_or_insert(tcp_local);
            if public.port() == 0 {
                public.set_port(tcp_local.port());
            }
            tracing::info!(tcp = %tcp_local, "ICE-TCP listening");
            Some(listener)
        }
        None => {
            cfg.tcp_local_addr = None;
            cfg.tcp_public_addr = None;
            None
        }
    };
    let tcp_addr = cfg.tcp_local_addr;
    let (commands, rx) = mpsc::channel(COMMAND_QUEUE_MAX);
    let (tcp_packets, tcp_rx) = mpsc::channel(TCP_PACKET_QUEUE_MAX);
    if let Some(listener) = listener {
        tokio::spawn(accept_tcp(listener, commands.clone(), tcp_packets));
    }
    let stats = Arc::new(Mutex::new(SfuStats::default()));
    tracing::info!(udp = %local, public = %cfg.public_addr, "media server (SFU) listening");
    let task = Task {
        sfu: Sfu::new(cfg, Instant::now(), unix_ms()),
        socket,
        sessions: HashMap::new(),
        generation: 0,
        tcp: HashMap::new(),
        stats: stats.clone(),
        received_at: None,
        forward_delay: metrics::histogram!(FORWARD_DELAY_METRIC),
        udp_out: Vec::with_capacity(SEND_BATCH_MAX),
    };
    tokio::spawn(task.run(rx, tcp_rx));
    Ok(SfuHandle { commands, stats, udp_addr: local, tcp_addr })
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

struct Task {
    sfu: Sfu,
    socket: UdpSocket,
    sessions: HashMap<ParticipantId, (u64, mpsc::Sender<Outgoing>)>,
    generation: u64,
    /// Open ICE-TCP connections by peer address: where their framed packets go.
    tcp: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    stats: Arc<Mutex<SfuStats>>,
    /// When the first datagram of the batch being handled was read: RTP sent before the loop
    /// waits again is forwarded media, and its delay since then goes into `forward_delay`
    /// (for a batch's later datagrams a little more than their own).
    received_at: Option<Instant>,
    forward_delay: metrics::Histogram,
    /// UDP datagrams to send, at most `SEND_BATCH_MAX`.
    udp_out: Vec<(SocketAddr, Vec<u8>)>,
}

/// The SFU's own share of a packet's delay: from reading a datagram off the socket to sending
/// each copy of it (the time it queued in the socket's buffer before is not in it).
pub const FORWARD_DELAY_METRIC: &str = "ward_rtc_forward_delay_seconds";
/// Its histogram buckets, in seconds: the goal is 2 ms at p99.
pub const FORWARD_DELAY_BUCKETS_S: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.001_5, 0.002, 0.003, 0.005, 0.007_5, 0.01, 0.02,
    0.05, 0.1,
];

/// RTP rather than RTCP, STUN, DTLS or SCTP (RFC 7983 and RFC 5761: version 2, and a payload
/// type outside RTCP's 192–223 once the marker bit is masked).
fn is_rtp(datagram: &[u8]) -> bool {
    matches!(datagram, [first, second, ..] if (128..192).contains(first) && !(64..96).contains(&(second & 0x7f)))
}

impl Task {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut tcp_packets: mpsc::Receiver<TcpPacket>,
    ) {
        let mut buf = vec![0u8; DATAGRAM_MAX_BYTES];
        let mut next_metrics = Instant::now();
        loop {
            let deadline = self.sfu.poll_timeout();
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => {
                        let local = self.sfu.config().local_addr;
                        let now = Instant::now();
                        self.received_at = Some(now);
                        self.sfu.handle_receive(now, source, local, &buf[..n]);
                        for _ in 1..DATAGRAM_BATCH_MAX {
                            let Ok((n, source)) = self.socket.try_recv_from(&mut buf) else { break };
                            self.sfu.handle_receive(Instant::now(), source, local, &buf[..n]);
                        }
                    }
                    // ICMP errors (a client went away) surface here on some systems; harmless.
                    Err(e) => tracing::debug!(error = %e, "UDP receive failed"),
                },
                command = commands.recv() => match command {
                    Some(c) => self.command(c),
                    None => break,
                },
                Some(p) = tcp_packets.recv() => {
                    let now = Instant::now();
                    self.received_at = Some(now);
                    self.sfu.handle_receive_tcp(now, p.peer, p.local, &p.data);
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.sfu.handle_timeout(Instant::now());
                }
            }
            self.flush();
            // str0m hands a written packet to its sender in a timeout round, so the copies of a
            // datagram leave here too.
            self.run_due_timers();
            self.received_at = None;
            if Instant::now() >= next_metrics {
                next_metrics = Instant::now() + Duration::from_millis(METRICS_INTERVAL_MS);
                self.publish_metrics();
            }
        }
        tracing::info!("media server stopped");
    }

    /// Runs the core's timers that are due already, without going through tokio's timer:
    /// its ticks are a millisecond, and str0m's pacer asks for the time again (a microsecond
    /// on) after every packet it releases, so sleeping each time would hold every subscriber
    /// connection to about one packet per millisecond and queue the rest. Bounded, so that
    /// datagrams and commands keep being served.
    fn run_due_timers(&mut self) {
        for _ in 0..DUE_TIMER_ROUNDS_MAX {
            let now = Instant::now();
            if self.sfu.poll_timeout() > now {
                break;
            }
            self.sfu.handle_timeout(now);
            self.flush();
        }
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Join { grant, options, reply } => {
                let result = self.sfu.join(now, grant, options).map(|id| self.session(id));
                let _ = reply.send(result);
            }
            Command::Resume { grant, sid, reply } => {
                let result = self.sfu.resume(now, &grant, &sid).map(|id| self.session(id));
                let _ = reply.send(result);
            }
            Command::Signal { id, bytes } => self.sfu.handle_signal_bytes(now, id, &bytes),
            Command::Closed { id, generation } => {
                if self.sessions.get(&id).is_some_and(|(g, _)| *g == generation) {
                    self.sessions.remove(&id);
                    self.sfu.signal_closed(now, id);
                }
            }
            Command::TcpOpened { peer, frames } => {
                self.tcp.insert(peer, frames);
            }
            Command::TcpClosed { peer } => {
                self.tcp.remove(&peer);
            }
            Command::Service { request, reply } => {
                let _ = reply.send(self.service(now, request));
            }
        }
    }

    fn service(&mut self, now: Instant, request: ServiceRequest) -> Result<ServiceReply, ServiceError> {
        let sfu = &mut self.sfu;
        Ok(match request {
            ServiceRequest::ListRooms { names } => ServiceReply::Rooms(sfu.list_rooms(&names)),
            ServiceRequest::CreateRoom { name, empty_timeout_s, max_participants, metadata } => {
                ServiceReply::Room(Box::new(sfu.create_room(
                    now,
                    &name,
                    empty_timeout_s,
                    max_participants,
                    metadata,
                )?))
            }
            ServiceRequest::DeleteRoom { room } => {
                sfu.delete_room(now, &room)?;
                ServiceReply::Done
            }
            ServiceRequest::ListParticipants { room } => {
                ServiceReply::Participants(sfu.list_participants(&room)?)
            }
            ServiceRequest::GetParticipant { room, identity } => {
                ServiceReply::Participant(Box::new(sfu.get_participant(&room, &identity)?))
            }
            ServiceRequest::RemoveParticipant { room, identity } => {
                sfu.remove_participant_by_identity(now, &room, &identity)?;
                ServiceReply::Done
            }
            ServiceRequest::MuteTrack { room, identity, track_sid, muted } => ServiceReply::Track(Box::new(
                sfu.mute_published_track(now, &room, &identity, &track_sid, muted)?,
            )),
            ServiceRequest::SendData { room, reliable, packet } => {
                sfu.send_data(now, &room, reliable, *packet)?;
                ServiceReply::Done
            }
        })
    }

    /// A new channel for a participant; a resumed participant's old channel is replaced.
    fn session(&mut self, id: ParticipantId) -> Session {
        let (tx, rx) = mpsc::channel(SIGNAL_QUEUE_MAX);
        self.generation += 1;
        let generation = self.generation;
        self.sessions.insert(id, (generation, tx));
        // Messages the core queued for this participant before the channel existed.
        self.flush();
        Session { id, generation, outgoing: rx }
    }

    fn flush(&mut self) {
        let mut slow = Vec::new();
        while let Some(output) = self.sfu.poll_output() {
            match output {
                Output::Transmit { destination, contents, tcp: true, .. } => {
                    // RFC 4571: a 16-bit length, then the packet.
                    let (Ok(len), Some(conn)) = (u16::try_from(contents.len()), self.tcp.get(&destination))
                    else {
                        continue;
                    };
                    let mut frame = Vec::with_capacity(contents.len() + 2);
                    frame.extend_from_slice(&len.to_be_bytes());
                    frame.extend_from_slice(&contents);
                    let _ = conn.try_send(frame);
                }
                Output::Transmit { destination, contents, .. } => {
                    self.udp_out.push((destination, contents));
                    if self.udp_out.len() >= SEND_BATCH_MAX {
                        self.send_udp();
                    }
                }
                Output::Signal { to, message } => {
                    if let Some((_, tx)) = self.sessions.get(&to)
                        && tx.try_send(Outgoing::Signal(message.encode_to_vec())).is_err()
                    {
                        slow.push(to);
                    }
                }
                Output::Close { to } => {
                    if let Some((_, tx)) = self.sessions.remove(&to) {
                        let _ = tx.try_send(Outgoing::Close);
                    }
                }
            }
        }
        self.send_udp();
        for id in slow {
            tracing::info!(participant = ?id, "signalling queue full; disconnecting the participant");
            self.sessions.remove(&id);
            self.sfu.signal_closed(Instant::now(), id);
        }
    }

    /// Sends the queued datagrams. A full socket buffer drops them, like the network would.
    fn send_udp(&mut self) {
        if self.udp_out.is_empty() {
            return;
        }
        send_datagrams(&self.socket, &self.udp_out);
        if let Some(at) = self.received_at {
            let delay = at.elapsed().as_secs_f64();
            for (_, contents) in &self.udp_out {
                if is_rtp(contents) {
                    self.forward_delay.record(delay);
                }
            }
        }
        self.udp_out.clear();
    }

    fn publish_metrics(&self) {
        let s = self.sfu.stats();
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = s;
        metrics::gauge!("ward_rtc_rooms").set(s.rooms as f64);
        metrics::gauge!("ward_rtc_participants").set(s.participants as f64);
        metrics::gauge!("ward_rtc_published_tracks").set(s.published_tracks as f64);
        metrics::counter!("ward_rtc_packets_received_total").absolute(s.packets_in);
        metrics::counter!("ward_rtc_bytes_received_total").absolute(s.bytes_in);
        metrics::counter!("ward_rtc_packets_forwarded_total").absolute(s.packets_forwarded);
        metrics::counter!("ward_rtc_bytes_forwarded_total").absolute(s.bytes_forwarded);
        metrics::counter!("ward_rtc_keyframe_requests_total").absolute(s.keyframe_requests_sent);
        metrics::counter!("ward_rtc_keyframe_requests_throttled_total")
            .absolute(s.keyframe_requests_throttled);
        metrics::counter!("ward_rtc_layer_switches_total").absolute(s.layer_switches);
        metrics::counter!("ward_rtc_data_packets_forwarded_total").absolute(s.data_packets_forwarded);
        metrics::counter!("ward_rtc_nacks_received_total").absolute(s.nacks_received);
        metrics::counter!("ward_rtc_nacks_sent_total").absolute(s.nacks_sent);
        metrics::gauge!("ward_rtc_loss_ratio").set(s.loss_permille as f64 / 1000.0);
        metrics::counter!("ward_rtc_bad_signals_total").absolute(s.bad_signals);
        metrics::counter!("ward_rtc_bad_datagrams_total").absolute(s.bad_datagrams);
    }
}

/// Sends each datagram to its destination, in one system call for all where the system has one.
/// A datagram the kernel refuses (no route, a firewall) is skipped; a full socket buffer drops
/// the rest.
#[cfg(target_os = "linux")]
fn send_datagrams(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
    use std::io::IoSlice;

    let addrs: Vec<SocketAddrAny> = datagrams.iter().map(|(a, _)| SocketAddrAny::from(*a)).collect();
    let iovs: Vec<[IoSlice<'_>; 1]> = datagrams.iter().map(|(_, c)| [IoSlice::new(c)]).collect();
    let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> =
        datagrams.iter().map(|_| SendAncillaryBuffer::default()).collect();
    let mut msgs: Vec<MMsgHdr<'_>> = addrs
        .iter()
        .zip(&iovs)
        .zip(controls.iter_mut())
        .map(|((addr, iov), control)| MMsgHdr::new_with_addr(addr, iov, control))
        .collect();
    let mut sent = 0;
    while sent < msgs.len() {
        let result = socket.try_io(tokio::io::Interest::WRITABLE, || {
            sendmmsg(socket, &mut msgs[sent..], SendFlags::DONTWAIT).map_err(io::Error::from)
        });
        match result {
            Ok(n) => sent += n.max(1),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::debug!(error = %e, destination = %datagrams[sent].0, "UDP send failed");
                sent += 1;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn send_datagrams(socket: &UdpSocket, datagrams: &[(SocketAddr, Vec<u8>)]) {
    for (destination, contents) in datagrams {
        if let Err(e) = socket.try_send_to(contents, *destination)
            && e.kind() != io::ErrorKind::WouldBlock
        {
            tracing::debug!(error = %e, %destination, "UDP send failed");
        }
    }
}

/// Accepts ICE-TCP connections; each gets a reader and a writer task.
async fn accept_tcp(
    listener: TcpListener,
    commands: mpsc::Sender<Command>,
    packets: mpsc::Sender<TcpPacket>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
    let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "ICE-TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(max = MAX_TCP_CONNECTIONS, "too many ICE-TCP connections; refusing one");
            continue;
        };
        {
            let mut counts = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let held = counts.entry(peer.ip()).or_default();
            if *held >= MAX_TCP_CONNECTIONS_PER_IP {
                tracing::warn!(
                    max = MAX_TCP_CONNECTIONS_PER_IP,
                    "too many ICE-TCP connections from one address; refusing one"
                );
                continue;
            }
            *held += 1;
        }
        let (commands, packets, per_ip) = (commands.clone(), packets.clone(), per_ip.clone());
        tokio::spawn(async move {
            tcp_connection(stream, peer, commands.clone(), packets).await;
            let _ = commands.send(Command::TcpClosed { peer }).await;
            let mut counts = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(held) = counts.get_mut(&peer.ip()) {
                *held -= 1;
                if *held == 0 {
                    counts.remove(&peer.ip());
                }
            }
            drop(permit);
        });
    }
}

async fn tcp_connection(
    stream: TcpStream,
    peer: SocketAddr,
    commands: mpsc::Sender<Command>,
    packets: mpsc::Sender<TcpPacket>,
) {
    let Ok(local) = stream.local_addr() else { return };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (frames, mut outgoing) = mpsc::channel::<Vec<u8>>(TCP_QUEUE_MAX);
    if commands.send(Command::TcpOpened { peer, frames }).await.is_err() {
        return;
    }
    let writing = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; TCP_FRAME_MAX_BYTES];
    let mut first = true;
    loop {
        // Whoever connects must start with a connectivity check, and soon: a connection that
        // sends nothing or something else holds a slot for nobody.
        let wait =
            Duration::from_millis(if first { TCP_FIRST_FRAME_TIMEOUT_MS } else { TCP_IDLE_TIMEOUT_MS });
        let mut len = [0u8; 2];
        if !matches!(tokio::time::timeout(wait, reader.read_exact(&mut len)).await, Ok(Ok(_))) {
            break;
        }
        let len = usize::from(u16::from_be_bytes(len));
        if len == 0 || len > TCP_FRAME_MAX_BYTES {
            break;
        }
        if !matches!(tokio::time::timeout(wait, reader.read_exact(&mut buf[..len])).await, Ok(Ok(_))) {
            break;
        }
        if first && !ward_sfu::is_connectivity_check(&buf[..len]) {
            tracing::debug!(%peer, "ICE-TCP connection that does not start with a connectivity check closed");
            break;
        }
        first = false;
        match packets.try_send(TcpPacket { peer, local, data: buf[..len].to_vec() }) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
    writing.abort();
}

#[cfg(test)]
mod tests {
    use super::is_rtp;

    #[test]
    fn only_rtp_counts_as_forwarded_media() {
        assert!(is_rtp(&[0x80, 96, 0, 1]));
        assert!(is_rtp(&[0x90, 0x80 | 111, 0, 1]), "marker bit set, Opus");
        assert!(!is_rtp(&[0x80, 200, 0, 6]), "RTCP sender report");
        assert!(!is_rtp(&[0x81, 205, 0, 4]), "RTCP feedback");
        assert!(!is_rtp(&[0x00, 0x01, 0, 0]), "STUN");
        assert!(!is_rtp(&[22, 254, 253]), "DTLS");
        assert!(!is_rtp(&[0x80]));
    }
}
