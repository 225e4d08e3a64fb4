"""Conferencing with LiveKit's own Python SDK (`livekit` from PyPI: native WebRTC in the wheel)
against Ward's built-in SFU: publishing, subscribing with decoded frames, data packets,
join/leave events, the token's permissions, end-to-end encrypted media, the room service API,
resuming after the signalling connection dropped, and garbage on one signalling connection.

Ward-only (not `portable`): conferencing is not part of the Matrix spec, Synapse has no SFU.
"""

import asyncio
import base64
import datetime
import os
import socket
import struct

import aiohttp
import pytest
from livekit import api, rtc
from livekit.protocol import rtc as signal

import requests

from harness import WardServer, free_port

KEY = "praxis"
SECRET = "a-conferencing-secret-of-at-least-32-characters"
ROOM = "teamsitzung"
WIDTH, HEIGHT = 640, 360


@pytest.fixture(scope="module")
def server():
    s = WardServer(rtc_api_key=KEY, rtc_api_secret=SECRET,
                   env={"WARD_METRICS_LISTEN": f"127.0.0.1:{free_port()}"})
    try:
        yield s.start()
    finally:
        s.cleanup()


def token(identity, room=ROOM, ttl=datetime.timedelta(minutes=10), **grants):
    video = api.VideoGrants(room_join=True, room=room, **grants)
    return (api.AccessToken(KEY, SECRET).with_identity(identity).with_name(identity.title())
            .with_grants(video).with_ttl(ttl).to_jwt())


def ws_url(server):
    return server.url.replace("http://", "ws://")


