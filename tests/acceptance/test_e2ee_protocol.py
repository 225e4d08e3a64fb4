"""The E2EE endpoints at the protocol level, with real ed25519 keys from vodozemac (the crypto
library inside matrix-nio[e2e]): one-time key claims, to-device delivery and acknowledgement,
device lists in sync, cross-signing, key backup, and bad input to all of them.

Tests marked `portable` pass against Synapse too; the others check Ward's own rules (its
stricter checks, its limits, its encryption default)."""

import copy
import json
import uuid

import pytest
import requests
import vodozemac

from harness import http_json

PASSWORD = "correct horse battery"
MEGOLM = "m.megolm.v1.aes-sha2"
ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
portable = pytest.mark.portable


def canonical(obj) -> bytes:
    obj = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Signer:
    """An ed25519 key pair (a vodozemac account used only for signing)."""

    def __init__(self):
        self.account = vodozemac.Account()
        self.public = self.account.ed25519_key.to_base64()

    def sign(self, obj: dict, user: str, key_id: str) -> dict:
        sig = self.account.sign(canonical(obj)).to_base64()
        obj.setdefault("signatures", {}).setdefault(user, {})[key_id] = sig
        return obj


class Client:
    """A logged-in device speaking plain HTTP, with real identity keys."""

    def __init__(self, server, user: str, token: str, device: str):
        self.server, self.user, self.token, self.device = server, user, token, device
        self.account = vodozemac.Account()
        self.since = None

    def call(self, method, path, body=None, **kw):
        r = requests.request(method, self.server.url + path, json=body,
                             headers={"Authorization": f"Bearer {self.token}"}, timeout=30, **kw)
        return r.status_code, (r.json() if r.content else {})

    def ok(self, method, path, body=None, **kw):
        status, j = self.call(method, path, body, **kw)
        assert status == 200, (method, path, status, j)
        return j

    def device_keys(self) -> dict:
        keys = {
            "user_id": self.user,
            "device_id": self.device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"ed25519:{self.device}": self.account.ed25519_key.to_base64(),
                     f"curve25519:{self.device}": self.account.curve25519_key.to_base64()},
        }
        sig = self.account.sign(canonical(keys)).to_base64()
        keys["signatures"] = {self.user: {f"ed25519:{self.device}": sig}}
        return keys

    def one_time_keys(self, n: int) -> dict:
        self.account.generate_one_time_keys(n)
        out = {}
        for key_id, key in self.account.one_time_keys.items():
            k = {"key": key.to_base64()}
            k["signatures"] = {self.user: {f"ed25519:{self.device}": self.account.sign(canonical(k)).to_base64()}}
            out[f"signed_curve25519:{key_id}"] = k
        self.account.mark_keys_as_published()
        return out

    def upload(self, otks: int = 0, fallback: bool = False) -> dict:
        body = {"device_keys": self.device_keys(), "one_time_keys": self.one_time_keys(otks) if otks else {}}
        if fallback:
            k = {"key": vodozemac.Curve25519SecretKey().public_key().to_base64(), "fallback": True}
            k["signatures"] = {self.user: {f"ed25519:{self.device}": self.account.sign(canonical(k)).to_base64()}}
            body["fallback_keys"] = {"signed_curve25519:fb1": k}
        return self.ok("POST", "/_matrix/client/v3/keys/upload", body)

    def sync(self, timeout_ms=0, since="keep"):
        params = {"timeout": timeout_ms}
        s = self.since if since == "keep" else since
        if s:
            params["since"] = s
        j = self.ok("GET", "/_matrix/client/v3/sync", params=params)
        if since == "keep":
            self.since = j["next_batch"]
        return j


def register(server, prefix: str) -> Client:
    token = server.create_registration_token(uses=1)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = server.url + "/_matrix/client/v3/register"
    session = requests.post(url, json={"username": name, "password": PASSWORD}).json()["session"]
    requests.post(url, json={"username": name, "password": PASSWORD,
                             "auth": {"type": "m.login.registration_token", "token": token, "session": session}})
    r = requests.post(url, json={"username": name, "password": PASSWORD,
                                 "auth": {"type": "m.login.dummy", "session": session}})
    assert r.status_code == 200, r.text
    j = r.json()
    return Client(server, j["user_id"], j["access_token"], j["device_id"])


