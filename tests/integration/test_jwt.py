"""Access tokens through the HTTP API: every forged, stale or malformed token is 401.

Tokens are built with PyJWT and the application's real signing key, so each test
changes exactly one thing about an otherwise valid token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from kith.db.models import Role
from kith.runtime.resources import Resources
from tests.helpers import API, PASSWORD, Account, assert_problem, login, signup, staff

ME = f"{API}/users/me"
CLAIMS = ["exp", "iat", "sub", "sid", "jti", "iss", "aud"]
NOT_UTF8 = base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("=")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def claims_of(account: Account) -> dict[str, Any]:
    """The claims of the account's real access token (read, not verified)."""
    claims: dict[str, Any] = jwt.decode(account.access_token, options={"verify_signature": False})
    return claims


def fresh_claims(account: Account, **changes: Any) -> dict[str, Any]:
    """Valid claims for the account's session, issued now, with `changes` applied."""
    now = datetime.now(UTC)
    claims = claims_of(account)
    claims.update(iat=int(now.timestamp()), exp=int((now + timedelta(minutes=15)).timestamp()))
    claims.update(changes)
    return claims


def sign(
    resources: Resources,
    claims: dict[str, Any],
    *,
    key: str | None = None,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
) -> str:
    return jwt.encode(
        claims,
        key if key is not None else resources.settings.signing_key(),
        algorithm=algorithm,
        headers={"typ": "at+jwt"} if headers is None else headers,
    )


