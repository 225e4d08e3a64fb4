"""A room with 1,000 members and 10,000 messages works, and an initial sync with lazy-loaded
members stays fast and small. Figures are printed, not asserted (machines differ); what is
asserted is that it works and that the lazy-loaded response does not carry the full member
list."""

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from nio import AsyncClient, AsyncClientConfig

MEMBERS = int(os.environ.get("WARD_LARGE_ROOM_MEMBERS", "1000"))
MESSAGES = int(os.environ.get("WARD_LARGE_ROOM_MESSAGES", "10000"))
PASSWORD = "large room password"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_large_room(ward_factory):
    server = ward_factory("open", env={"WARD_LOG_LEVEL": "warn"})
    api = server.url + "/_matrix/client/v3"
    started = time.monotonic()

    def register(i: int) -> str:
        s = requests.Session()
        r = s.post(api + "/register", json={"username": f"m{i:04d}", "password": PASSWORD,
                                            "auth": {"type": "m.login.dummy"}}, timeout=60)
        if r.status_code == 401:
            r = s.post(api + "/register", json={"username": f"m{i:04d}", "password": PASSWORD,
                                                "auth": {"type": "m.login.dummy", "session": r.json()["session"]}},
                       timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        tokens = list(pool.map(register, range(MEMBERS)))
    t_users = time.monotonic() - started

    owner = {"Authorization": f"Bearer {tokens[0]}"}
    room = requests.post(api + "/createRoom", headers=owner, json={"preset": "public_chat", "name": "Großraum"}).json()["room_id"]

    def join(token: str) -> None:
        r = requests.post(api + f"/rooms/{room}/join", headers={"Authorization": f"Bearer {token}"}, json={},
                          timeout=60)
        assert r.status_code == 200, r.text

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(join, tokens[1:]))
    t_joins = time.monotonic() - t0

    senders = tokens[:20]

    def send(i: int) -> None:
        token = senders[i % len(senders)]
        r = requests.put(api + f"/rooms/{room}/send/m.room.message/big{i}",
                         headers={"Authorization": f"Bearer {token}"},
                         json={"msgtype": "m.text", "body": f"Nachricht {i}"}, timeout=60)
        assert r.status_code == 200, r.text

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, range(MESSAGES)))
    t_msgs = time.monotonic() - t0

    # A member who has not sent anything syncs from scratch with lazy-loaded members.
    rss_before = rss_kib(server.proc.pid)

    async def initial_sync():
        c = AsyncClient(server.url, f"@m{MEMBERS - 1:04d}:localhost",
                        config=AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0))
        try:
            await c.login(PASSWORD)
            timings = []
            for _ in range(3):
                t = time.monotonic()
                s = await c.sync(timeout=0, full_state=True,
                                 sync_filter={"room": {"state": {"lazy_load_members": True},
                                                       "timeline": {"limit": 20}}})
                timings.append(time.monotonic() - t)
            raw = await c.send("GET", "/_matrix/client/v3/sync?filter=" + requests.utils.quote(
                '{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":20}}}'),
                headers={"Authorization": f"Bearer {c.access_token}"})
            body = await raw.read()
            return s, timings, len(body)
        finally:
            await c.close()

    s, timings, size = asyncio.run(initial_sync())
    rss_after = rss_kib(server.proc.pid)
    joined = s.rooms.join[room]
    members_sent = [e for e in joined.state if type(e).__name__ == "RoomMemberEvent"]
    assert len(joined.timeline.events) == 20 and joined.timeline.limited
    assert len(members_sent) <= 25, f"lazy loading sent {len(members_sent)} member events"
    assert joined.summary.joined_member_count == MEMBERS

    # The history is all there: page back over the newest 1,000 messages.
    token = s.next_batch
    seen = 0
    t0 = time.monotonic()
    while seen < 1000:
        page = requests.get(api + f"/rooms/{room}/messages", headers=owner,
                            params={"dir": "b", "limit": 250, "from": token}).json()
        seen += len(page["chunk"])
        token = page["end"]
    t_page = time.monotonic() - t0

    print(f"\n[large room] {MEMBERS} users registered in {t_users:.1f}s, joined in {t_joins:.1f}s, "
          f"{MESSAGES} messages sent in {t_msgs:.1f}s ({MESSAGES / t_msgs:.0f}/s, debug build, 8 clients)")
    print(f"[large room] lazy-loading initial sync: {', '.join(f'{t * 1000:.0f} ms' for t in timings)}; "
          f"{size / 1024:.0f} KiB; {len(members_sent)} member events of {MEMBERS}")
    print(f"[large room] 1000 messages paged back in {t_page * 1000:.0f} ms; "
          f"server RSS {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after the syncs")
