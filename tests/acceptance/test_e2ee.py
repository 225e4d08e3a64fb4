"""End-to-end encryption with matrix-nio[e2e] (Olm/Megolm via vodozemac): key upload, key
query, one-time key claims, to-device room keys, device-list tracking.

Portable: runs against Synapse too (scripts/test-against-synapse). The rooms are created with
`m.room.encryption` in their initial state, so the test does not depend on Ward's
encryption-by-default."""

import asyncio
import io
import uuid

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    DownloadResponse,
    JoinResponse,
    LoginResponse,
    MegolmEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomEncryptedFile,
    RoomMessageText,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
    UploadResponse,
)
from nio.crypto.attachments import decrypt_attachment

pytestmark = pytest.mark.portable

PASSWORD = "correct horse battery"
ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


def config() -> AsyncClientConfig:
    return AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, encryption_enabled=True, store_sync_tokens=True)


async def new_user(server, tmp_path, prefix: str) -> AsyncClient:
    token = server.create_registration_token(uses=1)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    store = tmp_path / f"{name}-1"
    store.mkdir()
    c = AsyncClient(server.url, name, store_path=str(store), config=config())
    r = await c.register_with_token(name, PASSWORD, token, device_name=f"{prefix}'s laptop")
    assert isinstance(r, RegisterResponse), r
    # register_with_token does not load the Olm account; a login-style restore does.
    c.restore_login(c.user_id, c.device_id, c.access_token)
    await settle(c)
    return c


async def another_device(server, tmp_path, user: AsyncClient, n: int) -> AsyncClient:
    store = tmp_path / f"{user.user}-{n}"
    store.mkdir()
    c = AsyncClient(server.url, user.user_id, store_path=str(store), config=config())
    r = await c.login(PASSWORD, device_name=f"device {n}")
    assert isinstance(r, LoginResponse), r
    await settle(c)
    return c


async def settle(c: AsyncClient, timeout_ms: int = 0) -> SyncResponse:
    """Syncs once and does the housekeeping nio's sync_forever would do: upload keys, query
    changed device lists, claim keys, send queued to-device messages."""
    s = await c.sync(timeout=timeout_ms, full_state=False)
    assert isinstance(s, SyncResponse), s
    if c.should_upload_keys:
        r = await c.keys_upload()
        assert not hasattr(r, "status_code"), r
    if c.should_query_keys:
        await c.keys_query()
    if c.should_claim_keys:
        await c.keys_claim(c.get_users_for_key_claiming())
    await c.send_to_device_messages()
    return s


async def settle_all(*clients: AsyncClient, rounds: int = 3) -> None:
    for _ in range(rounds):
        for c in clients:
            await settle(c)


def texts(client: AsyncClient, room_id: str, s: SyncResponse) -> list:
    room = s.rooms.join.get(room_id)
    return [e.body for e in room.timeline.events if isinstance(e, RoomMessageText)] if room else []


async def send(c: AsyncClient, room_id: str, body: str) -> None:
    r = await c.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                          ignore_unverified_devices=True)
    assert isinstance(r, RoomSendResponse), r


async def receive(c: AsyncClient, room_id: str, body: str, timeout_s: float = 30) -> None:
    """Syncs (long-polling) until `body` arrives decrypted."""
    seen, undecrypted = [], []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        s = await settle(c, timeout_ms=1000)
        seen += texts(c, room_id, s)
        room = s.rooms.join.get(room_id)
        if room:
            undecrypted += [e for e in room.timeline.events if isinstance(e, MegolmEvent)]
        if body in seen:
            return
    raise AssertionError(f"{c.user_id}/{c.device_id} never decrypted {body!r}; saw {seen}, undecrypted {undecrypted}")


def assert_no_plaintext(server, secrets: list) -> None:
    """Scans every file under the server's directory for each secret, as UTF-8 bytes."""
    needles = [s.encode() for s in secrets]
    scanned = 0
    for path in server.dir.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        scanned += 1
        for needle in needles:
            assert needle not in data, f"plaintext {needle!r} found in {path}"
    assert scanned > 0


