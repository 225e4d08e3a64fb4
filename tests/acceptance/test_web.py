"""Ward serves its browser app at `/` with a strict Content-Security-Policy, keeps unknown API
paths Matrix errors, and offers administrators invite links (`/_ward/admin/v1/registration_tokens`).

The browser app itself is driven with Chromium in test_browser.py."""

import requests

from harness import http_json

PASSWORD = "a long enough password"


def login(server, user: str) -> str:
    status, j = http_json("POST", server.url + "/_matrix/client/v3/login",
                          {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                           "password": PASSWORD})
    assert status == 200, j
    return j["access_token"]


def test_app_is_served_with_a_strict_policy(ward_factory):
    server = ward_factory("token")
    r = requests.get(server.url + "/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), r.headers
    csp = r.headers["Content-Security-Policy"]
    for directive in ["default-src 'self'", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'"]:
        assert directive in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval'" not in csp.replace("wasm-unsafe-eval'", "")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "Ward" in r.text
    # Unknown files are plain 404s with the same policy; the API keeps Matrix errors.
    r = requests.get(server.url + "/no-such-file.js", timeout=10)
    assert r.status_code == 404 and "Content-Security-Policy" in r.headers
    for path in ["/_matrix/client/v3/no-such-endpoint", "/_ward/no-such-thing", "/_matrix"]:
        r = requests.get(server.url + path, timeout=10)
        assert (r.status_code, r.json()["errcode"]) == (404, "M_UNRECOGNIZED"), (path, r.text)
    r = requests.post(server.url + "/", data=b"x", timeout=10)
    assert r.status_code == 405


def test_app_from_a_directory(ward_factory, tmp_path):
    web = tmp_path / "dist"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>dev build</title>")
    (web / "assets" / "app-0123abcd.js").write_text("console.log('hi')")
    (tmp_path / "secret.txt").write_text("do not serve")
    server = ward_factory("token", env={"WARD_WEB_DIR": str(web)})
    r = requests.get(server.url + "/", timeout=10)
    assert r.status_code == 200 and "dev build" in r.text
    assert r.headers["Cache-Control"] == "no-cache"
    r = requests.get(server.url + "/assets/app-0123abcd.js", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in r.headers["Cache-Control"]
    # API answers (messages, profiles, files) are never kept in a browser's or proxy's cache.
    for path in ["/_matrix/client/versions", "/_matrix/client/v3/sync", "/_matrix/nonexistent"]:
        r = requests.get(server.url + path, timeout=10)
        assert r.headers["Cache-Control"] == "no-store", (path, r.headers)
    for path in ["/../secret.txt", "/assets/..%2f..%2fsecret.txt", "/%2e%2e/secret.txt", "/.hidden"]:
        r = requests.get(server.url + path, timeout=10)
        assert r.status_code == 404 and "do not serve" not in r.text, path


def test_administrators_make_invite_links(ward_factory):
    server = ward_factory("token")
    server.create_user("anna", PASSWORD, admin=True)
    server.create_user("bernd", PASSWORD)
    admin, other = login(server, "anna"), login(server, "bernd")
    url = server.url + "/_ward/admin/v1/registration_tokens"
    assert http_json("GET", url)[0] == 401
    status, j = http_json("POST", url, {"uses_allowed": 1}, token=other)
    assert (status, j["errcode"]) == (403, "M_FORBIDDEN"), j
    status, j = http_json("POST", url, {"uses_allowed": 1}, token=admin)
    assert status == 200 and j["uses_allowed"] == 1 and j["completed"] == 0, j
    token = j["token"]
    status, j = http_json("GET", url, token=admin)
    assert [t["token"] for t in j["registration_tokens"]] == [token]
    # A colleague signs up with it, once.
    reg = server.url + "/_matrix/client/v3/register"
    session = requests.post(reg, json={"username": "carla", "password": PASSWORD}).json()["session"]
    r = requests.post(reg, json={"username": "carla", "password": PASSWORD,
                                 "auth": {"type": "m.login.registration_token", "token": token, "session": session}})
    r = requests.post(reg, json={"username": "carla", "password": PASSWORD,
                                 "auth": {"type": "m.login.dummy", "session": session}})
    assert r.status_code == 200, r.text
    status, j = http_json("GET", url, token=admin)
    assert j["registration_tokens"][0]["completed"] == 1
    # Bad input and revocation.
    for body in [{"uses_allowed": 0}, {"uses_allowed": "one"}, {"token": "no spaces allowed"}]:
        status, j = http_json("POST", url, body, token=admin)
        assert status == 400 and j["errcode"].startswith("M_"), (body, j)
    assert http_json("DELETE", f"{url}/{token}", token=admin)[0] == 200
    status, j = http_json("DELETE", f"{url}/{token}", token=admin)
    assert (status, j["errcode"]) == (404, "M_NOT_FOUND")
    assert http_json("DELETE", f"{url}/{token}", token=other)[0] == 403
