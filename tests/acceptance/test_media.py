"""The media repository: encrypted upload and authenticated download through matrix-nio,
thumbnails, asynchronous upload (/create + PUT), limits and safe response headers.

Tests marked portable pass against Synapse too. The others check Ward's own choices: the
deprecated unauthenticated endpoints and URL previews are off, identical files are stored once,
and an acknowledged upload survives kill -9."""

import asyncio
import hashlib
import io
import os
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
from nio import DownloadError, UploadResponse
from nio.crypto.attachments import decrypt_attachment
from PIL import Image

from test_rooms import PASSWORD, new_user

MEDIA = "/_matrix/client/v1/media"
UPLOAD = "/_matrix/media/v3/upload"


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def image_bytes(width: int, height: int, fmt: str) -> bytes:
    """A colourful test image (gradients, so resizing has something to do)."""
    img = Image.new("RGB", (width, height))
    img.putdata([((x * 255) // width, (y * 255) // height, (x + y) % 256) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def register(server, prefix: str) -> str:
    """A fresh user's access token."""
    async def make():
        c = await new_user(server, prefix)
        token = c.access_token
        await c.close()
        return token

    return asyncio.run(make())


def upload(server, token: str, data, content_type: str = "application/octet-stream", filename: str | None = None):
    query = "?" + urllib.parse.urlencode({"filename": filename}) if filename else ""
    return requests.post(server.url + UPLOAD + query, data=data,
                         headers={**auth(token), "Content-Type": content_type}, timeout=60)


def uploaded(server, token: str, data, **kw) -> tuple[str, str]:
    r = upload(server, token, data, **kw)
    assert r.status_code == 200, r.text
    uri = r.json()["content_uri"]
    assert uri.startswith("mxc://"), uri
    server_name, media_id = uri[len("mxc://"):].split("/", 1)
    return server_name, media_id


def download(server, token: str | None, server_name: str, media_id: str, suffix: str = "", **params):
    headers = auth(token) if token else {}
    return requests.get(f"{server.url}{MEDIA}/download/{server_name}/{media_id}{suffix}", params=params,
                        headers=headers, timeout=60)


def thumbnail(server, token: str, server_name: str, media_id: str, **params):
    return requests.get(f"{server.url}{MEDIA}/thumbnail/{server_name}/{media_id}", params=params,
                        headers=auth(token), timeout=60)


def expect_error(r, status: int, errcode: str):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["errcode"] == errcode, r.text


def disposition(header: str) -> tuple[str, str | None]:
    """(type, file name) from a Content-Disposition header, either encoding of the name."""
    kind, _, rest = header.partition(";")
    name = None
    for part in rest.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename*":
            charset, _, encoded = value.partition("''")
            assert charset.lower() == "utf-8", header
            name = urllib.parse.unquote(encoded)
        elif key.lower() == "filename" and name is None:
            name = value.strip('"').replace('\\"', '"')
    return kind.strip().lower(), name


@pytest.mark.portable
def test_encrypted_upload_and_authenticated_download(homeserver):
    asyncio.run(encrypted_round_trip(homeserver))


async def encrypted_round_trip(server):
    c = await new_user(server, "media")
    try:
        data = os.urandom(300_000)
        resp, keys = await c.upload(io.BytesIO(data), content_type="application/pdf", filename="Befund.pdf",
                                    encrypt=True, filesize=len(data))
        assert isinstance(resp, UploadResponse), resp
        # matrix-nio downloads through the authenticated endpoint (/_matrix/client/v1/media).
        got = await c.download(mxc=resp.content_uri)
        assert not isinstance(got, DownloadError), got
        plain = decrypt_attachment(got.body, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"])
        assert plain == data

        # The same by plain HTTP with the access token, with and without a file name.
        server_name, media_id = resp.content_uri[len("mxc://"):].split("/", 1)
        for suffix in ["", "/anders.pdf"]:
            r = download(server, c.access_token, server_name, media_id, suffix)
            assert r.status_code == 200, r.text
            assert decrypt_attachment(r.content, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"]) == data
        r = download(server, c.access_token, server_name, media_id, "/anders.pdf")
        assert disposition(r.headers["Content-Disposition"])[1] == "anders.pdf"
        # No token, no file.
        expect_error(download(server, None, server_name, media_id), 401, "M_MISSING_TOKEN")
        expect_error(download(server, c.access_token, server_name, "doesNotExist42"), 404, "M_NOT_FOUND")
    finally:
        await c.close()


@pytest.mark.portable
def test_thumbnails_of_png_and_jpeg(homeserver):
    token = register(homeserver, "thumbs")
    for fmt, content_type, size in [("PNG", "image/png", (800, 600)), ("JPEG", "image/jpeg", (1000, 500))]:
        sn, mid = uploaded(homeserver, token, image_bytes(*size, fmt), content_type=content_type,
                           filename=f"bild.{fmt.lower()}")
        # crop: exactly the requested size.
        r = thumbnail(homeserver, token, sn, mid, width=96, height=96, method="crop")
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] in ("image/png", "image/jpeg"), r.headers
        assert Image.open(io.BytesIO(r.content)).size == (96, 96)
        # scale: fits within the box, keeps the aspect ratio, and fills one side of it.
        r = thumbnail(homeserver, token, sn, mid, width=320, height=240, method="scale")
        assert r.status_code == 200, r.text
        w, h = Image.open(io.BytesIO(r.content)).size
        assert w <= 320 and h <= 240 and (w == 320 or h == 240), (w, h)
        assert abs(w / h - size[0] / size[1]) < 0.05, (w, h, size)
        # Asked again (now from the kept thumbnail on Ward): the same answer.
        again = thumbnail(homeserver, token, sn, mid, width=320, height=240, method="scale")
        assert again.status_code == 200 and Image.open(io.BytesIO(again.content)).size == (w, h)


@pytest.mark.portable
def test_asynchronous_upload(homeserver):
    alice, bob = register(homeserver, "anna"), register(homeserver, "bernd")
    create = lambda token: requests.post(homeserver.url + "/_matrix/media/v1/create", json={},  # noqa: E731
                                         headers=auth(token), timeout=30)
    r = create(alice)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unused_expires_at"] > time.time() * 1000, body
    sn, mid = body["content_uri"][len("mxc://"):].split("/", 1)

    # Not there yet: the download waits as long as asked, then says so.
    expect_error(download(homeserver, alice, sn, mid, timeout_ms=100), 504, "M_NOT_YET_UPLOADED")
    put = lambda token, data, ctype="text/plain": requests.put(  # noqa: E731
        f"{homeserver.url}{UPLOAD}/{sn}/{mid}", params={"filename": "notiz.txt"}, data=data,
        headers={**auth(token), "Content-Type": ctype}, timeout=30)
    # Only the creator may upload.
    expect_error(put(bob, b"not yours"), 403, "M_FORBIDDEN")

    # A download that waits receives the file once it arrives.
    result = {}
    waiter = threading.Thread(target=lambda: result.update(r=download(homeserver, bob, sn, mid, timeout_ms=15000)))
    waiter.start()
    time.sleep(0.5)
    r = put(alice, b"Termin am Montag")
    assert r.status_code == 200 and r.json() == {}, r.text
    waiter.join(30)
    assert result["r"].status_code == 200 and result["r"].content == b"Termin am Montag", result["r"].text
    assert result["r"].headers["Content-Type"].startswith("text/plain")

    # Once only.
    expect_error(put(alice, b"changed"), 409, "M_CANNOT_OVERWRITE_MEDIA")
    assert download(homeserver, bob, sn, mid).content == b"Termin am Montag"
    # Unknown media IDs cannot be uploaded to.
    r = requests.put(f"{homeserver.url}{UPLOAD}/{sn}/neverCreated123", data=b"x", headers=auth(alice), timeout=30)
    expect_error(r, 404, "M_NOT_FOUND")

    # Pending reservations are limited per user.
    codes = [create(bob) for _ in range(30)]
    refused = [r for r in codes if r.status_code != 200]
    assert refused, "some limit on pending uploads"
    expect_error(refused[0], 429, "M_LIMIT_EXCEEDED")


@pytest.mark.portable
def test_upload_limit_and_config(homeserver):
    token = register(homeserver, "limit")
    r = requests.get(homeserver.url + MEDIA + "/config", headers=auth(token), timeout=30)
    assert r.status_code == 200, r.text
    limit = r.json()["m.upload.size"]
    assert limit > 0
    expect_error(requests.get(homeserver.url + MEDIA + "/config", timeout=30), 401, "M_MISSING_TOKEN")
    # One byte over the advertised limit is refused. Ward answers 413 M_TOO_LARGE at once (it
    # checks Content-Length before reading); Synapse reads up to its limit and then cuts the
    # connection, which is as much of a refusal as a client gets from it.
    try:
        r = upload(homeserver, token, b"\0" * (limit + 1))
    except requests.ConnectionError:
        assert homeserver.kind == "synapse", "Ward answers instead of cutting the connection"
    else:
        expect_error(r, 413, "M_TOO_LARGE")
    # Exactly the limit is fine.
    if homeserver.kind == "ward":
        uploaded(homeserver, token, b"\0" * limit)


@pytest.mark.portable
def test_safe_response_headers(homeserver):
    token = register(homeserver, "headers")
    cases = [
        ("text/html", "seite.html", "attachment"),
        ("image/svg+xml", "logo.svg", "attachment"),
        ("application/pdf", "Überweisung Dr. Müller.pdf", "attachment"),
        ("image/png", "röntgen bild.png", "inline"),
        ("text/plain", "notiz.txt", "inline"),
    ]
    for content_type, name, kind in cases:
        sn, mid = uploaded(homeserver, token, b"<script>alert(1)</script>", content_type=content_type, filename=name)
        r = download(homeserver, token, sn, mid)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith(content_type), r.headers
        assert disposition(r.headers["Content-Disposition"]) == (kind, name), r.headers["Content-Disposition"]
        assert "sandbox" in r.headers["Content-Security-Policy"], r.headers
        assert r.headers["Cross-Origin-Resource-Policy"] == "cross-origin", r.headers
        if homeserver.kind == "ward":
            assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_legacy_endpoints_off_and_no_url_previews(ward_factory):
    server = ward_factory("token")
    token = register(server, "legacy")
    sn, mid = uploaded(server, token, image_bytes(64, 64, "PNG"), content_type="image/png")
    for path in [f"/_matrix/media/v3/download/{sn}/{mid}", f"/_matrix/media/v3/download/{sn}/{mid}/x.png",
                 f"/_matrix/media/r0/download/{sn}/{mid}",
                 f"/_matrix/media/v3/thumbnail/{sn}/{mid}?width=32&height=32"]:
        # Off, with or without a token: anyone who saw a media URL could fetch it otherwise.
        expect_error(requests.get(server.url + path, timeout=30), 404, "M_NOT_FOUND")
        expect_error(requests.get(server.url + path, headers=auth(token), timeout=30), 404, "M_NOT_FOUND")
    for path in [MEDIA + "/preview_url?url=https://example.org/", "/_matrix/media/v3/preview_url?url=https://example.org/"]:
        expect_error(requests.get(server.url + path, headers=auth(token), timeout=30), 404, "M_UNRECOGNIZED")
    # The deprecated config endpoint still answers (it needs a token anyway).
    r = requests.get(server.url + "/_matrix/media/v3/config", headers=auth(token), timeout=30)
    assert r.status_code == 200 and r.json()["m.upload.size"] == 50 * 1024 * 1024, r.text

    # The operator can switch the unauthenticated endpoints on for old clients.
    server.stop()
    server.env["WARD_MEDIA_LEGACY_UNAUTHENTICATED"] = "true"
    server.start()
    r = requests.get(f"{server.url}/_matrix/media/v3/download/{sn}/{mid}", timeout=30)
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (64, 64)
    r = requests.get(f"{server.url}/_matrix/media/v3/thumbnail/{sn}/{mid}?width=32&height=32&method=crop", timeout=30)
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (32, 32)


def media_files(server) -> list:
    """Blobs on disk (temporary files excluded)."""
    root = server.dir / "data" / "media"
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp"]


def temp_files(server) -> list:
    return list((server.dir / "data" / "media" / "tmp").iterdir())


def test_identical_uploads_are_stored_once(ward_factory):
    server = ward_factory("token")
    alice, bob = register(server, "anna"), register(server, "bernd")
    data = os.urandom(100_000)
    a = uploaded(server, alice, data, content_type="application/pdf", filename="a.pdf")
    b = uploaded(server, bob, data, content_type="application/octet-stream", filename="b.bin")
    assert a != b, "each upload has its own media ID"
    digest = hashlib.sha256(data).hexdigest()
    files = media_files(server)
    assert [p.name for p in files] == [digest], files
    assert files[0].relative_to(server.dir / "data" / "media").parts[:2] == (digest[:2], digest[2:4])
    # Each keeps its own content type and name.
    ra, rb = download(server, alice, *a), download(server, alice, *b)
    assert ra.content == rb.content == data
    assert ra.headers["Content-Type"] == "application/pdf" and disposition(ra.headers["Content-Disposition"])[1] == "a.pdf"
    assert rb.headers["Content-Type"] == "application/octet-stream"
    assert disposition(rb.headers["Content-Disposition"])[1] == "b.bin"

    # A thumbnail is made once and kept beside the files.
    sn, mid = uploaded(server, alice, image_bytes(400, 300, "PNG"), content_type="image/png")
    before = len(media_files(server))
    for _ in range(2):
        r = thumbnail(server, bob, sn, mid, width=96, height=96, method="crop")
        assert r.status_code == 200 and r.headers["Content-Disposition"].startswith("inline"), r.headers
        assert len(media_files(server)) == before + 1


def test_acknowledged_upload_survives_kill_9(ward_factory):
    server = ward_factory("open")
    server.create_user("karla", PASSWORD)
    token = requests.post(server.url + "/_matrix/client/v3/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "karla"},
        "password": PASSWORD}, timeout=30).json()["access_token"]
    data = os.urandom(2_000_000)
    sn, mid = uploaded(server, token, data, content_type="application/pdf", filename="Arztbrief.pdf")
    # No graceful shutdown: the process dies the moment the answer was read.
    server.kill9()
    server.start()
    r = download(server, token, sn, mid)
    assert r.status_code == 200 and r.content == data
    assert disposition(r.headers["Content-Disposition"]) == ("attachment", "Arztbrief.pdf")
    assert temp_files(server) == []


def test_limits_quota_and_bad_input(ward_factory):
    server = ward_factory("token", env={"WARD_MAX_UPLOAD_BYTES": "100000", "WARD_MEDIA_QUOTA_BYTES_PER_USER": "150000",
                                        "WARD_MAX_REQUEST_BODY_BYTES": "4096"})
    token, other = register(server, "quota"), register(server, "other")
    # Over the limit without a Content-Length (streamed): refused while reading, nothing kept.
    def chunks(total):
        for _ in range(total // 10_000):
            yield b"y" * 10_000

    expect_error(upload(server, token, chunks(200_000)), 413, "M_TOO_LARGE")
    expect_error(upload(server, token, b"y" * 100_001), 413, "M_TOO_LARGE")
    # Uploads have their own limit, larger than the JSON body limit.
    sn, mid = uploaded(server, token, b"x" * 90_000, content_type="text/plain")
    # The quota: 90,000 bytes used, 61,000 more would exceed 150,000.
    expect_error(upload(server, token, b"z" * 61_000), 403, "M_FORBIDDEN")
    expect_error(upload(server, token, chunks(70_000)), 403, "M_FORBIDDEN")
    uploaded(server, other, b"z" * 60_000)
    assert temp_files(server) == []
    assert len(media_files(server)) == 2

    # Bad requests get 4xx with the right errcode.
    bad_name = upload(server, token, b"x", filename="a\nb.txt")
    expect_error(bad_name, 400, "M_INVALID_PARAM")
    expect_error(thumbnail(server, token, sn, mid, width=0, height=32), 400, "M_INVALID_PARAM")
    expect_error(thumbnail(server, token, sn, mid, width="big", height=32), 400, "M_INVALID_PARAM")
    expect_error(thumbnail(server, token, sn, mid, width=32, height=32, method="zoom"), 400, "M_INVALID_PARAM")
    # Not an image.
    expect_error(thumbnail(server, token, sn, mid, width=32, height=32), 400, "M_UNKNOWN")
    # Media of other servers, odd media IDs, bad server names.
    expect_error(download(server, token, "elsewhere.example", mid), 404, "M_NOT_FOUND")
    expect_error(download(server, token, sn, "..%2F..%2Fward.db"), 404, "M_NOT_FOUND")
    expect_error(download(server, token, "bad%20name!", mid), 400, "M_INVALID_PARAM")
    r = requests.put(f"{server.url}{UPLOAD}/elsewhere.example/{mid}", data=b"x", headers=auth(token), timeout=30)
    expect_error(r, 404, "M_NOT_FOUND")
    # A decompression bomb: a small PNG claiming 60,000 × 60,000 pixels.
    bomb_sn, bomb_mid = uploaded(server, other, bomb_png(), content_type="image/png")
    expect_error(thumbnail(server, token, bomb_sn, bomb_mid, width=32, height=32), 413, "M_TOO_LARGE")
    log = server.log.read_text()
    assert "panicked" not in log


def bomb_png() -> bytes:
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def test_unique_names(ward_factory):
    """Media IDs are unguessable and distinct."""
    server = ward_factory("token")
    token = register(server, "ids")
    ids = {uploaded(server, token, str(uuid.uuid4()).encode())[1] for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) >= 20 and i.isalnum() for i in ids), ids
