"""The Skill Messaging client over HTTP/2 + TLS against the simulator (avs-protocol.md 8)."""

from __future__ import annotations

import json

import pytest

from avsclient.exceptions import (
    ClientConfigError,
    GatewayUnavailable,
    InvalidAccessToken,
    InvalidGatewayRequest,
    SkillNotFound,
)
from avsclient.gateway import (
    GatewayRegion,
    ReportOutcome,
    SkillMessage,
    SkillMessagingClient,
    SkillMessagingConfig,
)
from avsclient.gateway.config import SKILL_MESSAGING_HOSTS
from tests.gateway.conftest import SKILL_CLIENT_ID, SKILL_CLIENT_SECRET, USER_ID, Env


async def test_a_message_is_queued_with_a_client_credentials_token(env: Env) -> None:
    """202 = queued; the body is {"data", "expiresAfterSeconds"}; the token has the skill scope."""
    result = await env.messaging.send(USER_ID, {"event": "doorbell"}, expires_after_seconds=120)
    assert result.ok and result.batches[0].status == 202
    (received,) = env.sim.gateway.messages()
    assert received.user_id == USER_ID
    assert received.path == f"/v1/skillmessages/users/{USER_ID}"
    assert received.document == {"data": {"event": "doorbell"}, "expiresAfterSeconds": 120}
    (grant,) = env.token_grants("client_credentials")
    assert grant == {
        "grant_type": "client_credentials",
        "client_id": SKILL_CLIENT_ID,
        "client_secret": SKILL_CLIENT_SECRET,
        "scope": "alexa:skill_messaging",
    }


async def test_the_token_is_cached_across_messages(env: Env) -> None:
    """Three messages, one client_credentials grant."""
    for n in range(3):
        await env.messaging.send(USER_ID, {"n": n})
    assert len(env.sim.gateway.messages()) == 3
    assert len(env.token_grants("client_credentials")) == 1


async def test_user_ids_are_escaped_into_the_path(env: Env) -> None:
    """A user id with reserved characters arrives intact."""
    await env.messaging.send("amzn1.ask.account.A/B?C#D", {})
    (received,) = env.sim.gateway.messages()
    assert received.user_id == "amzn1.ask.account.A/B?C#D"


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_token_is_refreshed_once(env: Env, status: int) -> None:
    """401 or 403: a new client_credentials token, the message resent once."""
    await env.messaging.send(USER_ID, {"warm": "up"})
    env.sim.gateway.fail_next(status=status, api="messages")
    result = await env.messaging.send(USER_ID, {"a": "b"})
    assert result.ok and result.token_refreshes == 1
    assert len(env.token_grants("client_credentials")) == 2
    tokens = [r.token for r in env.sim.gateway.requests]
    assert tokens[1] == tokens[0] and tokens[2] != tokens[1]


async def test_a_token_expired_server_side_gets_403_and_is_replaced(env: Env) -> None:
    """The simulator answers 403 for a token it no longer accepts (section 8): the cached
    token is dropped, a new client_credentials grant made, the message resent."""
    await env.messaging.send(USER_ID, {"warm": "up"})
    later = env.sim.lwa.clock() + 4000  # past the first token's 3600 s on the server's clock
    env.sim.lwa.clock = lambda: later
    result = await env.messaging.send(USER_ID, {"a": "b"})
    assert result.ok and result.token_refreshes == 1
    assert [(r.status, r.code) for r in env.sim.gateway.requests] == [
        (202, None),
        (403, "INVALID_ACCESS_TOKEN_EXCEPTION"),
        (202, None),
    ]
    assert len(env.token_grants("client_credentials")) == 2


async def test_a_token_refused_twice_raises_invalid_access_token(env: Env) -> None:
    """403 after the refresh is final."""
    env.sim.gateway.fail_next(2, status=403, code="INVALID_ACCESS_TOKEN_EXCEPTION")
    with pytest.raises(InvalidAccessToken):
        await env.messaging.send(USER_ID, {})
    assert len(env.sim.gateway.requests) == 2


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_errors_back_off(env: Env, status: int) -> None:
    """429 and 5xx: back-off of at least 1 s, then success; four failures give up."""
    env.sim.gateway.fail_next(1, status=status)
    assert (await env.messaging.send(USER_ID, {})).ok
    assert env.time.sleeps == [1.0]
    env.sim.gateway.fail_next(4, status=status)
    with pytest.raises(GatewayUnavailable):
        await env.messaging.send(USER_ID, {})
    assert env.time.sleeps == [1.0, 1.0, 2.0, 4.0]