async def publish_camera_and_microphone(room: rtc.Room):
    """Publishes a moving synthetic picture and a tone; returns the task feeding them."""
    video = rtc.VideoSource(WIDTH, HEIGHT)
    audio = rtc.AudioSource(48000, 1)
    await room.local_participant.publish_track(
        rtc.LocalVideoTrack.create_video_track("camera", video),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=True))
    await room.local_participant.publish_track(
        rtc.LocalAudioTrack.create_audio_track("microphone", audio),
        rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))

    async def feed():
        frame_no = 0
        while True:
            # A bar that moves, so that the encoder sends real content, not only skip frames.
            pixels = bytearray(WIDTH * HEIGHT * 4)
            x = (frame_no * 8) % WIDTH
            for y in range(0, HEIGHT, 2):
                start = (y * WIDTH + x) * 4
                pixels[start:start + 64] = b"\xff\x80\x20\xff" * 16
            video.capture_frame(rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, bytes(pixels)))
            tone = rtc.AudioFrame.create(48000, 1, 480)
            samples = tone.data  # int16 samples
            for i in range(480):
                samples[i] = 3000 if (i // 24) % 2 else -3000
            await audio.capture_frame(tone)
            frame_no += 1
            await asyncio.sleep(1 / 30)

    return asyncio.create_task(feed())


class Watcher:
    """Counts what one participant receives."""

    def __init__(self, room: rtc.Room):
        self.room = room
        self.video_frames = 0
        self.video_widths: list[int] = []
        self.audio_frames = 0
        self.data: list[tuple[str, bytes, str]] = []
        self.joined: list[str] = []
        self.left: list[str] = []
        self.speakers: list[list[str]] = []
        self.muted: list[tuple[str, str]] = []
        self.unmuted: list[tuple[str, str]] = []
        self.tasks = []
        room.on("track_subscribed", self._track)
        room.on("data_received", lambda p: self.data.append(
            (p.participant.identity if p.participant else "", p.data, p.topic)))
        room.on("participant_connected", lambda p: self.joined.append(p.identity))
        room.on("participant_disconnected", lambda p: self.left.append(p.identity))
        room.on("active_speakers_changed", lambda ps: self.speakers.append([p.identity for p in ps]))
        room.on("track_muted", lambda p, pub: self.muted.append((p.identity, pub.name)))
        room.on("track_unmuted", lambda p, pub: self.unmuted.append((p.identity, pub.name)))

    def _track(self, track, publication, participant):
        async def count_video():
            async for event in rtc.VideoStream(track):
                self.video_frames += 1
                self.video_widths.append(event.frame.width)

        async def count_audio():
            async for _ in rtc.AudioStream(track):
                self.audio_frames += 1

        self.tasks.append(asyncio.create_task(
            count_video() if track.kind == rtc.TrackKind.KIND_VIDEO else count_audio()))


async def until(condition, timeout=30, what="condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def leave(rooms, watchers, feeding=None):
    """Stops feeding and counting, then disconnects every room: a test's cleanup."""
    if feeding is not None:
        feeding.cancel()
    for w in watchers:
        for t in w.tasks:
            t.cancel()
    for room in rooms:
        await room.disconnect()


def rtc_metric(server, name: str) -> float:
    text = requests.get(f"http://{server.env['WARD_METRICS_LISTEN']}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.split(" ")[0] == name)


def test_publish_subscribe_data_and_presence(server):
    async def scenario():
        alice, bob, carol = rtc.Room(), rtc.Room(), rtc.Room()
        wa, wb, wc = Watcher(alice), Watcher(bob), Watcher(carol)
        await alice.connect(ws_url(server), token("alice"))
        feeding = await publish_camera_and_microphone(alice)
        await bob.connect(ws_url(server), token("bob"))
        await carol.connect(ws_url(server), token("carol"))
        try:
            # Join events and the others' view of who is here.
            await until(lambda: {"bob", "carol"} <= set(wa.joined), what="alice sees bob and carol join")
            assert {p.identity for p in carol.remote_participants.values()} == {"alice", "bob"}
            published = list(alice.remote_participants.values())
            assert all(not p.track_publications for p in published), "bob and carol publish nothing"

            # B and C subscribe to A's camera and microphone and decode frames.
            await until(lambda: wb.video_frames >= 30 and wc.video_frames >= 30, what="decoded video at bob and carol")
            await until(lambda: wb.audio_frames >= 50 and wc.audio_frames >= 50, what="decoded audio at bob and carol")
            alice_seen_by_bob = next(p for p in bob.remote_participants.values() if p.identity == "alice")
            sources = {pub.source for pub in alice_seen_by_bob.track_publications.values()}
            assert sources == {rtc.TrackSource.SOURCE_CAMERA, rtc.TrackSource.SOURCE_MICROPHONE}

            # Alice's tone makes her the active speaker for the others.
            await until(lambda: any("alice" in s for s in wb.speakers), what="alice as active speaker at bob")

            # Muting shows at the others.
            mic = next(p for p in alice.local_participant.track_publications.values() if p.name == "microphone")
            mic.track.mute()
            await until(lambda: ("alice", "microphone") in wb.muted and ("alice", "microphone") in wc.muted,
                        what="alice's mute at bob and carol")
            mic.track.unmute()
            await until(lambda: ("alice", "microphone") in wb.unmuted, what="alice's unmute at bob")

            # A data packet from B reaches A and C, marked as B's, and not B itself.
            await bob.local_participant.publish_data(b"Guten Morgen", reliable=True, topic="chat")
            await until(lambda: wa.data and wc.data, what="bob's data at alice and carol")
            assert wa.data == [("bob", b"Guten Morgen", "chat")]
            assert wc.data == [("bob", b"Guten Morgen", "chat")]
            # Addressed to one participant only.
            await bob.local_participant.publish_data(b"nur fuer carol", reliable=True,
                                                     destination_identities=["carol"])
            await until(lambda: len(wc.data) == 2, what="the addressed packet at carol")
            await asyncio.sleep(0.5)
            assert len(wa.data) == 1 and not wb.data

            # The SFU's work shows in its metrics.
            await asyncio.sleep(1.5)

            def rtc_metrics():
                text = requests.get(f"http://{server.env['WARD_METRICS_LISTEN']}/metrics", timeout=10).text
                return text, {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                              if line.startswith("ward_rtc_")}

            metrics, values = rtc_metrics()
            assert values["ward_rtc_participants"] == 3
            assert values["ward_rtc_published_tracks"] == 2
            assert values["ward_rtc_packets_forwarded_total"] > 100
            assert values["ward_rtc_data_packets_forwarded_total"] >= 3
            # Every forwarded copy's delay in the server, in a histogram with sub-millisecond
            # buckets (over loopback on an idle server nearly all under 2 ms).
            assert values["ward_rtc_forward_delay_seconds_count"] > 100
            under_2ms = values['ward_rtc_forward_delay_seconds_bucket{le="0.002"}']
            assert under_2ms >= 0.9 * values["ward_rtc_forward_delay_seconds_count"], metrics

            # On a clean link the bandwidth estimate, from real libwebrtc's TWCC feedback, keeps
            # bob and carol on alice's best layer: no switch for three seconds, full width.
            frames_before = (len(wb.video_widths), len(wc.video_widths))
            await asyncio.sleep(3)
            _, later = rtc_metrics()
            assert later["ward_rtc_layer_switches_total"] == values["ward_rtc_layer_switches_total"], (values, later)
            for widths, before in ((wb.video_widths, frames_before[0]), (wc.video_widths, frames_before[1])):
                assert len(widths) - before >= 30 and set(widths[before:]) == {WIDTH}, widths[before:]

            # Leave events.
            await carol.disconnect()
            await until(lambda: "carol" in wa.left and "carol" in wb.left, what="carol's leave at alice and bob")
        finally:
            await leave((alice, bob, carol), (wa, wb, wc), feeding)

    asyncio.run(scenario())


def test_token_without_publish_grant_cannot_publish(server):
    async def scenario():
        viewer, host = rtc.Room(), rtc.Room()
        await host.connect(ws_url(server), token("host"))
        await viewer.connect(ws_url(server), token("viewer", can_publish=False))
        try:
            assert not viewer.local_participant.permissions.can_publish
            source = rtc.VideoSource(WIDTH, HEIGHT)
            track = rtc.LocalVideoTrack.create_video_track("camera", source)
            with pytest.raises(Exception):
                await asyncio.wait_for(viewer.local_participant.publish_track(
                    track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)), 20)
            await asyncio.sleep(1)
            viewer_at_host = next(p for p in host.remote_participants.values() if p.identity == "viewer")
            assert not viewer_at_host.track_publications
        finally:
            await viewer.disconnect()
            await host.disconnect()

    asyncio.run(scenario())


@pytest.mark.parametrize("case, make", [
    ("expired", lambda: token("late", ttl=datetime.timedelta(minutes=-5))),
    ("wrong secret", lambda: api.AccessToken(KEY, "x" * 40).with_identity("eve")
        .with_grants(api.VideoGrants(room_join=True, room=ROOM)).to_jwt()),
])
def test_refused_tokens_cannot_connect(server, case, make):
    async def scenario():
        room = rtc.Room()
        with pytest.raises(rtc.ConnectError):
            await asyncio.wait_for(room.connect(ws_url(server), make()), 30)

    asyncio.run(scenario())


def e2ee(key: bytes) -> rtc.RoomOptions:
    return rtc.RoomOptions(encryption=rtc.E2EEOptions(key_provider_options=rtc.KeyProviderOptions(shared_key=key)))


def test_end_to_end_encrypted_media_passes_untouched(server):
    """The SFU forwards frames it cannot read: those with the key decode them, a participant
    with another key decodes nothing."""
    async def scenario():
        room = "verschluesselt"
        alice, bob, mallory = rtc.Room(), rtc.Room(), rtc.Room()
        wb, wm = Watcher(bob), Watcher(mallory)
        key = b"a shared meeting secret from the link"
        await alice.connect(ws_url(server), token("alice", room=room), options=e2ee(key))
        feeding = await publish_camera_and_microphone(alice)
        await bob.connect(ws_url(server), token("bob", room=room), options=e2ee(key))
        await mallory.connect(ws_url(server), token("mallory", room=room), options=e2ee(b"a guessed, wrong secret"))
        try:
            await until(lambda: wb.video_frames >= 30, what="bob decodes alice's encrypted video")
            await until(lambda: len(wm.tasks) >= 2, what="mallory subscribes to alice's tracks")
            alice_at_bob = next(p for p in bob.remote_participants.values() if p.identity == "alice")
            assert all(pub.encryption_type == rtc.EncryptionType.GCM for pub in alice_at_bob.track_publications.values())
            await asyncio.sleep(3)
            assert wm.video_frames == 0, "a wrong key must not decode anything"
        finally:
            await leave((alice, bob, mallory), (wb, wm), feeding)

    asyncio.run(scenario())


def test_room_service_api_from_livekit_server_sdk(server):
    """Operators script rooms with LiveKit's server SDK (`livekit-api`) against Ward: list
    rooms and participants, send data from the server, mute someone, remove someone, end a
    room — and tokens without the right grant are refused."""
    async def scenario():
        room = "besprechung"
        lkapi = api.LiveKitAPI(server.url, KEY, SECRET)
        host, guest = rtc.Room(), rtc.Room()
        wh, wg = Watcher(host), Watcher(guest)
        disconnected, host_disconnected = [], []
        guest.on("disconnected", lambda reason: disconnected.append(reason))
        host.on("disconnected", lambda reason: host_disconnected.append(reason))
        try:
            created = await lkapi.room.create_room(api.CreateRoomRequest(name=room, max_participants=5))
            assert created.name == room and created.sid.startswith("RM_") and created.max_participants == 5
            await host.connect(ws_url(server), token("host", room=room))
            feeding = await publish_camera_and_microphone(host)
            await guest.connect(ws_url(server), token("guest", room=room))

            rooms = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms
            assert [(r.name, r.num_participants) for r in rooms] == [(room, 2)]
            people = (await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))).participants
            assert sorted(p.identity for p in people) == ["guest", "host"]
            await until(lambda: wg.video_frames > 0, what="the guest receives the host")

            # Data from the server reaches everyone.
            await lkapi.room.send_data(api.SendDataRequest(room=room, data=b"Praxis schliesst um 18 Uhr",
                                                           kind=api.DataPacket.Kind.RELIABLE, topic="notice"))
            await until(lambda: wh.data and wg.data, what="server data at host and guest")
            assert wg.data[0][1:] == (b"Praxis schliesst um 18 Uhr", "notice")

            # A moderator mutes the host's microphone: everyone sees it muted.
            host_info = await lkapi.room.get_participant(api.RoomParticipantIdentity(room=room, identity="host"))
            mic = next(t for t in host_info.tracks if t.source == api.TrackSource.MICROPHONE)
            muted = await lkapi.room.mute_published_track(
                api.MuteRoomTrackRequest(room=room, identity="host", track_sid=mic.sid, muted=True))
            assert muted.track.muted
            await until(lambda: ("host", "microphone") in wg.muted, what="the mute at the guest")
            # Nobody but the participant switches a microphone back on.
            with pytest.raises(api.TwirpError) as refused:
                await lkapi.room.mute_published_track(
                    api.MuteRoomTrackRequest(room=room, identity="host", track_sid=mic.sid, muted=False))
            assert refused.value.code == "permission_denied"

            # Remove the guest: it is disconnected, the host sees it leave.
            await lkapi.room.remove_participant(api.RoomParticipantIdentity(room=room, identity="guest"))
            await until(lambda: disconnected and "guest" in wh.left, what="the guest removed")
            # The SDK is told why: the leave message comes before the connection closes.
            assert disconnected == [rtc.DisconnectReason.PARTICIPANT_REMOVED], disconnected
            with pytest.raises(api.TwirpError) as missing:
                await lkapi.room.get_participant(api.RoomParticipantIdentity(room=room, identity="guest"))
            assert missing.value.code == "not_found"

            # A token for another room administers nothing here.
            other = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_admin=True, room="elsewhere")).to_jwt()
            async with aiohttp_session() as http:
                r = await http.post(f"{server.url}/twirp/livekit.RoomService/ListParticipants",
                                    json={"room": room}, headers={"Authorization": f"Bearer {other}"})
                assert r.status == 403 and (await r.json())["code"] == "permission_denied"
                r = await http.post(f"{server.url}/twirp/livekit.RoomService/ListRooms", json={})
                assert r.status == 401 and (await r.json())["code"] == "unauthenticated"

            # Ending the room disconnects the host too.
            await lkapi.room.delete_room(api.DeleteRoomRequest(room=room))
            await until(lambda: host.connection_state == rtc.ConnectionState.CONN_DISCONNECTED, what="host disconnected")
            await until(lambda: host_disconnected, what="the host's disconnected event")
            assert host_disconnected == [rtc.DisconnectReason.ROOM_DELETED], host_disconnected
            assert (await lkapi.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms == []
            feeding.cancel()
        finally:
            await leave((host, guest), (wh, wg))
            await lkapi.aclose()

    asyncio.run(scenario())


def aiohttp_session():
    import aiohttp
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))