def hand_made(header: dict[str, Any], claims: dict[str, Any], signing_key: str | None) -> str:
    """A JWT assembled by hand, HMAC-SHA256 signed with `signing_key` (or unsigned)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if signing_key is None:
        return f"{signing_input}."
    signature = hmac.new(signing_key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def assert_refused(
    client: httpx.AsyncClient, headers: dict[str, Any], code: str = "invalid_token"
) -> None:
    response = await client.get(ME, headers=headers)
    assert_problem(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"
    assert "traceback" not in response.text.lower()


# --- the baseline: valid tokens work ------------------------------------------------


async def test_issued_token_works(client: httpx.AsyncClient) -> None:
    account = await signup(client, "valid_one")
    response = await client.get(ME, headers=account.headers)
    assert response.status_code == 200
    assert response.json()["id"] == account.id
    header = jwt.get_unverified_header(account.access_token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "HS256"
    claims = claims_of(account)
    assert set(CLAIMS) <= set(claims)
    assert claims["sub"] == account.id
    assert claims["exp"] - claims["iat"] == 900


async def test_hand_built_token_with_the_real_key_works(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    # The forgeries below differ from this token in one respect each.
    account = await signup(client, "builder")
    token = sign(resources, fresh_claims(account))
    response = await client.get(ME, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["id"] == account.id
    hand = hand_made(
        {"alg": "HS256", "typ": "at+jwt"}, fresh_claims(account), resources.settings.signing_key()
    )
    assert (await client.get(ME, headers=bearer(hand))).status_code == 200


async def test_token_issued_recently_still_works(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "recent")
    claims = claims_of(account)
    token = resources.tokens.issue(
        claims["sub"], claims["sid"], now=datetime.now(UTC) - timedelta(minutes=14)
    )
    assert (await client.get(ME, headers=bearer(token))).status_code == 200


# --- forged and malformed tokens ----------------------------------------------------


async def test_alg_none_is_refused(client: httpx.AsyncClient) -> None:
    account = await signup(client, "unsigned")
    claims = fresh_claims(account)
    for alg in ("none", "None", "NONE"):
        await assert_refused(client, bearer(hand_made({"alg": alg, "typ": "at+jwt"}, claims, None)))
    # Also with a signature part that is not empty.
    token = hand_made({"alg": "none", "typ": "at+jwt"}, claims, None) + "c2lnbmF0dXJl"
    await assert_refused(client, bearer(token))


async def test_wrong_key_is_refused(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "wrongkey")
    claims = fresh_claims(account)
    real = resources.settings.signing_key()
    for key in ("another-secret-key-that-is-long-enough-to-use!", real[:-1], real + "x"):
        await assert_refused(client, bearer(sign(resources, claims, key=key)))
    # PyJWT will not sign with an empty key; build that one by hand.
    await assert_refused(client, bearer(hand_made({"alg": "HS256", "typ": "at+jwt"}, claims, "")))


async def test_tampered_payload_is_refused(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "tampered")
    other = await signup(client, "impersonated")
    token = sign(resources, fresh_claims(account))
    header, _, signature = token.split(".")
    forged_claims = fresh_claims(account, sub=other.id)
    await assert_refused(client, bearer(f"{header}.{b64(json.dumps(forged_claims).encode())}.{signature}"))


async def test_expired_token_is_refused(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "expired")
    claims = claims_of(account)
    for age in (timedelta(minutes=16), timedelta(days=2)):
        token = resources.tokens.issue(claims["sub"], claims["sid"], now=datetime.now(UTC) - age)
        await assert_refused(client, bearer(token))


async def test_wrong_audience_is_refused(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "audience")
    for audience in ("other-api", "", ["other-api"], "KITH-API"):
        await assert_refused(client, bearer(sign(resources, fresh_claims(account, aud=audience))))


async def test_wrong_issuer_is_refused(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "issuer")
    for issuer in ("evil", "", "KITH"):
        await assert_refused(client, bearer(sign(resources, fresh_claims(account, iss=issuer))))


@pytest.mark.parametrize("claim", CLAIMS)
async def test_missing_claim_is_refused(client: httpx.AsyncClient, resources: Resources, claim: str) -> None:
    account = await signup(client, "claimless")
    claims = fresh_claims(account)
    del claims[claim]
    await assert_refused(client, bearer(sign(resources, claims)))


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": 12345},
        {"sid": None},
        {"jti": ["a"]},
        {"exp": "tomorrow"},
        {"iat": "now"},
        {"sub": ""},
    ],
)
async def test_ill_typed_claim_is_refused(
    client: httpx.AsyncClient, resources: Resources, changes: dict[str, Any]
) -> None:
    account = await signup(client, "illtyped")
    await assert_refused(client, bearer(sign(resources, fresh_claims(account, **changes))))


async def test_token_from_the_future_is_refused(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "timetraveller")
    later = datetime.now(UTC) + timedelta(hours=1)
    issued_later = fresh_claims(account, iat=int(later.timestamp()))
    await assert_refused(client, bearer(sign(resources, issued_later)))
    not_yet = fresh_claims(account, nbf=int(later.timestamp()))
    await assert_refused(client, bearer(sign(resources, not_yet)))


@pytest.mark.parametrize(
    "header",
    [
        {"typ": "JWT"},
        {},
        {"typ": "rt+jwt"},
        {"typ": "at+jwt+evil"},
        {"typ": ["at+jwt"]},
    ],
)
async def test_wrong_token_type_is_refused(
    client: httpx.AsyncClient, resources: Resources, header: dict[str, Any]
) -> None:
    account = await signup(client, "typed")
    await assert_refused(client, bearer(sign(resources, fresh_claims(account), headers=header)))


@pytest.mark.parametrize("algorithm", ["HS512", "HS384"])
async def test_other_hmac_algorithms_are_refused(
    client: httpx.AsyncClient, resources: Resources, algorithm: str
) -> None:
    account = await signup(client, "hmacs")
    await assert_refused(client, bearer(sign(resources, fresh_claims(account), algorithm=algorithm)))


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA", "hs256"])
async def test_token_labelled_with_another_algorithm_is_refused(
    client: httpx.AsyncClient, resources: Resources, alg: str
) -> None:
    # The classic confusion attack: the label says RS256, the signature is an HMAC with
    # the server's key; the server must not let the token pick how it is checked.
    account = await signup(client, "labelled")
    token = hand_made({"alg": alg, "typ": "at+jwt"}, fresh_claims(account), resources.settings.signing_key())
    await assert_refused(client, bearer(token))


# --- tokens of ended sessions -------------------------------------------------------


async def test_token_after_logout_is_refused(client: httpx.AsyncClient) -> None:
    account = await signup(client, "loggedout")
    assert (await client.post(f"{API}/auth/logout", headers=account.headers)).status_code == 204
    await assert_refused(client, account.headers)


async def test_token_after_suspension_is_refused(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "jwt_admin", Role.admin)
    account = await signup(client, "jwt_suspect")
    assert (await client.get(ME, headers=account.headers)).status_code == 200
    response = await client.patch(
        f"{API}/admin/users/{account.id}", json={"suspended": True}, headers=admin.headers
    )
    assert response.status_code == 200
    await assert_refused(client, account.headers)


async def test_token_of_other_session_after_password_change_is_refused(client: httpx.AsyncClient) -> None:
    account = await signup(client, "rekeyed")
    other = await login(client, "rekeyed")
    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a whole new secret"},
        headers=account.headers,
    )
    assert response.status_code == 204
    await assert_refused(client, bearer(other["access_token"]))
    assert (await client.get(ME, headers=account.headers)).status_code == 200


async def test_token_of_deleted_account_is_refused(client: httpx.AsyncClient) -> None:
    account = await signup(client, "deleted")
    response = await client.request("DELETE", ME, json={"password": PASSWORD}, headers=account.headers)
    assert response.status_code == 204
    await assert_refused(client, account.headers)


async def test_session_must_belong_to_the_subject(client: httpx.AsyncClient, resources: Resources) -> None:
    mine = await signup(client, "sessionholder")
    theirs = await signup(client, "sessionless")
    # A correctly signed token that pairs one user with another user's session.
    swapped = fresh_claims(mine, sub=theirs.id)
    await assert_refused(client, bearer(sign(resources, swapped)))
    unknown_session = fresh_claims(mine, sid="01890a5d-ac96-774b-bcce-b302099a8057")
    await assert_refused(client, bearer(sign(resources, unknown_session)))


# --- not a token at all ----------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "...",
        "a.b",
        "a.b.c.d",
        "eyJ.eyJ.sig",
        "x" * 4000,
        "null",
        "eyJhbGciOiJIUzI1NiJ9",
        f"{b64(b'[1, 2]')}.{b64(b'{}')}.c2ln",  # header is JSON but not an object
        f"{b64(b'{}')}.{b64(b'[1, 2]')}.c2ln",
        NOT_UTF8 + "." + b64(b"{}") + ".c2ln",  # header is not UTF-8
    ],
)
async def test_garbage_token_is_refused(client: httpx.AsyncClient, token: str) -> None:
    await assert_refused(client, bearer(token))


async def test_non_ascii_token_is_refused(client: httpx.AsyncClient) -> None:
    await assert_refused(client, {"Authorization": "Bearer t\xe9st".encode("latin-1")})


async def test_garbage_payload_with_a_valid_signature_is_refused(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    key = resources.settings.signing_key().encode()
    for payload in (b"not json", b"[1, 2]", b'"string"', b"\xff"):
        signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'at+jwt'}).encode())}.{b64(payload)}"
        signature = b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())
        await assert_refused(client, bearer(f"{signing_input}.{signature}"))


@pytest.mark.parametrize("value", ["Bearer ", "Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc", ""])
async def test_missing_token_is_not_authenticated(client: httpx.AsyncClient, value: str) -> None:
    await assert_refused(client, {"Authorization": value}, code="not_authenticated")


async def test_token_without_the_bearer_scheme_is_not_accepted(client: httpx.AsyncClient) -> None:
    account = await signup(client, "schemeless")
    await assert_refused(client, {"Authorization": account.access_token}, code="not_authenticated")


async def test_bearer_scheme_is_case_insensitive(client: httpx.AsyncClient) -> None:
    account = await signup(client, "casual")
    response = await client.get(ME, headers={"Authorization": f"bearer {account.access_token}"})
    assert response.status_code == 200


async def test_token_with_absurd_lifetime_is_401_not_500(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    account = await signup(client, "farfuture")
    me = (await client.get(f"{API}/users/me", headers=account.headers)).json()
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    claims["exp"] = 10**12
    forged = jwt.encode(
        claims, resources.settings.signing_key(), algorithm="HS256", headers={"typ": "at+jwt"}
    )
    response = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401, me
