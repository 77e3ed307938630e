"""Sessions, password change and account deletion through HTTP: a real uvicorn gateway in front of a
real graph_svc. Ended sessions' tokens are refused (by the gateway's session check), and nothing may
be a 5xx."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from gateway.auth import SESSION_RECHECK_SECONDS
from tests.conftest import PASSWORD
from tests.gateway.test_accounts_http import error_of, no_server_errors, reason_of, registration, rfc3339

__all__ = ["no_server_errors"]  # the autouse fixture, applied here too

NEW_PASSWORD = "another long enough passphrase"


async def _register(http: httpx.AsyncClient, name: str) -> None:
    response = await http.post("/v1/users", json=registration(name))
    assert response.status_code == 201, response.text


async def _login(
    http: httpx.AsyncClient, name: str, device: str = "pytest", password: str = PASSWORD
) -> dict[str, Any]:
    response = await http.post(
        "/v1/sessions", json={"login": name, "password": password}, headers={"User-Agent": device}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _bearer(login: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {login['access_token']}"}


def _assert_session_revoked(response: httpx.Response) -> None:
    assert reason_of(error_of(response, 401, "UNAUTHENTICATED")) == "SESSION_REVOKED"


async def _refused_after_rechecks(http: httpx.AsyncClient, headers: dict[str, str], polls: int) -> None:
    """Reads with `headers`, 0.25 s apart, until one is 401 SESSION_REVOKED; fails after `polls` reads
    (the gateway's recheck period bounds how many are accepted: tests/gateway/test_auth.py)."""
    for _ in range(polls):
        response = await http.get("/v1/sessions", headers=headers)
        if response.status_code == 401:
            _assert_session_revoked(response)
            return
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.25)
    raise AssertionError("the ended session's access token is still accepted")


async def test_sessions_are_listed_with_device_and_current(http, new_username):
    name = new_username()
    await _register(http, name)
    phone = await _login(http, name, "Glimpse/1.0 (iPhone; iOS 18.1)")
    laptop = await _login(http, name, "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0")
    assert phone["session_id"] != laptop["session_id"]
    listed = await http.get("/v1/sessions", headers=_bearer(laptop))
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [(s["id"], s["device_label"], s["current"]) for s in items] == [
        (laptop["session_id"], "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", True),
        (phone["session_id"], "Glimpse/1.0 (iPhone; iOS 18.1)", False),
    ]
    for item in items:
        assert rfc3339(item["create_time"]) <= rfc3339(item["last_use_time"]) < rfc3339(item["expire_time"])
    # The seeds' lifetimes: 7-day refresh tokens, access tokens well under an hour.
    issued = rfc3339(items[0]["create_time"])
    # The session ends when its refresh token does, 7 days (168 hours) after it was created.
    assert rfc3339(laptop["refresh_token_expire_time"]) == rfc3339(items[0]["expire_time"])
    assert round((rfc3339(items[0]["expire_time"]) - issued).total_seconds() / 3600) == 7 * 24
    assert (rfc3339(laptop["access_token_expire_time"]) - issued).total_seconds() <= 3600
    bad = await http.get("/v1/sessions", params={"page_token": "garbage"}, headers=_bearer(laptop))
    error_of(bad, 400, "INVALID_ARGUMENT")


async def test_log_out_refuses_the_session_s_tokens_at_once(http, new_username):
    name = new_username()
    await _register(http, name)
    login, other = await _login(http, name), await _login(http, name)
    assert (await http.get("/v1/sessions", headers=_bearer(login))).status_code == 200  # remembered as live
    out = await http.delete("/v1/sessions/current", headers=_bearer(login))
    assert out.status_code == 200 and out.json() == {"revoked": True}, out.text
    _assert_session_revoked(await http.get("/v1/sessions", headers=_bearer(login)))  # the next request
    refresh = await http.post("/v1/sessions/refresh", json={"refresh_token": login["refresh_token"]})
    assert reason_of(error_of(refresh, 401, "UNAUTHENTICATED")) == "SESSION_REVOKED"
    remaining = (await http.get("/v1/sessions", headers=_bearer(other))).json()["items"]
    assert [s["id"] for s in remaining] == [other["session_id"]]


async def test_ending_another_of_your_sessions_and_not_someone_else_s(http, new_username):
    name, stranger = new_username(), new_username()
    await _register(http, name)
    await _register(http, stranger)
    here, lost_phone, theirs = await _login(http, name), await _login(http, name), await _login(http, stranger)
    foreign = await http.delete(f"/v1/sessions/{theirs['session_id']}", headers=_bearer(here))
    assert reason_of(error_of(foreign, 404, "NOT_FOUND")) == "SESSION_NOT_FOUND"
    for bad in ("abc", "0", "99999999999999999999"):
        error_of(await http.delete(f"/v1/sessions/{bad}", headers=_bearer(here)), 400, "INVALID_ARGUMENT")
    ended = await http.delete(f"/v1/sessions/{lost_phone['session_id']}", headers=_bearer(here))
    assert ended.json() == {"revoked": True}, ended.text
    again = await http.delete(f"/v1/sessions/{lost_phone['session_id']}", headers=_bearer(here))
    assert again.json() == {"revoked": False}, again.text
    _assert_session_revoked(await http.get("/v1/sessions", headers=_bearer(lost_phone)))  # the next request
    assert (await http.get("/v1/sessions", headers=_bearer(theirs))).status_code == 200


