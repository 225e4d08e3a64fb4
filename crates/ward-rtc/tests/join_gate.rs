//! The join gate over real HTTP: a door that closes while a join is on its way (after the
//! gate's first answer, before the SFU let the participant in) keeps the participant out.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ward_rtc::runtime::{ServiceReply, ServiceRequest};
use ward_rtc::{ApiKeys, JoinGate, MintRequest, Rtc, RtcSettings};

/// Says yes `yes` times, then no: as if a moderator removed the guest right after the first
/// check.
struct ClosingDoor {
    asked: AtomicU32,
    yes: u32,
}

impl JoinGate for ClosingDoor {
    fn admits<'a>(
        &'a self,
        _room: &'a str,
        _identity: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        let n = self.asked.fetch_add(1, Ordering::SeqCst);
        let yes = n < self.yes;
        Box::pin(async move { if yes { Ok(()) } else { Err("you have been removed".to_owned()) } })
    }
}

async fn server(yes: u32) -> (Arc<Rtc>, SocketAddr, Arc<ClosingDoor>) {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let settings = RtcSettings {
        keys: ApiKeys { key: "key".into(), secret: ApiKeys::generate_secret() },
        udp_bind: any,
        tcp_bind: None,
        public_ip: "127.0.0.1".parse().unwrap(),
        max_participants_per_room: 10,
        max_participants: 10,
        max_tracks_per_participant: 4,
        max_bitrate_bps_per_track: 1_000_000,
        empty_room_timeout: Duration::from_secs(60),
        token_max_ttl: Duration::from_secs(600),
        bandwidth_estimator: ward_sfu::BandwidthEstimator::Ward,
    };
    let rtc = Arc::new(Rtc::start(settings).await.unwrap());
    let door = Arc::new(ClosingDoor { asked: AtomicU32::new(0), yes });
    rtc.set_gate(door.clone());
    let listener = TcpListener::bind(any).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ward_rtc::http::routes::<()>(rtc.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rtc, addr, door)
}

/// The status line's code of a WebSocket upgrade request to `/rtc` (the socket stays open).
async fn upgrade_status(addr: SocketAddr, token: &str) -> (u16, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /rtc?access_token={token} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let line = String::from_utf8(head).unwrap();
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    (code, stream)
}

async fn participants(rtc: &Rtc, room: &str) -> Vec<String> {
    let request = ServiceRequest::ListParticipants { room: room.into() };
    match rtc.sfu().unwrap().service(request).await.unwrap() {
        Ok(ServiceReply::Participants(p)) => p.into_iter().map(|p| p.identity).collect(),
        _ => Vec::new(), // No such room: nobody in it.
    }
}

fn token(rtc: &Rtc, identity: &str) -> String {
    let request = MintRequest::new(identity, "meet-x", Duration::from_secs(300));
    ward_rtc::mint(&rtc.settings.keys, &request, SystemTime::now()).unwrap()
}

#[tokio::test]
async fn a_door_that_closes_during_the_join_keeps_the_participant_out() {
    let (rtc, addr, door) = server(1).await;
    let (status, _socket) = upgrade_status(addr, &token(&rtc, "guest-late")).await;
    assert_eq!(status, 403, "refused by the second question");
    assert_eq!(door.asked.load(Ordering::SeqCst), 2);
    assert!(participants(&rtc, "meet-x").await.is_empty(), "and not left in the room");
}

#[tokio::test]
async fn an_open_door_lets_the_participant_in() {
    let (rtc, addr, door) = server(u32::MAX).await;
    let (status, _socket) = upgrade_status(addr, &token(&rtc, "guest-ok")).await;
    assert_eq!(status, 101);
    assert_eq!(door.asked.load(Ordering::SeqCst), 2);
    assert_eq!(participants(&rtc, "meet-x").await, ["guest-ok"]);
}
