"""The web client's sign-in: the refresh token in an HttpOnly cookie, the access token in the
body, and the cookie routes refused to any other site's page; the sessions list and revocation.

The browser side (no token in storage, the journey) is tests/browser/.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx
import pytest

from kith.runtime.resources import Resources
from tests.helpers import API, PASSWORD, assert_problem, register
from tests.posting import member

WEB = f"{API}/auth/web"
SAME_ORIGIN = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}


def _cookie(response: httpx.Response) -> SimpleCookie:
    cookie = SimpleCookie()
    cookie.load(response.headers["set-cookie"])
    return cookie


async def _web_login(client: httpx.AsyncClient, username: str = "ada") -> httpx.Response:
    response = await client.post(
        f"{WEB}/login", json={"username": username, "password": PASSWORD}, headers=SAME_ORIGIN
    )
    assert response.status_code == 200, response.text
    return response


async def test_login_sets_an_httponly_strict_cookie_limited_to_the_web_auth_path(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "ada")
    response = await _web_login(client)
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}, "no refresh token in the body"
    morsel = _cookie(response)["kith_refresh"]
    assert len(morsel.value) >= 22
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "strict"
    assert morsel["path"] == WEB
    # The test settings' public URL is HTTPS, so the cookie is Secure.
    assert morsel["secure"] is True
    assert response.headers["cache-control"] == "no-store"
    me = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] == "ada"


async def test_refresh_rotates_the_cookie_and_a_reused_one_ends_the_session(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "ada")
    first = _cookie(await _web_login(client))["kith_refresh"].value
    client.cookies.clear()
    refreshed = await client.post(
        f"{WEB}/refresh", headers={**SAME_ORIGIN, "Cookie": f"kith_refresh={first}"}
    )
    assert refreshed.status_code == 200, refreshed.text
    second = _cookie(refreshed)["kith_refresh"].value
    assert second != first
    token = refreshed.json()["access_token"]
    assert (
        await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200
    client.cookies.clear()
    reused = await client.post(f"{WEB}/refresh", headers={**SAME_ORIGIN, "Cookie": f"kith_refresh={first}"})
    assert_problem(reused, 401, "invalid_token")
    assert _cookie(reused)["kith_refresh"].value == "", "a refused cookie is cleared"
    # Reuse ended the session: the newer cookie and the access token are dead too.
    client.cookies.clear()
    after = await client.post(f"{WEB}/refresh", headers={**SAME_ORIGIN, "Cookie": f"kith_refresh={second}"})
    assert_problem(after, 401, "invalid_token")
    assert_problem(await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"}), 401)


async def test_refresh_without_a_cookie_is_401(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(f"{WEB}/refresh", headers=SAME_ORIGIN), 401, "invalid_token")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Origin": "http://testserver", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://testserver", "Sec-Fetch-Site": "same-site"},
    ],
)
async def test_the_cookie_routes_refuse_other_sites(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await register(client, "ada")
    cookie = _cookie(await _web_login(client))["kith_refresh"].value
    client.cookies.clear()
    for path, body in (
        ("login", {"username": "ada", "password": PASSWORD}),
        ("refresh", None),
        ("logout", None),
    ):
        response = await client.post(
            f"{WEB}/{path}", json=body, headers={**headers, "Cookie": f"kith_refresh={cookie}"}
        )
        assert_problem(response, 403, "cross_site_request")
        assert "set-cookie" not in response.headers
    # Nothing was rotated or ended: the cookie still works from Kith's own page.
    assert (
        await client.post(f"{WEB}/refresh", headers={**SAME_ORIGIN, "Cookie": f"kith_refresh={cookie}"})
    ).status_code == 200


async def test_the_public_urls_origin_is_accepted_behind_a_proxy(client: httpx.AsyncClient) -> None:
    await register(client, "ada")
    # The browser is on the public URL; the proxy forwards with another Host.
    response = await client.post(
        f"{WEB}/login",
        json={"username": "ada", "password": PASSWORD},
        headers={"Origin": "https://kith.example", "Host": "backend:8000"},
    )
    assert response.status_code == 200, response.text


async def test_logout_ends_the_cookies_session_and_clears_it(client: httpx.AsyncClient) -> None:
    await register(client, "ada")
    login = await _web_login(client)
    cookie = _cookie(login)["kith_refresh"].value
    token = login.json()["access_token"]
    client.cookies.clear()
    response = await client.post(f"{WEB}/logout", headers={**SAME_ORIGIN, "Cookie": f"kith_refresh={cookie}"})
    assert response.status_code == 204
    cleared = _cookie(response)["kith_refresh"]
    assert cleared.value == "" and cleared["path"] == WEB
    assert_problem(await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"}), 401)
    client.cookies.clear()
    again = await client.post(f"{WEB}/refresh", headers={**SAME_ORIGIN, "Cookie": f"kith_refresh={cookie}"})
    assert_problem(again, 401, "invalid_token")


async def test_wrong_password_is_the_same_401_as_the_json_login(client: httpx.AsyncClient) -> None:
    await register(client, "ada")
    response = await client.post(
        f"{WEB}/login", json={"username": "ada", "password": "wrong one!"}, headers=SAME_ORIGIN
    )
    assert_problem(response, 401, "invalid_credentials")
    assert "set-cookie" not in response.headers


async def test_sessions_are_listed_and_one_can_be_ended(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await register(client, "ada")
    phone = await client.post(
        f"{API}/auth/login",
        json={"username": "ada", "password": PASSWORD},
        headers={"User-Agent": "KithPhone/1"},
    )
    laptop = await client.post(
        f"{API}/auth/login", json={"username": "ada", "password": PASSWORD}, headers={"User-Agent": "Laptop"}
    )
    phone_auth = {"Authorization": f"Bearer {phone.json()['access_token']}"}
    laptop_auth = {"Authorization": f"Bearer {laptop.json()['access_token']}"}
    listed = await client.get(f"{API}/users/me/sessions", headers=laptop_auth)
    assert listed.status_code == 200
    assert listed.headers["cache-control"] == "no-store"
    items = listed.json()["items"]
    assert [(item["user_agent"], item["current"]) for item in items] == [
        ("Laptop", True),
        ("KithPhone/1", False),
    ]
    phone_session = items[1]["id"]
    assert (
        await client.delete(f"{API}/users/me/sessions/{phone_session}", headers=laptop_auth)
    ).status_code == 204
    assert_problem(await client.get(f"{API}/users/me", headers=phone_auth), 401)
    refreshed = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": phone.json()["refresh_token"]}
    )
    assert_problem(refreshed, 401)
    remaining = await client.get(f"{API}/users/me/sessions", headers=laptop_auth)
    assert [item["user_agent"] for item in remaining.json()["items"]] == ["Laptop"]
    again = await client.delete(f"{API}/users/me/sessions/{phone_session}", headers=laptop_auth)
    assert_problem(again, 404, "session_not_found")
    other = await member(resources, "bob")
    assert [
        item["current"]
        for item in (await client.get(f"{API}/users/me/sessions", headers=other.headers)).json()["items"]
    ] == [True]