class SignallingOutage:
    """A TCP relay in front of Ward for one client's signalling: `cut()` aborts every relayed
    connection, as a dropped Wi-Fi would, while media keeps its own UDP path to the SFU."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.conns: list[asyncio.StreamWriter] = []
        self.accepted = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader, writer):
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.conns += [writer, up_writer]

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # the test is over

    def cut(self):
        for w in self.conns:
            w.transport.abort()
        self.conns.clear()

    async def close(self):
        self.cut()
        self.server.close()


def test_a_client_resumes_after_its_signalling_connection_drops(server):
    """LiveKit's SDK resumes (`reconnect=1&sid=…`) when its WebSocket dies: it stays the same
    participant, keeps receiving media, nobody sees it leave, and signalling works again."""
    async def scenario():
        room = "funkloch"
        alice, bob = rtc.Room(), rtc.Room()
        wa, wb = Watcher(alice), Watcher(bob)
        events: list[str] = []
        bob.on("reconnecting", lambda: events.append("reconnecting"))
        bob.on("reconnected", lambda: events.append("reconnected"))
        bob.on("disconnected", lambda reason: events.append(f"disconnected {reason}"))
        outage = SignallingOutage(int(server.url.rsplit(":", 1)[1]))
        port = await outage.start()
        await alice.connect(ws_url(server), token("alice", room=room))
        feeding = await publish_camera_and_microphone(alice)
        await bob.connect(f"ws://127.0.0.1:{port}", token("bob", room=room))
        try:
            await until(lambda: wb.video_frames >= 30, what="bob decodes alice's video")
            sid = bob.local_participant.sid
            outage.cut()
            await until(lambda: "reconnected" in events, timeout=30, what=f"bob resumes ({events})")
            assert outage.accepted >= 2, "bob connected again"
            assert bob.local_participant.sid == sid, "a resume keeps the participant"
            assert not any(e.startswith("disconnected") for e in events), events

            # Media still flows to bob, and signalling works both ways: bob publishes a track
            # after the resume, alice sees it, and then its mute.
            frames = wb.video_frames
            await until(lambda: wb.video_frames >= frames + 30, what="bob keeps decoding after the resume")
            source = rtc.AudioSource(48000, 1)
            pub = await bob.local_participant.publish_track(
                rtc.LocalAudioTrack.create_audio_track("microphone", source),
                rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
            def bobs_tracks_at_alice():
                bob_at_alice = next((p for p in alice.remote_participants.values() if p.identity == "bob"), None)
                return bob_at_alice and [t.name for t in bob_at_alice.track_publications.values()]
            await until(lambda: bobs_tracks_at_alice() == ["microphone"],
                        what=f"alice sees bob's new track after the resume ({bobs_tracks_at_alice()})")
            pub.track.mute()
            await until(lambda: ("bob", "microphone") in wa.muted, what="alice sees bob's mute after the resume")
            assert "bob" not in wa.left and wa.joined.count("bob") <= 1, (wa.left, wa.joined)
        finally:
            await leave((alice, bob), (wa, wb), feeding)
            await outage.close()

    asyncio.run(scenario())


def test_garbage_on_one_signalling_connection_disturbs_no_one(server):
    """Mallory joins with a WebSocket of her own (aiohttp's, not an SDK) and sends what no SDK
    would: a text frame, bytes that are no protobuf, a truncated request. Ward drops each (and
    counts them), and her connection still answers a ping. A message over the size limit closes
    her connection (1009, message too big). Alice and Bob, on LiveKit's SDK in the same room,
    keep receiving media and data throughout."""
    async def scenario():
        room = "stoerung"
        alice, bob = rtc.Room(), rtc.Room()
        wa, wb = Watcher(alice), Watcher(bob)
        await alice.connect(ws_url(server), token("alice", room=room))
        feeding = await publish_camera_and_microphone(alice)
        await bob.connect(ws_url(server), token("bob", room=room))
        http = aiohttp.ClientSession()
        try:
            await until(lambda: wb.video_frames >= 30, what="bob decodes alice's video")
            bad_before = rtc_metric(server, "ward_rtc_bad_signals_total")
            url = f"{ws_url(server)}/rtc?access_token={token('mallory', room=room)}&protocol=15"
            ws = await http.ws_connect(url, max_msg_size=0)

            async def next_response(kind: str) -> signal.SignalResponse:
                while True:
                    msg = await ws.receive(timeout=10)
                    assert msg.type == aiohttp.WSMsgType.BINARY, msg
                    response = signal.SignalResponse.FromString(msg.data)
                    if response.WhichOneof("message") == kind:
                        return response

            await next_response("join")
            await until(lambda: "mallory" in wa.joined, what="alice sees mallory join")

            await ws.send_str('{"ping_req": {"timestamp": 1}}')
            await ws.send_bytes(b"\xff" * 64)  # wire type 7: no protobuf at all
            offer = signal.SignalRequest(offer=signal.SessionDescription(type="offer", sdp="v=0\r\n" * 50))
            await ws.send_bytes(offer.SerializeToString()[:-7])
            await ws.send_bytes(signal.SignalRequest(ping_req=signal.Ping(timestamp=42)).SerializeToString())
            pong = await next_response("pong_resp")
            assert pong.pong_resp.last_ping_timestamp == 42
            # The text frame is ignored; the two undecodable ones are counted (published each second).
            await until(lambda: rtc_metric(server, "ward_rtc_bad_signals_total") >= bad_before + 2,
                        what="the undecodable requests counted in the metrics")

            # Over the limit (MAX_SIGNAL_BYTES, 1 MiB): the connection is closed, not the server.
            await ws.send_bytes(b"\x00" * (1024 * 1024 + 1))
            closing = await ws.receive(timeout=10)
            while closing.type == aiohttp.WSMsgType.BINARY:
                closing = await ws.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
            assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG, ws.close_code

            # Alice and Bob never noticed.
            frames = wb.video_frames
            await until(lambda: wb.video_frames >= frames + 30, what="bob keeps decoding alice's video")
            await bob.local_participant.publish_data(b"noch da", reliable=True, topic="chat")
            await until(lambda: ("bob", b"noch da", "chat") in wa.data, what="bob's data reaches alice")
            assert requests.get(server.url + "/_matrix/client/versions", timeout=10).ok
        finally:
            await http.close()
            await leave((alice, bob), (wa, wb), feeding)

    asyncio.run(scenario())


def test_a_broken_websocket_frame_is_answered_with_1002(server):
    """A client frame without the mask RFC 6455 requires of clients (written by hand on a raw
    socket: no library sends one) ends that signalling connection with close code 1002 and
    the reason, not with a dropped connection."""
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=10) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /rtc?access_token={token('mallet', room='stoerung-2')}&protocol=15 HTTP/1.1\r\n"
                   f"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        reader = s.makefile("rb")
        status = reader.readline()
        assert b" 101 " in status, status
        while reader.readline() not in (b"\r\n", b""):
            pass

        def frame():
            first, second = reader.read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", reader.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", reader.read(8))[0]
            return first & 0x0F, reader.read(length)

        assert frame()[0] == 0x2, "the join response comes first, as a binary frame"
        s.sendall(b"\x82\x05hello")  # FIN, binary, five bytes, and no mask
        while True:
            opcode, payload = frame()
            if opcode == 0x8:
                break
        code = struct.unpack("!H", payload[:2])[0]
        assert code == 1002, (code, payload)
        assert b"protocol error" in payload, payload
    assert requests.get(server.url + "/_matrix/client/versions", timeout=10).ok
