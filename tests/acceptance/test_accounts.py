"""Accounts end to end with matrix-nio, a client library we did not write.

Portable: scripts/test-against-synapse runs this file against Synapse too, so it checks the
Matrix spec rather than our own reading of it.
"""

import asyncio
import uuid

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    LoginError,
    LoginResponse,
    ProfileGetDisplayNameResponse,
    RegisterResponse,
    UpdateDeviceResponse,
    WhoamiError,
    WhoamiResponse,
)

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple horse battery correct"

# Give up on 429 at once instead of sleeping and retrying: the tests want to see it.
CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0)

pytestmark = pytest.mark.portable


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def client(server, user: str) -> AsyncClient:
    return AsyncClient(server.url, user, config=CONFIG)


async def raw(c: AsyncClient, method: str, path: str, body: dict):
    """An endpoint nio has no method for, sent through nio's own HTTP session and token."""
    import json

    headers = {"Content-Type": "application/json"}
    if c.access_token:
        headers["Authorization"] = f"Bearer {c.access_token}"
    resp = await c.send(method, path, json.dumps(body), headers)
    return resp.status, await resp.json()


async def uia_password(c: AsyncClient, method: str, path: str, body: dict, user: str, password: str):
    """Two-step user-interactive auth with m.login.password, as a client does it."""
    status, first = await raw(c, method, path, body)
    assert status == 401, first
    assert ["m.login.password"] in [f["stages"] for f in first["flows"]], first
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
        "session": first["session"],
    }
    return await raw(c, method, path, {**body, "auth": auth})


async def try_login(server, user: str, password: str):
    c = client(server, user)
    try:
        return await c.login(password)
    finally:
        await c.close()


async def expect_logged_out(c: AsyncClient):
    r = await c.whoami()
    assert isinstance(r, WhoamiError), r
    assert r.status_code == "M_UNKNOWN_TOKEN", r


def test_account_lifecycle(homeserver):
    asyncio.run(account_lifecycle(homeserver))


async def account_lifecycle(server):
    token = server.create_registration_token(uses=1)
    user = name("anna")
    phone = client(server, user)
    others = []
    try:
        # Register with a one-use token.
        r = await phone.register_with_token(user, PASSWORD, token, device_name="Anna's phone")
        assert isinstance(r, RegisterResponse), r
        user_id = r.user_id
        assert user_id == f"@{user}:{server.server_name}"

        # The token is used up: a second registration with it is refused.
        late = client(server, name("late"))
        others.append(late)
        r = await late.register_with_token(late.user, PASSWORD, token)
        assert not isinstance(r, RegisterResponse), r
        r = await try_login(server, late.user, PASSWORD)
        assert isinstance(r, LoginError), "the refused registration must not have created the account"

        # Log in on a second device; whoami names user and device.
        laptop = client(server, user)
        others.append(laptop)
        r = await laptop.login(PASSWORD, device_name="Praxis laptop")
        assert isinstance(r, LoginResponse), r
        r = await laptop.whoami()
        assert isinstance(r, WhoamiResponse), r
        assert (r.user_id, r.device_id) == (user_id, laptop.device_id)

        # Both devices are listed.
        r = await phone.devices()
        assert isinstance(r, DevicesResponse), r
        names = {d.id: d.display_name for d in r.devices}
        assert names.get(phone.device_id) == "Anna's phone"
        assert laptop.device_id in names

        # Rename one.
        r = await phone.update_device(laptop.device_id, {"display_name": "Empfang"})
        assert isinstance(r, UpdateDeviceResponse), r
        r = await phone.devices()
        assert {d.id: d.display_name for d in r.devices}[laptop.device_id] == "Empfang"

        # Delete a third device, which takes user-interactive auth.
        tablet = client(server, user)
        others.append(tablet)
        assert isinstance(await tablet.login(PASSWORD, device_name="tablet"), LoginResponse)
        r = await phone.delete_devices([tablet.device_id])
        assert isinstance(r, DeleteDevicesAuthResponse), r
        auth = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": PASSWORD,
            "session": r.session,
        }
        r = await phone.delete_devices([tablet.device_id], auth)
        assert isinstance(r, DeleteDevicesResponse), r
        await expect_logged_out(tablet)
        r = await phone.devices()
        assert tablet.device_id not in {d.id for d in r.devices}

        # Change the password: other devices are logged out, this one stays.
        status, body = await uia_password(
            phone, "POST", "/_matrix/client/v3/account/password", {"new_password": NEW_PASSWORD}, user, PASSWORD
        )
        assert status == 200, body
        await expect_logged_out(laptop)
        assert isinstance(await phone.whoami(), WhoamiResponse)
        assert isinstance(await try_login(server, user, PASSWORD), LoginError)
        laptop2 = client(server, user)
        others.append(laptop2)
        assert isinstance(await laptop2.login(NEW_PASSWORD), LoginResponse)

        # Display name, set on one device and read on another.
        await phone.set_displayname("Dr. Anna Weber")
        r = await laptop2.get_displayname(user_id)
        assert isinstance(r, ProfileGetDisplayNameResponse), r
        assert r.displayname == "Dr. Anna Weber"

        # Log out.
        old_token = phone.access_token
        await phone.logout()
        phone.access_token = old_token  # nio forgets it; the server must too
        await expect_logged_out(phone)
        assert isinstance(await laptop2.whoami(), WhoamiResponse)
    finally:
        for c in [phone, *others]:
            await c.close()


def test_wrong_password_is_throttled(homeserver):
    asyncio.run(wrong_password_is_throttled(homeserver))


async def wrong_password_is_throttled(server):
    token = server.create_registration_token(uses=1)
    user = name("bert")
    c = client(server, user)
    try:
        assert isinstance(await c.register_with_token(user, PASSWORD, token), RegisterResponse)
        errors = []
        for _ in range(5):
            r = await try_login(server, user, "wrong password")
            assert isinstance(r, LoginError), r
            errors.append(r.status_code)
        assert errors[0] == "M_FORBIDDEN", errors
        # After five wrong passwords the next attempt is refused outright, even a right one.
        r = await try_login(server, user, PASSWORD)
        assert isinstance(r, LoginError), r
        assert r.status_code == "M_LIMIT_EXCEEDED", r
        assert r.retry_after_ms and r.retry_after_ms > 0, r
    finally:
        await c.close()
