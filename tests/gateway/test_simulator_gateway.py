"""The simulator's gateway and Skill Messaging endpoints, seen from a plain httpx client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from avsclient.simulator import Simulator


@pytest.fixture
async def http(avs_simulator: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=avs_simulator.url, verify=avs_simulator.ssl_context(), http2=True
    ) as client:
        yield client


def event(token: str, name: str = "DeleteReport", ids: tuple[str, ...] = ("a",)) -> dict:  # type: ignore[type-arg]
    return {
        "event": {
            "header": {
                "namespace": "Alexa.Discovery",
                "name": name,
                "messageId": "m-1",
                "payloadVersion": "3",
            },
            "payload": {
                "endpoints": [{"endpointId": i} for i in ids],
                "scope": {"type": "BearerToken", "token": token},
            },
        }
    }


async def post(http: httpx.AsyncClient, path: str, token: str, body: object) -> httpx.Response:
    return await http.post(
        path,
        content=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )


async def test_the_gateway_validates_what_it_receives(
    avs_simulator: Simulator, http: httpx.AsyncClient
) -> None:
    """Each malformed request gets its documented status and code; good ones get 202."""
    sim, token = avs_simulator, avs_simulator.add_token()
    assert (await post(http, "/v3/events", token, event(token))).status_code == 202
    cases = [
        (await post(http, "/v3/events", "unknown", event("unknown")), 401),
        (await post(http, "/v3/events", token, event("other-token")), 400),
        (await post(http, "/v3/events", token, {"event": 1}), 400),
        (await post(http, "/v3/events", token, event(token, name="Discover")), 400),
        (await post(http, "/v3/events", token, event(token, "AddOrUpdateReport")), 400),
    ]
    sim.gateway.max_endpoints = 2
    cases.append((await post(http, "/v3/events", token, event(token, ids=("a", "b", "c"))), 413))
    sim.gateway.max_body_bytes = 100
    cases.append((await post(http, "/v3/events", token, event(token)), 413))
    for response, status in cases:
        assert response.status_code == status
        assert response.json()["header"]["name"] == "Exception"
    invalid, too_large = "INVALID_REQUEST_EXCEPTION", "REQUEST_ENTITY_TOO_LARGE_EXCEPTION"
    assert [r.code for r in sim.gateway.requests] == [
        None,
        "INVALID_ACCESS_TOKEN_EXCEPTION",
        *[invalid] * 4,
        *[too_large] * 2,
    ]
    assert [r.status for r in sim.gateway.requests] == [202, 401, 400, 400, 400, 400, 413, 413]
    wrong_method = await http.get("/v3/events")
    assert wrong_method.status_code == 405


async def test_skill_messaging_validates_what_it_receives(
    avs_simulator: Simulator, http: httpx.AsyncClient
) -> None:
    """data is required and bounded, expiry in range, the token valid (403 when not)."""
    sim, token = avs_simulator, avs_simulator.add_token()
    path = "/v1/skillmessages/users/amzn1.ask.account.X"
    assert (await post(http, path, token, {"data": {}})).status_code == 202
    bad_token = await post(http, path, "nope", {"data": {}})
    assert bad_token.status_code == 403
    assert bad_token.json()["payload"]["code"] == "INVALID_ACCESS_TOKEN_EXCEPTION"
    for body in (
        {},
        {"data": []},
        {"data": {}, "expiresAfterSeconds": 5},
        {"data": {"k": "v" * 7000}},
    ):
        assert (await post(http, path, token, body)).status_code == 400
    assert (await post(http, "/v1/skillmessages/users/", token, {"data": {}})).status_code == 404
    assert len(sim.gateway.messages()) == 1


async def test_faults_can_target_one_api_and_use_payload_type(
    avs_simulator: Simulator, http: httpx.AsyncClient
) -> None:
    """A fault for "messages" leaves events alone; code_field="type" renames the code key."""
    sim, token = avs_simulator, avs_simulator.add_token()
    sim.gateway.fail_next(status=429, api="messages", code_field="type", retry_after=3)
    assert (await post(http, "/v3/events", token, event(token))).status_code == 202
    response = await post(http, "/v1/skillmessages/users/u", token, {"data": {}})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["payload"] == {
        "type": "THROTTLING_EXCEPTION",
        "description": "injected failure",
    }
    sim.gateway.drop_next()
    with pytest.raises(httpx.RemoteProtocolError):
        await post(http, "/v3/events", token, event(token))
    sim.gateway.fail_next(status=500)
    sim.gateway.clear_faults()
    assert (await post(http, "/v3/events", token, event(token))).status_code == 202
    with pytest.raises(ValueError, match="status"):
        sim.gateway.fail_next(status=99)


async def test_request_records_hide_tokens_in_their_repr(
    avs_simulator: Simulator, http: httpx.AsyncClient
) -> None:
    """What the simulator recorded keeps the token, but never prints it."""
    token = avs_simulator.add_token()
    await post(http, "/v3/events", token, event(token))
    (record,) = avs_simulator.gateway.reports("DeleteReport")
    assert record.token == token and token not in repr(record)
