//! ICE-TCP through the real shell: a str0m client that may only use TCP (an active TCP
//! candidate, no UDP) joins over the SFU's handle, answers the subscriber offer and connects
//! its subscriber peer connection (ICE and DTLS) over a real TCP socket with RFC 4571 framing.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use prost::Message as _;
use str0m::change::SdpOffer;
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ward_rtc::runtime::{Outgoing, start};
use ward_sfu::protocol as lk;
use ward_sfu::{Grant, JoinOptions, SfuConfig};

fn grant() -> Grant {
    Grant {
        identity: "tcp-only".into(),
        name: "TCP".into(),
        metadata: String::new(),
        room: "hospital-wifi".into(),
        can_publish: true,
        can_subscribe: true,
        can_publish_data: true,
        can_publish_sources: Vec::new(),
        hidden: false,
        can_update_own_metadata: false,
        expires_at: SystemTime::now() + Duration::from_secs(600),
    }
}

#[tokio::test]
async fn a_client_without_udp_connects_over_ice_tcp() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sfu = start(SfuConfig::new(any, any), any, Some(any)).await.unwrap();
    let sfu_tcp = sfu.tcp_addr().expect("ICE-TCP on");
    let mut session = sfu.join(grant(), JoinOptions::default()).await.unwrap().unwrap();

    // The subscriber offer comes after the join response.
    let offer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let Some(Outgoing::Signal(bytes)) = session.outgoing.recv().await else { panic!("closed") };
            if let Some(lk::signal_response::Message::Offer(o)) =
                lk::SignalResponse::decode(&bytes[..]).unwrap().message
            {
                return o;
            }
        }
    })
    .await
    .expect("a subscriber offer");
    assert!(offer.sdp.contains(&format!("{} typ host tcptype passive", sfu_tcp.port())), "{}", offer.sdp);

    let stream = TcpStream::connect(sfu_tcp).await.unwrap();
    let local = stream.local_addr().unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut client = Rtc::builder().build(Instant::now());
    client.add_local_candidate(
        Candidate::builder().tcp().host(local).tcptype(TcpType::Active).build().unwrap(),
    );
    let answer = client.sdp_api().accept_offer(SdpOffer::from_sdp_string(&offer.sdp).unwrap()).unwrap();
    let signal = lk::SignalRequest {
        message: Some(lk::signal_request::Message::Answer(lk::SessionDescription {
            r#type: "answer".into(),
            sdp: answer.to_sdp_string(),
            id: offer.id,
            ..Default::default()
        })),
    };
    sfu.signal(session.id, signal.encode_to_vec()).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ice = false;
    let mut connected = false;
    let mut len = [0u8; 2];
    let mut frame = vec![0u8; 4096];
    while Instant::now() < deadline && !(ice && connected) {
        // Drain the client: framed datagrams go out on the socket.
        let wait = loop {
            match client.poll_output().unwrap() {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    assert_eq!(t.proto, Protocol::Tcp, "the client has no UDP candidate");
                    let mut out = u16::try_from(t.contents.len()).unwrap().to_be_bytes().to_vec();
                    out.extend_from_slice(&t.contents);
                    writer.write_all(&out).await.unwrap();
                }
                Output::Event(Event::IceConnectionStateChange(
                    IceConnectionState::Connected | IceConnectionState::Completed,
                )) => ice = true,
                // DTLS completed over the TCP connection: the path media takes works.
                Output::Event(Event::Connected) => connected = true,
                Output::Event(_) => {}
            }
        };
        let sleep = wait.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
        match tokio::time::timeout(sleep, reader.read_exact(&mut len)).await {
            Ok(Ok(_)) => {
                let n = usize::from(u16::from_be_bytes(len));
                reader.read_exact(&mut frame[..n]).await.unwrap();
                let receive = Receive::new(Protocol::Tcp, sfu_tcp, local, &frame[..n]).unwrap();
                client.handle_input(Input::Receive(Instant::now(), receive)).unwrap();
            }
            Ok(Err(e)) => panic!("the SFU closed the TCP connection: {e}"),
            Err(_) => client.handle_input(Input::Timeout(Instant::now())).unwrap(),
        }
    }
    assert!(ice, "ICE over TCP did not connect");
    assert!(connected, "DTLS did not complete over the TCP connection");
    assert!(sfu.stats().bad_datagrams == 0, "{:?}", sfu.stats());
}

/// Something that does not start with a connectivity check gets no ICE-TCP connection.
#[tokio::test]
async fn a_connection_that_does_not_start_with_a_check_is_closed() {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sfu = start(SfuConfig::new(any, any), any, Some(any)).await.unwrap();
    let mut stream = TcpStream::connect(sfu.tcp_addr().expect("ICE-TCP on")).await.unwrap();
    // An RTP-looking frame, RFC 4571 framed.
    let frame = [0x80u8, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
    stream.write_all(&(frame.len() as u16).to_be_bytes()).await.unwrap();
    stream.write_all(&frame).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the SFU kept the connection open: {read:?}");
}