async def test_reusing_a_refresh_token_ends_the_session_and_its_access_tokens(http, new_username):
    name = new_username()
    await _register(http, name)
    login = await _login(http, name)
    assert (await http.get("/v1/sessions", headers=_bearer(login))).status_code == 200  # remembered as live
    rotated = await http.post("/v1/sessions/refresh", json={"refresh_token": login["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["session_id"] == login["session_id"] and new["refresh_token"] != login["refresh_token"]
    reused = await http.post("/v1/sessions/refresh", json={"refresh_token": login["refresh_token"]})
    assert reason_of(error_of(reused, 401, "UNAUTHENTICATED")) == "REFRESH_TOKEN_REUSED"
    newest = await http.post("/v1/sessions/refresh", json={"refresh_token": new["refresh_token"]})
    assert reason_of(error_of(newest, 401, "UNAUTHENTICATED")) == "SESSION_REVOKED"
    # Revoked inside graph_svc, not through this route: the gateway learns it at its next check.
    await _refused_after_rechecks(http, _bearer(new), polls=int((SESSION_RECHECK_SECONDS + 1.5) / 0.25))


async def test_password_change_ends_the_other_sessions(http, new_username):
    name = new_username()
    await _register(http, name)
    here, elsewhere = await _login(http, name), await _login(http, name)
    wrong = await http.post(
        "/v1/users/me/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=_bearer(here),
    )
    error = error_of(wrong, 400, "INVALID_ARGUMENT")
    assert reason_of(error) == "WRONG_PASSWORD" and "current_password" in wrong.text
    weak = await http.post(
        "/v1/users/me/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=_bearer(here)
    )
    assert reason_of(error_of(weak, 400, "INVALID_ARGUMENT")) == "WEAK_PASSWORD" and "new_password" in weak.text
    changed = await http.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=_bearer(here),
    )
    assert changed.status_code == 200 and changed.json() == {"revoked_session_count": 1}, changed.text
    stale = await http.post("/v1/sessions/refresh", json={"refresh_token": elsewhere["refresh_token"]})
    assert reason_of(error_of(stale, 401, "UNAUTHENTICATED")) == "SESSION_REVOKED"
    assert (await http.get("/v1/sessions", headers=_bearer(here))).status_code == 200
    old = await http.post("/v1/sessions", json={"login": name, "password": PASSWORD})
    error_of(old, 401, "UNAUTHENTICATED")
    await _login(http, name, password=NEW_PASSWORD)


async def test_deleting_the_account_is_202_then_it_is_gone_and_its_name_held(http, new_username):
    name, friend_name = new_username(), new_username()
    await _register(http, name)
    await _register(http, friend_name)
    me, friend = await _login(http, name), await _login(http, friend_name)
    followed = await http.post("/v1/follow", json={"target_user_id": friend["user"]["id"]}, headers=_bearer(me))
    assert followed.status_code == 200, followed.text
    wrong = await http.request("DELETE", "/v1/users/me", json={"password": "not my password"}, headers=_bearer(me))
    assert reason_of(error_of(wrong, 400, "INVALID_ARGUMENT")) == "WRONG_PASSWORD"
    missing = await http.request("DELETE", "/v1/users/me", json={}, headers=_bearer(me))
    error_of(missing, 400, "INVALID_ARGUMENT")
    deleted = await http.request("DELETE", "/v1/users/me", json={"password": PASSWORD}, headers=_bearer(me))
    assert deleted.status_code == 202, deleted.text
    assert rfc3339(deleted.json()["username_release_time"]).timestamp() > time.time() + 29 * 86400
    refused = await http.get("/v1/sessions", headers=_bearer(me))
    assert reason_of(error_of(refused, 401, "UNAUTHENTICATED")) == "SESSION_REVOKED"
    error_of(await http.get(f"/v1/users/{name}"), 404, "NOT_FOUND")
    assert (await http.get(f"/v1/users/{friend_name}")).json()["follower_count"] == "0"
    taken = await http.post("/v1/users", json=registration(name, email=f"again-{name}@example.com"))
    assert reason_of(error_of(taken, 409, "ALREADY_EXISTS")) == "USERNAME_HELD"
    error_of(await http.post("/v1/sessions", json={"login": name, "password": PASSWORD}), 401, "UNAUTHENTICATED")