def login(server, user: str) -> Client:
    status, j = http_json("POST", server.url + "/_matrix/client/v3/login",
                          {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                           "password": PASSWORD})
    assert status == 200, j
    return Client(server, j["user_id"], j["access_token"], j["device_id"])


def shared_room(a: Client, b: Client, encrypted=True) -> str:
    room = a.ok("POST", "/_matrix/client/v3/createRoom",
                {"invite": [b.user], "initial_state": [ENCRYPTION] if encrypted else []})["room_id"]
    b.ok("POST", f"/_matrix/client/v3/join/{room}", {})
    return room


def query(c: Client, *users) -> dict:
    return c.ok("POST", "/_matrix/client/v3/keys/query", {"device_keys": {u: [] for u in users}})


# ---- one-time keys ----

@portable
def test_each_one_time_key_is_claimed_once_then_the_fallback_key(homeserver):
    alice, bob = register(homeserver, "alice"), register(homeserver, "bob")
    shared_room(alice, bob)
    counts = bob.upload(otks=3, fallback=True)["one_time_key_counts"]
    assert counts["signed_curve25519"] == 3
    claimed = set()
    for _ in range(3):
        j = alice.ok("POST", "/_matrix/client/v3/keys/claim",
                     {"one_time_keys": {bob.user: {bob.device: "signed_curve25519"}}})
        (key_id, key), = j["one_time_keys"][bob.user][bob.device].items()
        assert key_id not in claimed and "fallback" not in key
        claimed.add(key_id)
    s = bob.sync()
    assert s["device_one_time_keys_count"].get("signed_curve25519", 0) == 0
    assert s["device_unused_fallback_key_types"] == ["signed_curve25519"]
    j = alice.ok("POST", "/_matrix/client/v3/keys/claim",
                 {"one_time_keys": {bob.user: {bob.device: "signed_curve25519"}}})
    (key_id, key), = j["one_time_keys"][bob.user][bob.device].items()
    assert key_id == "signed_curve25519:fb1" and key["fallback"] is True
    assert bob.sync()["device_unused_fallback_key_types"] == []
    # An unknown device simply has no key (the spec's answer, so a deleted device does not
    # fail the claim for the others).
    j = alice.ok("POST", "/_matrix/client/v3/keys/claim",
                 {"one_time_keys": {bob.user: {"NOSUCHDEVICE": "signed_curve25519"}}})
    assert j["one_time_keys"].get(bob.user, {}) == {}


# ---- to-device ----

@portable
def test_to_device_messages_are_delivered_once_and_kept_until_acknowledged(homeserver):
    alice, bob = register(homeserver, "alice"), register(homeserver, "bob")
    bob.sync()
    body = {"messages": {bob.user: {bob.device: {"secret": "ciphertext-1"}}}}
    alice.ok("PUT", "/_matrix/client/v3/sendToDevice/m.test.kind/txn1", body)
    # A retry with the same transaction ID is not delivered twice.
    alice.ok("PUT", "/_matrix/client/v3/sendToDevice/m.test.kind/txn1", body)
    first = bob.sync(since=bob.since)  # does not move bob's token
    msgs = first["to_device"]["events"]
    assert [(m["type"], m["sender"], m["content"]) for m in msgs] == \
        [("m.test.kind", alice.user, {"secret": "ciphertext-1"})]
    # Not acknowledged yet (same since): delivered again.
    again = bob.sync(since=bob.since)
    assert again["to_device"]["events"] == msgs
    # Acknowledged by syncing with the token that carried them: gone.
    after = bob.sync(since=first["next_batch"])
    assert after.get("to_device", {}).get("events", []) == []
    # `*` reaches every device of the user.
    phone = login(homeserver, bob.user)
    phone.sync()
    alice.ok("PUT", "/_matrix/client/v3/sendToDevice/m.test.kind/txn2",
             {"messages": {bob.user: {"*": {"n": 2}}}})
    assert [m["content"] for m in phone.sync(timeout_ms=5000)["to_device"]["events"]] == [{"n": 2}]
    assert [m["content"] for m in bob.sync(since=first["next_batch"])["to_device"]["events"]] == [{"n": 2}]


