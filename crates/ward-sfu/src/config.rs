//! The SFU's settings: addresses and limits, with units in their names.

use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The UDP socket's own address: the destination of every datagram the shell hands in and
    /// the source of every datagram the core asks it to send.
    pub local_addr: SocketAddr,
    /// The address announced to clients as the ICE host candidate (ICE-lite: clients connect
    /// to it, the SFU only answers). Usually the server's public address and the UDP port.
    pub public_addr: SocketAddr,
    /// ICE-TCP, for networks that block UDP: the TCP listener's address and the address
    /// announced as a passive TCP host candidate. `None`: UDP only.
    pub tcp_local_addr: Option<SocketAddr>,
    pub tcp_public_addr: Option<SocketAddr>,
    pub max_participants_per_room: usize,
    pub max_participants: usize,
    pub max_tracks_per_participant: usize,
    /// Cap announced to publishers per track and used to pick simulcast layers.
    pub max_bitrate_bps_per_track: u64,
    /// A room without participants is closed after this long.
    pub empty_room_timeout_ms: u64,
    /// A participant whose signalling connection dropped is kept this long so that the client
    /// can resume without renegotiating.
    pub reconnect_window_ms: u64,
    /// Announced in the join response: clients ping this often and give up after the timeout.
    pub ping_interval_s: u32,
    pub ping_timeout_s: u32,
    /// At most one keyframe request per published layer in this interval, however many
    /// subscribers ask (a burst of PLIs would otherwise make the publisher send keyframe after
    /// keyframe and starve its bandwidth).
    pub keyframe_request_min_interval_ms: u64,
    /// Which estimate of a subscriber's downlink picks its simulcast layers.
    pub bandwidth_estimator: BandwidthEstimator,
    /// Largest data packet (one LiveKit `DataPacket`) forwarded.
    pub max_data_packet_bytes: usize,
    /// Seeds the participant/track/room ID generator (the shell passes a random value; tests a
    /// fixed one, so their runs repeat).
    pub id_seed: u64,
    pub server_version: String,
    pub node_id: String,
}

impl SfuConfig {
    /// Defaults for a given socket; tests and the shell override what they need.
    pub fn new(local_addr: SocketAddr, public_addr: SocketAddr) -> Self {
        Self {
            local_addr,
            public_addr,
            tcp_local_addr: None,
            tcp_public_addr: None,
            max_participants_per_room: 100,
            max_participants: 1000,
            max_tracks_per_participant: 8,
            max_bitrate_bps_per_track: 5_000_000,
            empty_room_timeout_ms: 300_000,
            reconnect_window_ms: 20_000,
            ping_interval_s: 5,
            ping_timeout_s: 15,
            keyframe_request_min_interval_ms: 500,
            bandwidth_estimator: BandwidthEstimator::Ward,
            max_data_packet_bytes: 64 * 1024,
            id_seed: 0x5741_5244,
            server_version: "1.9.0".into(),
            node_id: "ward".into(),
        }
    }
}

/// Where a subscriber's bandwidth estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandwidthEstimator {
    /// Ward's own (`bwe.rs`), from the loss and round-trip times in str0m's TWCC statistics;
    /// str0m then sends every packet as soon as it is forwarded.
    Ward,
    /// str0m's delay-based estimator with its pacer, which releases one packet per timeout
    /// round: smoother sending, at a fifth to a third of the SFU's throughput.
    Str0m,
}