async def receive_event(c: AsyncClient, room_id: str, kind, timeout_s: float = 30):
    """Syncs until an event of `kind` (a nio event class) arrives in the room, decrypted."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        s = await settle(c, timeout_ms=1000)
        room = s.rooms.join.get(room_id)
        for e in room.timeline.events if room else []:
            if isinstance(e, kind):
                return e
    raise AssertionError(f"{c.user_id} never received a {kind.__name__}")


def test_encrypted_chat_both_ways_and_a_later_device(homeserver, tmp_path):
    asyncio.run(encrypted_chat(homeserver, tmp_path))


async def encrypted_chat(server, tmp_path):
    alice = await new_user(server, tmp_path, "alice")
    bob = await new_user(server, tmp_path, "bob")
    clients = [alice, bob]
    try:
        r = await alice.room_create(name="Befunde", invite=[bob.user_id], initial_state=[ENCRYPTION])
        assert isinstance(r, RoomCreateResponse), r
        room = r.room_id
        await settle(bob)
        assert isinstance(await bob.join(room), JoinResponse)
        await settle_all(alice, bob)

        # The keys each uploaded are visible to the other, with their self-signatures.
        assert bob.device_id in alice.device_store[bob.user_id].keys()
        assert alice.device_id in bob.device_store[alice.user_id].keys()

        await send(alice, room, "Laborwerte von Frau M. sind da")
        await receive(bob, room, "Laborwerte von Frau M. sind da")
        await send(bob, room, "Danke, ich rufe sie an")
        await receive(alice, room, "Danke, ich rufe sie an")

        # Bob logs in on a phone later: Alice hears of the new device through device_lists,
        # shares the room key with it, and the phone decrypts new messages.
        phone = await another_device(server, tmp_path, bob, 2)
        clients.append(phone)
        await settle_all(alice, bob, phone)
        assert phone.device_id in alice.device_store[bob.user_id].keys(), "new device not seen by alice"
        await send(alice, room, "Termin morgen um 9")
        await receive(phone, room, "Termin morgen um 9")
        await receive(bob, room, "Termin morgen um 9")

        # An encrypted attachment: uploaded as ciphertext, its key only in the encrypted event.
        report = b"Befundbericht Frau M.: Haemoglobin 13.2 g/dl, Leukozyten normal. " * 200
        # Like Element, no file name on the upload of an encrypted file: the name travels in the
        # encrypted event only.
        up, keys = await alice.upload(io.BytesIO(report), content_type="application/pdf",
                                      encrypt=True, filesize=len(report))
        assert isinstance(up, UploadResponse), up
        r = await alice.room_send(room, "m.room.message", {
            "msgtype": "m.file", "body": "befund.pdf", "file": {**keys, "url": up.content_uri},
            "info": {"mimetype": "application/pdf", "size": len(report)}}, ignore_unverified_devices=True)
        assert isinstance(r, RoomSendResponse), r
        file_event = await receive_event(bob, room, RoomEncryptedFile)
        got = await bob.download(mxc=file_event.url)
        assert isinstance(got, DownloadResponse), got
        assert decrypt_attachment(got.body, file_event.key["k"], file_event.hashes["sha256"], file_event.iv) == report

        # Nothing the server stored (database, write-ahead log, media, logs) holds a message
        # or the file in plaintext.
        assert_no_plaintext(server, ["Laborwerte von Frau M. sind da", "Danke, ich rufe sie an",
                                     "Termin morgen um 9", "befund.pdf", report[:60].decode()])
        # The scan does find text that was sent unencrypted (a control for the check itself).
        r = await alice.room_create(name="Kantine", preset=RoomPreset.public_chat)
        await settle(alice)
        await send(alice, r.room_id, "Kontrollsatz im Klartext")
        with pytest.raises(AssertionError, match="Kontrollsatz"):
            assert_no_plaintext(server, ["Kontrollsatz im Klartext"])

        # A deleted device disappears from the others' device lists.
        await phone.logout()
        clients.remove(phone)
        await settle_all(alice, bob)
        assert phone.device_id not in alice.device_store[bob.user_id].keys() or \
            alice.device_store[bob.user_id][phone.device_id].deleted
    finally:
        for c in clients:
            await c.close()