@portable
def test_a_long_poll_wakes_for_a_to_device_message(homeserver):
    import threading
    import time
    alice, bob = register(homeserver, "alice"), register(homeserver, "bob")
    bob.sync()
    timer = threading.Timer(0.5, lambda: alice.ok(
        "PUT", "/_matrix/client/v3/sendToDevice/m.test/t1", {"messages": {bob.user: {bob.device: {"x": 1}}}}))
    timer.start()
    t0 = time.monotonic()
    s = bob.sync(timeout_ms=20000)
    timer.join()
    assert [m["content"] for m in s["to_device"]["events"]] == [{"x": 1}]
    assert time.monotonic() - t0 < 10


def test_to_device_queue_is_bounded_and_drains_in_pages(ward_factory):
    server = ward_factory("token", env={"WARD_TO_DEVICE_QUEUE_MAX": "150"})
    alice, bob = register(server, "alice"), register(server, "bob")
    bob.sync()
    for i in range(160):
        alice.ok("PUT", f"/_matrix/client/v3/sendToDevice/m.test/t{i}", {"messages": {bob.user: {bob.device: {"i": i}}}})
    got = []
    for _ in range(5):
        s = bob.sync()
        got += [m["content"]["i"] for m in s.get("to_device", {}).get("events", [])]
    # One sync hands out at most 100; the queue kept the first 150, the rest were dropped.
    assert got == list(range(150))


# ---- device lists ----

@portable
def test_device_lists_report_new_devices_and_people_who_left(homeserver):
    alice, bob = register(homeserver, "alice"), register(homeserver, "bob")
    alice.upload()
    room = shared_room(alice, bob)
    bob.upload()
    alice.sync()
    # Bob logs in on a second device and uploads its keys: alice hears of it.
    phone = login(homeserver, bob.user)
    phone.upload()
    s = alice.sync()
    assert bob.user in s.get("device_lists", {}).get("changed", []), s.get("device_lists")
    assert phone.device in query(alice, bob.user)["device_keys"][bob.user]
    # keys/changes reports the same between two tokens.
    before = alice.since
    phone.ok("PUT", f"/_matrix/client/v3/devices/{phone.device}", {"display_name": "Bobs Telefon"})
    s = alice.sync()
    changes = alice.ok("GET", "/_matrix/client/v3/keys/changes", params={"from": before, "to": alice.since})
    assert bob.user in changes["changed"]
    # Bob leaves the only shared room: alice stops tracking him.
    bob.ok("POST", f"/_matrix/client/v3/rooms/{room}/leave", {})
    s = alice.sync()
    assert bob.user in s.get("device_lists", {}).get("left", []), s.get("device_lists")


def test_keys_are_only_shown_to_people_sharing_a_room(homeserver):
    alice, carol = register(homeserver, "alice"), register(homeserver, "carol")
    alice.upload(otks=2)
    # Carol shares no room with alice: she sees no devices and can claim no key.
    assert query(carol, alice.user)["device_keys"].get(alice.user, {}) == {}
    j = carol.ok("POST", "/_matrix/client/v3/keys/claim",
                 {"one_time_keys": {alice.user: {alice.device: "signed_curve25519"}}})
    assert j["one_time_keys"] == {}
    # An invitation is enough (clients encrypt for invited members).
    alice.ok("POST", "/_matrix/client/v3/createRoom", {"invite": [carol.user]})
    assert alice.device in query(carol, alice.user)["device_keys"][alice.user]


# ---- cross-signing ----

