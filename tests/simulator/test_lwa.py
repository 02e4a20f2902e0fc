"""Login with Amazon in the simulator: the sans-IO service, then over real HTTP/2 with httpx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from avsclient.simulator import CodePairState, LWAService, Simulator
from avsclient.simulator.lwa import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

TOKEN = "/auth/o2/token"
CODEPAIR = "/auth/O2/create/codepair"
SCOPE_DATA = json.dumps(
    {
        "alexa:all": {
            "productID": "my_device",
            "productInstanceAttributes": {"deviceSerialNumber": "123"},
        }
    }
)


def codepair_form(client_id: str = DEFAULT_CLIENT_ID, **overrides: str) -> dict[str, str]:
    form = {
        "response_type": "device_code",
        "client_id": client_id,
        "scope": "alexa:all",
        "scope_data": SCOPE_DATA,
    }
    form.update(overrides)
    return form


def refresh_form(token: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": DEFAULT_CLIENT_ID,
        **extra,
    }


def assert_error(reply: tuple[int, dict[str, Any]], status: int, error: str) -> None:
    assert reply[0] == status, reply
    assert reply[1]["error"] == error
    assert reply[1]["error_description"]


# -- sans-IO ---------------------------------------------------------------------------------


def test_refresh_grant_issues_access_tokens_accepted_until_expiry() -> None:
    """A refresh returns an Atza| token (>= 350 chars) valid for access_token_lifetime."""
    lwa = LWAService()
    refresh = lwa.issue_refresh_token()
    assert refresh.startswith("Atzr|")
    status, body = lwa.respond(TOKEN, refresh_form(refresh), now=100.0)
    assert status == 200
    assert body["access_token"].startswith("Atza|")
    assert len(body["access_token"]) >= 350
    assert body["refresh_token"] == refresh
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert lwa.access_token_valid(body["access_token"], 100.0 + 3599)
    assert not lwa.access_token_valid(body["access_token"], 100.0 + 3600)
    assert not lwa.access_token_valid("Atza|made-up", 100.0)


def test_refresh_with_secret_and_errors() -> None:
    """Client secret is checked when given; revoked/unknown tokens are invalid_grant."""
    lwa = LWAService()
    refresh = lwa.issue_refresh_token()
    ok = lwa.respond(TOKEN, refresh_form(refresh, client_secret=DEFAULT_CLIENT_SECRET), 0)
    assert ok[0] == 200
    assert_error(
        lwa.respond(TOKEN, refresh_form(refresh, client_secret="bad"), 0), 401, "invalid_client"
    )
    unknown_client = {**refresh_form(refresh), "client_id": "nobody"}
    assert_error(lwa.respond(TOKEN, unknown_client, 0), 401, "invalid_client")
    assert_error(lwa.respond(TOKEN, refresh_form("Atzr|nope"), 0), 400, "invalid_grant")
    assert_error(lwa.respond(TOKEN, {"grant_type": "refresh_token"}, 0), 400, "invalid_request")
    lwa.revoke(refresh)
    assert_error(lwa.respond(TOKEN, refresh_form(refresh), 0), 400, "invalid_grant")


def test_refresh_token_of_another_client_is_invalid_grant() -> None:
    """A refresh token only works for the client it was issued to."""
    lwa = LWAService()
    lwa.register_client("other", None)
    refresh = lwa.issue_refresh_token("other")
    assert_error(lwa.respond(TOKEN, refresh_form(refresh), 0), 400, "invalid_grant")
    form = {**refresh_form(refresh), "client_id": "other"}
    assert lwa.respond(TOKEN, form, 0)[0] == 200


def test_rotating_refresh_tokens() -> None:
    """With rotation on, each refresh returns a new token and the old one stops working."""
    lwa = LWAService()
    lwa.rotate_refresh_tokens = True
    first = lwa.issue_refresh_token()
    status, body = lwa.respond(TOKEN, refresh_form(first), 0)
    assert status == 200
    assert body["refresh_token"] != first
    assert_error(lwa.respond(TOKEN, refresh_form(first), 0), 400, "invalid_grant")
    assert lwa.respond(TOKEN, refresh_form(body["refresh_token"]), 0)[0] == 200


def test_client_credentials_grant() -> None:
    """client_credentials returns an access token with scope and no refresh token."""
    lwa = LWAService()
    form = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "scope": "alexa:skill_messaging",
    }
    status, body = lwa.respond(TOKEN, form, 0)
    assert status == 200
    assert body["scope"] == "alexa:skill_messaging"
    assert "refresh_token" not in body
    assert_error(lwa.respond(TOKEN, {**form, "client_secret": "x"}, 0), 401, "invalid_client")
    assert_error(lwa.respond(TOKEN, {**form, "scope": ""}, 0), 400, "invalid_request")


def test_unsupported_and_missing_grant_type() -> None:
    """Unknown grants are unsupported_grant_type; a missing one is invalid_request."""
    lwa = LWAService()
    assert_error(lwa.respond(TOKEN, {"grant_type": "password"}, 0), 400, "unsupported_grant_type")
    assert_error(lwa.respond(TOKEN, {}, 0), 400, "invalid_request")
    assert lwa.respond("/auth/o2/nothing", {}, 0)[0] == 404


def test_codepair_flow_pending_slow_down_approve_and_reuse() -> None:
    """The device_code grant answers pending, slow_down, then tokens once approved."""
    lwa = LWAService()
    status, pair = lwa.respond(CODEPAIR, codepair_form(), now=0)
    assert status == 200
    assert set(pair) == {"user_code", "device_code", "verification_uri", "expires_in", "interval"}
    assert (pair["expires_in"], pair["interval"]) == (600, 5)
    assert lwa.codepairs[0].product_id == "my_device"
    assert lwa.codepairs[0].serial == "123"
    poll = {"grant_type": "device_code", "device_code": pair["device_code"]}
    poll["user_code"] = pair["user_code"]
    assert_error(lwa.respond(TOKEN, poll, 0), 400, "authorization_pending")
    assert_error(lwa.respond(TOKEN, poll, 1), 400, "slow_down")
    assert_error(lwa.respond(TOKEN, poll, 6), 400, "authorization_pending")
    lwa.approve(pair["user_code"])
    status, tokens = lwa.respond(TOKEN, poll, 12)
    assert status == 200
    assert tokens["refresh_token"].startswith("Atzr|")
    assert lwa.codepairs[0].state is CodePairState.USED
    assert lwa.respond(TOKEN, refresh_form(tokens["refresh_token"]), 13)[0] == 200
    assert_error(lwa.respond(TOKEN, poll, 30), 400, "invalid_grant")


def test_auto_approve_and_the_code_page() -> None:
    """With auto_approve the first poll gets tokens; enter_code approves a waiting code."""
    lwa = LWAService()
    lwa.auto_approve = True
    _, pair = lwa.respond(CODEPAIR, codepair_form(), now=0)
    poll = {"grant_type": "device_code", "device_code": pair["device_code"]}
    poll["user_code"] = pair["user_code"]
    status, tokens = lwa.respond(TOKEN, poll, 1)
    assert status == 200 and tokens["refresh_token"].startswith("Atzr|")

    lwa.auto_approve = False
    assert "GET /code?code=USERCODE" in lwa.enter_code(None)[1]
    _, pair = lwa.respond(CODEPAIR, codepair_form(), now=0)
    poll = {"grant_type": "device_code", "device_code": pair["device_code"]}
    poll["user_code"] = pair["user_code"]
    assert_error(lwa.respond(TOKEN, poll, 1), 400, "authorization_pending")
    assert lwa.enter_code("nope99")[0] == 404
    status, text = lwa.enter_code(pair["user_code"].lower())
    assert status == 200 and pair["user_code"] in text
    assert lwa.respond(TOKEN, poll, 7)[0] == 200


def test_codepair_expiry_denial_and_unknown_pairs() -> None:
    """Expired pairs answer expired_token, denied ones access_denied, unknown invalid_code_pair."""
    lwa = LWAService()
    lwa.codepair_lifetime = 60
    lwa.codepair_interval = 1
    _, pair = lwa.respond(CODEPAIR, codepair_form(), now=0)
    poll = {
        "grant_type": "device_code",
        "device_code": pair["device_code"],
        "user_code": pair["user_code"],
    }
    assert_error(lwa.respond(TOKEN, poll, 60), 400, "expired_token")
    assert_error(lwa.respond(TOKEN, {**poll, "user_code": "WRONG"}, 1), 400, "invalid_code_pair")
    assert_error(lwa.respond(TOKEN, {**poll, "device_code": "x"}, 1), 400, "invalid_code_pair")
    assert_error(lwa.respond(TOKEN, {"grant_type": "device_code"}, 1), 400, "invalid_request")
    _, second = lwa.respond(CODEPAIR, codepair_form(), now=100)
    lwa.deny(second["user_code"])
    poll2 = {**poll, "device_code": second["device_code"], "user_code": second["user_code"]}
    assert_error(lwa.respond(TOKEN, poll2, 101), 400, "access_denied")
    with pytest.raises(KeyError):
        lwa.approve("NOPE12")


@pytest.mark.parametrize(
    ("override", "status", "error"),
    [
        ({"response_type": "code"}, 400, "invalid_request"),
        ({"client_id": ""}, 400, "invalid_request"),
        ({"client_id": "nobody"}, 401, "invalid_client"),
        ({"scope": "profile"}, 400, "invalid_request"),
        ({"scope_data": "{not json"}, 400, "invalid_request"),
        ({"scope_data": json.dumps({"alexa:all": {"productID": "p"}})}, 400, "invalid_request"),
    ],
)
def test_codepair_request_errors(override: dict[str, str], status: int, error: str) -> None:
    """Malformed code-pair requests are rejected with the LWA error."""
    assert_error(LWAService().respond(CODEPAIR, codepair_form(**override), 0), status, error)


def test_codepair_checks_the_registered_product() -> None:
    """A client registered with a product id only gets pairs for that product."""
    lwa = LWAService()
    lwa.register_client("dev", product_id="other_product")
    assert_error(lwa.respond(CODEPAIR, codepair_form("dev"), 0), 400, "invalid_request")
    lwa.register_client("dev", product_id="my_device")
    assert lwa.respond(CODEPAIR, codepair_form("dev"), 0)[0] == 200


def test_faults_and_request_log() -> None:
    """fail_next, delay_next and drop_next apply in order; every request is logged."""
    lwa = LWAService()
    refresh = lwa.issue_refresh_token()
    lwa.fail_next(2, status=500)
    lwa.delay_next(0.5)
    lwa.drop_next()
    dropped = lwa.handle(TOKEN, refresh_form(refresh), 0)
    assert (dropped.drop, dropped.delay) == (True, 0.5)
    failed = lwa.handle(TOKEN, refresh_form(refresh), 0)
    assert failed.status == 500
    assert json.loads(failed.body)["error"] == "servererror"
    assert lwa.handle(TOKEN, refresh_form(refresh), 0).status == 500
    lwa.fail_next(status=400, body=b"{not json")
    assert lwa.handle(TOKEN, refresh_form(refresh), 0).body == b"{not json"
    lwa.fail_next(status=400, error="invalid_grant")
    assert json.loads(lwa.handle(TOKEN, refresh_form(refresh), 0).body)["error"] == "invalid_grant"
    ok = lwa.handle(TOKEN, refresh_form(refresh), 0)
    assert (ok.status, ok.delay, ok.drop) == (200, 0.0, False)
    assert len(lwa.requests) == 6
    assert lwa.requests[0] == (TOKEN, refresh_form(refresh))
    with pytest.raises(ValueError, match="n must"):
        lwa.fail_next(0, status=500)


# -- over HTTP/2 -----------------------------------------------------------------------------


@pytest.fixture(params=["tls", "h2c"])
async def http(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Simulator, httpx.AsyncClient]]:
    async with Simulator(tls=request.param == "tls") as sim:
        verify: Any = sim.ssl_context() if sim.tls else False
        async with httpx.AsyncClient(
            http1=False, http2=True, verify=verify, base_url=sim.url
        ) as client:
            yield sim, client


async def test_refresh_over_http2_and_token_works_on_avs(
    http: tuple[Simulator, httpx.AsyncClient],
) -> None:
    """A refresh over HTTP/2 returns JSON tokens; the access token opens /ping."""
    sim, client = http
    refresh = sim.lwa.issue_refresh_token()
    response = await client.post(TOKEN, data=refresh_form(refresh))
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    access = response.json()["access_token"]
    ping = await client.get("/ping", headers={"authorization": f"Bearer {access}"})
    assert ping.status_code == 204
    sim.lwa.clock = lambda: 1e12  # far future: the access token has expired
    ping = await client.get("/ping", headers={"authorization": f"Bearer {access}"})
    assert ping.status_code == 403


async def test_code_based_linking_over_http2(http: tuple[Simulator, httpx.AsyncClient]) -> None:
    """Code pair, pending poll, approval and token exchange, over the wire."""
    sim, client = http
    now = [1000.0]
    sim.lwa.clock = lambda: now[0]
    pair = (await client.post(CODEPAIR, data=codepair_form())).json()
    poll = {
        "grant_type": "device_code",
        "device_code": pair["device_code"],
        "user_code": pair["user_code"],
    }
    pending = await client.post(TOKEN, data=poll)
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    sim.lwa.approve(pair["user_code"])
    now[0] += pair["interval"]
    tokens = await client.post(TOKEN, data=poll)
    assert tokens.status_code == 200
    assert tokens.json()["refresh_token"].startswith("Atzr|")
    assert sim.lwa.requests[0][0] == CODEPAIR


async def test_lwa_errors_over_http2(http: tuple[Simulator, httpx.AsyncClient]) -> None:
    """invalid_client is 401, bad content type and bad forms are 400 invalid_request."""
    sim, client = http
    bad_client = await client.post(TOKEN, data={**refresh_form("x"), "client_id": "nobody"})
    assert (bad_client.status_code, bad_client.json()["error"]) == (401, "invalid_client")
    as_json = await client.post(TOKEN, json=refresh_form("x"))
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")
    malformed = await client.post(
        TOKEN,
        content=b"a=1&&&=",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert malformed.status_code == 400
    assert len(sim.lwa.requests) == 1  # the malformed ones never reached the service


async def test_lwa_faults_over_http2(http: tuple[Simulator, httpx.AsyncClient]) -> None:
    """Injected failures, malformed bodies and dropped connections reach the client."""
    sim, client = http
    refresh = sim.lwa.issue_refresh_token()
    sim.lwa.fail_next(status=503)
    response = await client.post(TOKEN, data=refresh_form(refresh))
    assert (response.status_code, response.json()["error"]) == (503, "servererror")
    sim.lwa.fail_next(status=200, body=b'{"access_token": ')
    response = await client.post(TOKEN, data=refresh_form(refresh))
    assert response.content == b'{"access_token": '
    sim.lwa.delay_next(0.05)
    assert (await client.post(TOKEN, data=refresh_form(refresh))).status_code == 200
    sim.lwa.drop_next()
    with pytest.raises(httpx.TransportError):
        await client.post(TOKEN, data=refresh_form(refresh))
    assert (await client.post(TOKEN, data=refresh_form(refresh))).status_code == 200