async def test_400_and_404_are_final(env: Env) -> None:
    """400 raises InvalidGatewayRequest, 404 SkillNotFound, each after one attempt."""
    env.sim.gateway.fail_next(status=400, api="messages")
    with pytest.raises(InvalidGatewayRequest):
        await env.messaging.send(USER_ID, {})
    env.sim.gateway.fail_next(status=404, api="messages")
    result = await env.messaging.send(USER_ID, {}, raise_on_error=False)
    assert isinstance(result.error, SkillNotFound)
    assert result.outcome is ReportOutcome.FAILED
    assert len(env.sim.gateway.requests) == 2


async def test_a_wrong_client_secret_fails_with_client_config_error(env: Env) -> None:
    """LWA refuses the client_credentials grant: the message ends with that error."""
    env.sim.lwa.register_client(SKILL_CLIENT_ID, "another-secret")
    result = await env.messaging.send(USER_ID, {}, raise_on_error=False)
    assert isinstance(result.error, ClientConfigError)
    assert env.sim.gateway.requests == []


def test_messages_are_validated_before_sending() -> None:
    """data must be a JSON object with string keys within the size bound; expiry in range."""
    with pytest.raises(TypeError):
        SkillMessage(user_id=USER_ID, data=["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keys"):
        SkillMessage(user_id=USER_ID, data={1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="plain JSON"):
        SkillMessage(user_id=USER_ID, data={"x": float("nan")})
    for bad in (59, 86_401, True):
        with pytest.raises(ValueError, match="expires_after_seconds"):
            SkillMessage(user_id=USER_ID, data={}, expires_after_seconds=bad)
    for user in ("", "has space", "é"):
        with pytest.raises(ValueError, match="user_id"):
            SkillMessage(user_id=user, data={})
    message = SkillMessage(user_id=USER_ID, data={"k": "v" * 100})
    with pytest.raises(ValueError, match="over the 50-byte limit"):
        message.encode(50)
    assert json.loads(message.encode(6000)) == {
        "data": {"k": "v" * 100},
        "expiresAfterSeconds": 3600,
    }


async def test_oversized_data_is_refused_before_any_token_is_fetched(env: Env) -> None:
    """Data over the configured bound raises ValueError and nothing goes out."""
    with pytest.raises(ValueError, match="limit"):
        await env.messaging.send(USER_ID, {"k": "v" * 7000})
    assert env.sim.gateway.requests == [] and env.token_grants("client_credentials") == []


async def test_the_simulator_refuses_data_over_its_limit(env: Env) -> None:
    """With a client limit above the simulator's, the 400 comes back as a typed error."""
    env.sim.gateway.max_data_bytes = 100
    messaging = SkillMessagingClient(
        env.skill_tokens,
        config=SkillMessagingConfig(base_url=env.sim.url, ca_file=env.sim.ca_file),
        clock=env.time.clock,
        sleep=env.time.sleep,
    )
    async with messaging:
        with pytest.raises(InvalidGatewayRequest, match="larger than 100 bytes"):
            await messaging.send(USER_ID, {"k": "v" * 200})


def test_regional_hosts_and_base_url_override() -> None:
    """NA, EU and FE hosts; base_url replaces them; the FE host is configurable."""
    assert SkillMessagingConfig().url == "https://api.amazonalexa.com"
    assert SkillMessagingConfig(region=GatewayRegion.EU).url == "https://api.eu.amazonalexa.com"
    assert (
        SkillMessagingConfig(region=GatewayRegion.FE).url == SKILL_MESSAGING_HOSTS[GatewayRegion.FE]
    )
    override = SkillMessagingConfig(
        region=GatewayRegion.FE, base_url="https://api.fe.amazonalexa.com/"
    )
    assert override.url == "https://api.fe.amazonalexa.com"
    with pytest.raises(ValueError, match="base_url"):
        SkillMessagingConfig(base_url="ftp://example.com")