def cross_signing_keys(c: Client):
    master, ssk, usk = Signer(), Signer(), Signer()
    mk = {"user_id": c.user, "usage": ["master"], "keys": {f"ed25519:{master.public}": master.public}}
    sk = {"user_id": c.user, "usage": ["self_signing"], "keys": {f"ed25519:{ssk.public}": ssk.public}}
    uk = {"user_id": c.user, "usage": ["user_signing"], "keys": {f"ed25519:{usk.public}": usk.public}}
    master.sign(sk, c.user, f"ed25519:{master.public}")
    master.sign(uk, c.user, f"ed25519:{master.public}")
    return (master, mk), (ssk, sk), (usk, uk)


@portable
def test_cross_signing_upload_and_signatures(homeserver):
    alice, bob = register(homeserver, "alice"), register(homeserver, "bob")
    alice.upload()
    bob.upload()
    shared_room(alice, bob)
    (master, mk), (ssk, sk), (usk, uk) = cross_signing_keys(alice)
    # The first upload needs no password.
    alice.ok("POST", "/_matrix/client/v3/keys/device_signing/upload",
             {"master_key": mk, "self_signing_key": sk, "user_signing_key": uk})
    # Alice's self-signing key signs her device.
    dk = alice.device_keys()
    signed = copy.deepcopy(dk)
    ssk.sign(signed, alice.user, f"ed25519:{ssk.public}")
    j = alice.ok("POST", "/_matrix/client/v3/keys/signatures/upload", {alice.user: {alice.device: signed}})
    assert j.get("failures", {}) == {}, j
    q = query(bob, alice.user)
    assert q["master_keys"][alice.user]["keys"] == mk["keys"]
    assert q["self_signing_keys"][alice.user]["keys"] == sk["keys"]
    assert alice.user not in q.get("user_signing_keys", {}), "only the owner sees a user-signing key"
    device = q["device_keys"][alice.user][alice.device]
    assert device["signatures"][alice.user][f"ed25519:{ssk.public}"] == \
        signed["signatures"][alice.user][f"ed25519:{ssk.public}"]
    assert query(alice, alice.user)["user_signing_keys"][alice.user]["keys"] == uk["keys"]
    # A signature that does not verify is refused per key, not stored.
    phone = login(homeserver, alice.user)
    phone.upload()
    pk = phone.device_keys()
    forged = copy.deepcopy(pk)
    forged["signatures"][alice.user][f"ed25519:{ssk.public}"] = \
        Signer().sign(copy.deepcopy(pk), "x", "y")["signatures"]["x"]["y"]
    j = alice.ok("POST", "/_matrix/client/v3/keys/signatures/upload", {alice.user: {phone.device: forged}})
    assert j["failures"][alice.user][phone.device]["errcode"] == "M_INVALID_SIGNATURE", j
    phone_keys = query(bob, alice.user)["device_keys"][alice.user][phone.device]
    assert f"ed25519:{ssk.public}" not in phone_keys["signatures"][alice.user]
    # Replacing the keys needs the password (user-interactive auth).
    (_, mk2), _, _ = cross_signing_keys(alice)
    status, j = alice.call("POST", "/_matrix/client/v3/keys/device_signing/upload", {"master_key": mk2})
    assert status == 401 and "session" in j, j
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.user},
            "password": PASSWORD, "session": j["session"]}
    alice.ok("POST", "/_matrix/client/v3/keys/device_signing/upload", {"master_key": mk2, "auth": auth})
    assert query(bob, alice.user)["master_keys"][alice.user]["keys"] == mk2["keys"]


def test_cross_signing_keys_must_be_signed_by_the_master_key(homeserver):
    alice = register(homeserver, "alice")
    (master, mk), (ssk, sk), _ = cross_signing_keys(alice)
    unsigned = {k: v for k, v in sk.items() if k != "signatures"}
    status, j = alice.call("POST", "/_matrix/client/v3/keys/device_signing/upload",
                           {"master_key": mk, "self_signing_key": unsigned})
    assert (status, j["errcode"]) == (400, "M_INVALID_SIGNATURE"), j
    # Nothing was stored: the master key did not land alone.
    assert query(alice, alice.user).get("master_keys", {}) == {}
    status, j = alice.call("POST", "/_matrix/client/v3/keys/device_signing/upload",
                           {"master_key": {**mk, "usage": ["self_signing"]}})
    assert (status, j["errcode"]) == (400, "M_INVALID_PARAM"), j


# ---- key backup ----

BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


def session_key(index: int, forwarded: int, verified: bool, tag: str) -> dict:
    return {"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
            "session_data": {"ephemeral": tag, "ciphertext": tag, "mac": tag}}


@portable
def test_key_backup_versions_and_replacement_rules(homeserver):
    alice = register(homeserver, "alice")
    status, j = alice.call("GET", "/_matrix/client/v3/room_keys/version")
    assert (status, j["errcode"]) == (404, "M_NOT_FOUND")
    v1 = alice.ok("POST", "/_matrix/client/v3/room_keys/version",
                  {"algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": "abc"}})["version"]
    info = alice.ok("GET", "/_matrix/client/v3/room_keys/version")
    assert (info["version"], info["count"], info["auth_data"]) == (v1, 0, {"public_key": "abc"})
    room = "!room:example.org"
    path = f"/_matrix/client/v3/room_keys/keys/{room}/sess1"
    r1 = alice.ok("PUT", path, session_key(5, 0, False, "first"), params={"version": v1})
    assert r1["count"] == 1
    # A worse copy (later first index) is ignored: same etag.
    r2 = alice.ok("PUT", path, session_key(9, 0, False, "worse"), params={"version": v1})
    assert r2["etag"] == r1["etag"]
    # A verified copy beats an unverified one.
    r3 = alice.ok("PUT", path, session_key(7, 1, True, "verified"), params={"version": v1})
    assert r3["etag"] != r1["etag"]
    got = alice.ok("GET", path, params={"version": v1})
    assert got["session_data"]["ciphertext"] == "verified"
    alice.ok("PUT", "/_matrix/client/v3/room_keys/keys",
             {"rooms": {room: {"sessions": {"sess2": session_key(0, 0, False, "two")}}}}, params={"version": v1})
    everything = alice.ok("GET", "/_matrix/client/v3/room_keys/keys", params={"version": v1})
    assert sorted(everything["rooms"][room]["sessions"]) == ["sess1", "sess2"]
    # A new version becomes current; uploads to the old one are refused with the current one.
    v2 = alice.ok("POST", "/_matrix/client/v3/room_keys/version",
                  {"algorithm": BACKUP_ALGORITHM, "auth_data": {"public_key": "def"}})["version"]
    status, j = alice.call("PUT", path, session_key(0, 0, True, "x"), params={"version": v1})
    assert (status, j["errcode"]) == (403, "M_WRONG_ROOM_KEYS_VERSION") and "current_version" in j, j
    status, j = alice.call("GET", f"/_matrix/client/v3/room_keys/keys/{room}/nosuch", params={"version": v2})
    assert (status, j["errcode"]) == (404, "M_NOT_FOUND")
    deleted = alice.ok("DELETE", f"/_matrix/client/v3/room_keys/keys/{room}", params={"version": v1})
    assert deleted["count"] == 0
    alice.ok("DELETE", f"/_matrix/client/v3/room_keys/version/{v1}")
    status, j = alice.call("GET", f"/_matrix/client/v3/room_keys/version/{v1}")
    assert (status, j["errcode"]) == (404, "M_NOT_FOUND")


# ---- encryption by default ----

def room_encryption(c: Client, room: str):
    status, j = c.call("GET", f"/_matrix/client/v3/rooms/{room}/state/m.room.encryption/")
    return j if status == 200 else None


def test_private_rooms_and_direct_chats_are_encrypted_by_default(homeserver):
    alice, bob = register(homeserver, "alice"), register(homeserver, "bob")
    private = alice.ok("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"})["room_id"]
    trusted = alice.ok("POST", "/_matrix/client/v3/createRoom",
                       {"preset": "trusted_private_chat", "is_direct": True, "invite": [bob.user]})["room_id"]
    default = alice.ok("POST", "/_matrix/client/v3/createRoom", {})["room_id"]
    public = alice.ok("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"})["room_id"]
    dm = alice.ok("POST", "/_matrix/client/v3/createRoom",
                  {"preset": "public_chat", "is_direct": True, "invite": [bob.user]})["room_id"]
    for room in (private, trusted, default, dm):
        assert room_encryption(alice, room) == {"algorithm": MEGOLM}, room
    assert room_encryption(alice, public) is None
    # A client's own encryption settings win (and are not doubled).
    own = alice.ok("POST", "/_matrix/client/v3/createRoom",
                   {"initial_state": [{**ENCRYPTION, "content": {"algorithm": MEGOLM,
                                                                  "rotation_period_msgs": 10}}]})["room_id"]
    assert room_encryption(alice, own)["rotation_period_msgs"] == 10
    # And encryption, once on, cannot be switched off.
    status, j = alice.call("PUT", f"/_matrix/client/v3/rooms/{private}/state/m.room.encryption/", {})
    assert (status, j["errcode"]) == (403, "M_FORBIDDEN"), j
    assert room_encryption(alice, private) == {"algorithm": MEGOLM}


@pytest.mark.parametrize("setting,public_encrypted,private_encrypted",
                         [("all", True, True), ("off", False, False)])
def test_encryption_default_setting(ward_factory, setting, public_encrypted, private_encrypted):
    server = ward_factory("token", env={"WARD_ENCRYPTION_BY_DEFAULT": setting})
    alice = register(server, "alice")
    public = alice.ok("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"})["room_id"]
    private = alice.ok("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"})["room_id"]
    assert (room_encryption(alice, public) is not None) == public_encrypted
    assert (room_encryption(alice, private) is not None) == private_encrypted


# ---- bad input ----

def test_bad_key_uploads_are_refused_and_nothing_is_half_stored(homeserver):
    alice = register(homeserver, "alice")
    good = alice.device_keys()
    cases = [
        ({**good, "device_id": "OTHERDEVICE"}, "M_INVALID_PARAM"),
        ({**good, "user_id": "@mallory:localhost"}, "M_INVALID_PARAM"),
        ({**good, "keys": {**good["keys"], f"curve25519:{alice.device}": "tampered"}}, "M_INVALID_SIGNATURE"),
        ({k: v for k, v in good.items() if k != "signatures"}, "M_INVALID_SIGNATURE"),
        ({k: v for k, v in good.items() if k != "keys"}, None),
        ("not an object", None),
    ]
    for keys, errcode in cases:
        status, j = alice.call("POST", "/_matrix/client/v3/keys/upload", {"device_keys": keys})
        assert 400 <= status < 500, (keys, status, j)
        if errcode:
            assert j["errcode"] == errcode, (keys, j)
    assert query(alice, alice.user)["device_keys"][alice.user] == {}
    alice.upload(otks=2)
    # The device's identity keys cannot change afterwards.
    other = Client(homeserver, alice.user, alice.token, alice.device)
    status, j = alice.call("POST", "/_matrix/client/v3/keys/upload", {"device_keys": other.device_keys()})
    assert (status, j["errcode"]) == (400, "M_INVALID_PARAM"), j
    # A one-time key ID reused with other content fails the whole upload.
    otks = alice.one_time_keys(1)
    kid = next(iter(otks))
    alice.ok("POST", "/_matrix/client/v3/keys/upload", {"one_time_keys": otks})
    status, j = alice.call("POST", "/_matrix/client/v3/keys/upload",
                           {"one_time_keys": {"signed_curve25519:NEWKEY": {"key": "x"}, kid: {"key": "different"}}})
    assert (status, j["errcode"]) == (400, "M_INVALID_PARAM"), j
    counts = alice.ok("POST", "/_matrix/client/v3/keys/upload", {})["one_time_key_counts"]
    assert counts["signed_curve25519"] == 3, counts  # the 2 + 1 good ones, nothing of the refused upload
    for body in [{"one_time_keys": {"nocolon": {"key": "x"}}}, {"one_time_keys": []},
                 {"fallback_keys": {"bad": 1}}]:
        status, j = alice.call("POST", "/_matrix/client/v3/keys/upload", body)
        assert 400 <= status < 500, (body, status, j)


def test_bad_to_device_and_claims(homeserver):
    alice, bob = register(homeserver, "alice"), register(homeserver, "bob")
    big = {"messages": {bob.user: {bob.device: {"blob": "x" * 70_000}}}}
    status, j = alice.call("PUT", "/_matrix/client/v3/sendToDevice/m.test/big", big)
    assert (status, j["errcode"]) in ((400, "M_TOO_LARGE"), (413, "M_TOO_LARGE")), (status, j)
    for body in [{"messages": {"not-a-user": {"D": {}}}}, {"messages": {bob.user: {"D": "text"}}},
                 {"messages": []}, {}]:
        status, j = alice.call("PUT", f"/_matrix/client/v3/sendToDevice/m.test/{uuid.uuid4().hex}", body)
        assert 400 <= status < 500 and j["errcode"].startswith("M_"), (body, status, j)
    assert bob.sync().get("to_device", {}).get("events", []) == [], "nothing half-delivered"
    for body in [{"one_time_keys": {"not-a-user": {}}}, {"one_time_keys": {bob.user: {"D": 5}}}, {}]:
        status, j = alice.call("POST", "/_matrix/client/v3/keys/claim", body)
        assert 400 <= status < 500, (body, status, j)
    for body in [{"device_keys": {"not-a-user": []}}, {"device_keys": []}]:
        status, j = alice.call("POST", "/_matrix/client/v3/keys/query", body)
        assert 400 <= status < 500, (body, status, j)
    status, j = alice.call("GET", "/_matrix/client/v3/keys/changes", params={"from": "garbage", "to": "s1"})
    assert (status, j["errcode"]) == (400, "M_INVALID_PARAM"), j
    # Signatures for keys that do not exist are reported per key.
    j = alice.ok("POST", "/_matrix/client/v3/keys/signatures/upload", {alice.user: {"NODEVICE": {"keys": {}}}})
    assert j["failures"][alice.user]["NODEVICE"]["errcode"] == "M_NOT_FOUND"
    for body in [{alice.user: "x"}, []]:
        status, j = alice.call("POST", "/_matrix/client/v3/keys/signatures/upload", body)
        assert 400 <= status < 500, (body, status, j)
    # Backups: wrong algorithm type, missing fields, unknown version.
    for body in [{"algorithm": 5, "auth_data": {}}, {"algorithm": BACKUP_ALGORITHM}, {"auth_data": {}}]:
        status, j = alice.call("POST", "/_matrix/client/v3/room_keys/version", body)
        assert 400 <= status < 500, (body, status, j)
    status, j = alice.call("GET", "/_matrix/client/v3/room_keys/version/999")
    assert (status, j["errcode"]) == (404, "M_NOT_FOUND")
    status, j = alice.call("PUT", "/_matrix/client/v3/room_keys/keys/!r:x/s", session_key(0, 0, False, "x"),
                           params={"version": "1"})
    assert status == 404, (status, j)
    v = alice.ok("POST", "/_matrix/client/v3/room_keys/version",
                 {"algorithm": BACKUP_ALGORITHM, "auth_data": {}})["version"]
    status, j = alice.call("PUT", "/_matrix/client/v3/room_keys/keys/!r:x/" + "s" * 300,
                           session_key(0, 0, False, "x"), params={"version": v})
    assert (status, j["errcode"]) == (400, "M_INVALID_PARAM"), (status, j)
    assert alice.ok("GET", "/_matrix/client/v3/room_keys/version")["count"] == 0
