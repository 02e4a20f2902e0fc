"""The event gateway client over real HTTP/2 + TLS against the simulator: every row of the
error table (avs-protocol.md 7.3), batching, and the token refresh through the simulator's LWA.
"""

from __future__ import annotations

import logging

import pytest

from avsclient.exceptions import (
    GatewayError,
    GatewayUnavailable,
    InsufficientPermission,
    InvalidAccessToken,
    InvalidGatewayRequest,
    ReportTooLarge,
    SkillDisabled,
    SkillNotFound,
)
from avsclient.gateway import (
    AddOrUpdateReport,
    Cause,
    ChangeReport,
    DeleteReport,
    Endpoint,
    EventGatewayClient,
    GatewayConfig,
    ReportLimits,
    ReportOutcome,
    connectivity,
    power_controller,
    power_state,
)
from tests.gateway.conftest import SKILL_CLIENT_SECRET, Env


def cameras(n: int, prefix: str = "cam") -> AddOrUpdateReport:
    return AddOrUpdateReport(
        endpoints=tuple(
            Endpoint.camera(f"{prefix}-{i}", f"Camera {i}", manufacturer_name="Acme")
            for i in range(n)
        )
    )


def change() -> ChangeReport:
    return ChangeReport(
        endpoint_id="cam-0",
        properties=(power_state(True),),
        cause=Cause.APP_INTERACTION,
        context=(connectivity(True),),
    )


# -- success -------------------------------------------------------------------------------


async def test_add_or_update_report_is_delivered_with_the_users_token(env: Env) -> None:
    """A camera report reaches the gateway as validated JSON carrying the bearer token twice."""
    result = await env.gateway.send(cameras(1))
    assert result.ok and result.outcome is ReportOutcome.DELIVERED
    assert [(b.outcome, b.status, b.attempts) for b in result.batches] == [
        (ReportOutcome.DELIVERED, 202, 1)
    ]
    (received,) = env.sim.gateway.reports("AddOrUpdateReport")
    event = received.document["event"]
    assert event["header"]["payloadVersion"] == "3"
    assert event["payload"]["scope"]["token"] == received.token
    (endpoint,) = event["payload"]["endpoints"]
    interfaces = [c["interface"] for c in endpoint["capabilities"]]
    assert interfaces[:2] == ["Alexa", "Alexa.CameraStreamController"]
    config = endpoint["capabilities"][1]["cameraStreamConfigurations"][0]
    assert config["protocols"] == ["RTSP"]


async def test_change_and_delete_reports_are_delivered(env: Env) -> None:
    """ChangeReport and DeleteReport go out as their own event names."""
    assert (await env.gateway.send(change())).ok
    assert (await env.gateway.send(DeleteReport(endpoint_ids=("cam-0", "cam-1")))).ok
    (changed,) = env.sim.gateway.reports("ChangeReport")
    assert changed.endpoint_ids == ("cam-0",)
    assert changed.document["event"]["payload"]["change"]["cause"]["type"] == "APP_INTERACTION"
    assert changed.document["context"]["properties"][0]["namespace"] == "Alexa.EndpointHealth"
    (deleted,) = env.sim.gateway.reports("DeleteReport")
    assert deleted.endpoint_ids == ("cam-0", "cam-1")


@pytest.mark.parametrize("status", [200, 202, 204])
async def test_any_2xx_is_success(env: Env, status: int) -> None:
    """200 and 204 count as delivered, like the documented 202."""
    env.sim.gateway.fail_next(status=status, body=b"")
    result = await env.gateway.send(change())
    assert result.ok
    assert result.batches[0].status == status


# -- 401 -----------------------------------------------------------------------------------


async def test_401_refreshes_the_token_through_lwa_once_and_retries_once(env: Env) -> None:
    """A token the gateway refuses is refreshed with the skill's client id and secret at the
    simulator's LWA, saved to the user's token file, and the batch resent with it."""
    stale = env.save_stale_token()
    result = await env.gateway.send(change())
    assert result.ok
    assert result.token_refreshes == 1
    assert result.batches[0].attempts == 2
    first, second = env.sim.gateway.requests
    assert (first.status, first.code) == (401, "INVALID_ACCESS_TOKEN_EXCEPTION")
    assert first.token == stale
    assert second.status == 202 and second.token != stale
    (grant,) = env.token_grants("refresh_token")
    assert grant["client_secret"] == SKILL_CLIENT_SECRET
    stored = env.store.load()
    assert stored is not None and stored.tokens.access_token == second.token
    assert env.time.sleeps == []  # a refresh is not a back-off


async def test_401_again_after_the_refresh_raises_invalid_access_token(env: Env) -> None:
    """The second 401 is final: one refresh, two attempts, a typed error saying to re-link."""
    env.sim.gateway.fail_next(2, status=401)
    with pytest.raises(InvalidAccessToken, match="link the account again") as info:
        await env.gateway.send(change())
    assert info.value.status == 401
    assert info.value.code == "INVALID_ACCESS_TOKEN_EXCEPTION"
    assert len(env.sim.gateway.requests) == 2
    assert len(env.token_grants("refresh_token")) == 1


# -- 403, 404, 400: final ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "error", "advice"),
    [
        (403, "SKILL_DISABLED_EXCEPTION", SkillDisabled, "delete this user's stored tokens"),
        (403, "INSUFFICIENT_PERMISSION_EXCEPTION", InsufficientPermission, "Send Alexa Events"),
        (404, "SKILL_NOT_FOUND_EXCEPTION", SkillNotFound, "region"),
        (400, "INVALID_REQUEST_EXCEPTION", InvalidGatewayRequest, "fix the message"),
    ],
)
@pytest.mark.parametrize("code_field", ["code", "type"])
async def test_final_errors_are_not_retried_and_say_what_to_do(
    env: Env,
    status: int,
    code: str,
    error: type[GatewayError],
    advice: str,
    code_field: str,
) -> None:
    """403/404/400 raise their typed error after one attempt, read from payload.code or .type."""
    env.sim.gateway.fail_next(status=status, code=code, code_field=code_field)  # type: ignore[arg-type]
    with pytest.raises(error, match=advice) as info:
        await env.gateway.send(cameras(2))
    assert (info.value.status, info.value.code) == (status, code)
    assert len(env.sim.gateway.requests) == 1
    assert env.time.sleeps == []
    assert env.token_grants("refresh_token") == []


async def test_403_without_a_known_code_is_final(env: Env) -> None:
    """A 403 whose body names no code is still not retried."""
    env.sim.gateway.fail_next(status=403, body=b"<html>Forbidden</html>")
    with pytest.raises(GatewayError, match="Send Alexa Events") as info:
        await env.gateway.send(change())
    assert info.value.code is None
    assert len(env.sim.gateway.requests) == 1


async def test_a_failed_batch_stops_the_report_and_the_result_lists_every_batch(
    env: Env,
) -> None:
    """Batch 1 delivered, batch 2 refused (403), batch 3 never sent: one result says so."""
    gateway = EventGatewayClient(
        env.user_tokens,
        config=env.gateway_config(limits=ReportLimits(max_endpoints=2)),
        clock=env.time.clock,
        sleep=env.time.sleep,
    )
    async with gateway:
        env.sim.gateway.fail_next(status=202, body=b"")
        env.sim.gateway.fail_next(status=403, code="SKILL_DISABLED_EXCEPTION")
        result = await gateway.send(cameras(5), raise_on_error=False)
    assert result.outcome is ReportOutcome.FAILED
    assert isinstance(result.error, SkillDisabled)
    assert [b.outcome for b in result.batches] == [
        ReportOutcome.DELIVERED,
        ReportOutcome.FAILED,
        ReportOutcome.NOT_SENT,
    ]
    assert [b.batch.endpoint_ids for b in result.batches] == [
        ("cam-0", "cam-1"),
        ("cam-2", "cam-3"),
        ("cam-4",),
    ]
    assert len(env.sim.gateway.requests) == 2
    with pytest.raises(SkillDisabled):
        result.raise_for_error()


# -- 413 and batching ----------------------------------------------------------------------


async def test_413_splits_the_report_in_halves_until_it_fits(env: Env) -> None:
    """The simulator takes at most 2 endpoints: 5 -> 2 + 3 -> 2 + (1 + 2), all delivered."""
    env.sim.gateway.max_endpoints = 2
    result = await env.gateway.send(cameras(5))
    assert result.ok
    delivered = [ids for b in result.delivered for ids in b.endpoint_ids]
    assert delivered == [f"cam-{i}" for i in range(5)]
    outcomes = [(b.outcome, len(b.batch.endpoint_ids)) for b in result.batches]
    assert outcomes == [
        (ReportOutcome.SPLIT, 5),
        (ReportOutcome.DELIVERED, 2),
        (ReportOutcome.SPLIT, 3),
        (ReportOutcome.DELIVERED, 1),
        (ReportOutcome.DELIVERED, 2),
    ]
    statuses = [r.status for r in env.sim.gateway.requests]
    assert statuses == [413, 202, 413, 202, 202]
    assert env.time.sleeps == []


async def test_413_for_an_oversized_body_splits_a_delete_report(env: Env) -> None:
    """The byte limit on the gateway side (not just the count) triggers the split too."""
    ids = tuple(f"device-{i:04d}-" + "x" * 200 for i in range(80))
    env.sim.gateway.max_body_bytes = 12_000
    result = await env.gateway.send(DeleteReport(endpoint_ids=ids))
    assert result.ok
    assert [i for r in env.sim.gateway.reports("DeleteReport") for i in r.endpoint_ids] == list(ids)
    assert any(r.status == 413 for r in env.sim.gateway.requests)


async def test_413_for_a_change_report_raises_report_too_large(env: Env) -> None:
    """A ChangeReport cannot be split: 413 is final."""
    env.sim.gateway.fail_next(status=413)
    with pytest.raises(ReportTooLarge, match="cannot be split"):
        await env.gateway.send(change())
    assert len(env.sim.gateway.requests) == 1


async def test_413_for_a_single_endpoint_raises_report_too_large(env: Env) -> None:
    """A one-endpoint discovery batch that is still too large fails with ReportTooLarge."""
    env.sim.gateway.fail_next(2, status=413)
    result = await env.gateway.send(cameras(2), raise_on_error=False)
    assert isinstance(result.error, ReportTooLarge)
    assert [r.status for r in env.sim.gateway.requests] == [413, 413]
    assert [(b.outcome, b.batch.endpoint_ids) for b in result.batches] == [
        (ReportOutcome.SPLIT, ("cam-0", "cam-1")),
        (ReportOutcome.FAILED, ("cam-0",)),
        (ReportOutcome.NOT_SENT, ("cam-1",)),
    ]


async def test_reports_over_300_endpoints_are_batched_before_sending(env: Env) -> None:
    """301 endpoints go out as 300 + 1 without a single 413."""
    result = await env.gateway.send(DeleteReport(endpoint_ids=tuple(f"d{i}" for i in range(301))))
    assert result.ok
    assert [len(r.endpoint_ids) for r in env.sim.gateway.reports()] == [300, 1]
    assert all(r.status == 202 for r in env.sim.gateway.requests)


async def test_reports_over_256_kb_are_batched_before_sending(env: Env) -> None:
    """Endpoints of about 2.5 KB each: 200 of them exceed 256 KB and are sent in two batches
    the simulator (which enforces 256 KB with 413) accepts at once."""
    bulky = power_controller()
    report = AddOrUpdateReport(
        endpoints=tuple(
            Endpoint(
                endpoint_id=f"plug-{i}",
                friendly_name=f"Plug {i}",
                description="Smart plug " + "d" * 100,
                manufacturer_name="Acme",
                display_categories=("SMARTPLUG",),
                capabilities=(bulky,),
                cookie={f"k{j}": "v" * 40 for j in range(40)},
            )
            for i in range(200)
        )
    )
    result = await env.gateway.send(report)
    assert result.ok
    sizes = [len(r.body) for r in env.sim.gateway.requests]
    assert len(sizes) == 2 and all(s <= 256_000 for s in sizes) and sum(sizes) > 256_000
    assert all(r.status == 202 for r in env.sim.gateway.requests)


# -- 429, 500, 503 and the network ---------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_errors_are_retried_at_least_one_second_apart(
    env: Env, status: int
) -> None:
    """Two failures, then success: two back-offs of 1 s and 2 s, three attempts."""
    env.sim.gateway.fail_next(2, status=status)
    result = await env.gateway.send(change())
    assert result.ok
    assert result.batches[0].attempts == 3
    assert env.time.sleeps == [1.0, 2.0]
    ids = {r.document["event"]["header"]["messageId"] for r in env.sim.gateway.requests}
    assert len(ids) == 1  # a retry resends the same message


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_errors_give_up_after_three_retries(env: Env, status: int) -> None:
    """Four failures: three retries (1, 2, 4 s), then GatewayUnavailable."""
    env.sim.gateway.fail_next(5, status=status)
    with pytest.raises(GatewayUnavailable, match="again later") as info:
        await env.gateway.send(change())
    assert info.value.status == status
    assert len(env.sim.gateway.requests) == 4
    assert env.time.sleeps == [1.0, 2.0, 4.0]


async def test_retry_after_lengthens_the_back_off(env: Env) -> None:
    """A Retry-After of 7 s is honoured instead of the 1 s step."""
    env.sim.gateway.fail_next(status=429, retry_after=7)
    assert (await env.gateway.send(change())).ok
    assert env.time.sleeps == [7.0]


async def test_a_dropped_connection_is_retried(env: Env) -> None:
    """The simulator closes the connection without answering; the batch is resent."""
    env.sim.gateway.drop_next()
    result = await env.gateway.send(change())
    assert result.ok
    assert result.batches[0].attempts == 2
    assert env.time.sleeps == [1.0]


async def test_a_slow_gateway_times_out_and_is_retried(env: Env) -> None:
    """A reply slower than the timeout counts as a network failure and is retried."""
    gateway = EventGatewayClient(
        env.user_tokens,
        config=env.gateway_config(timeout=0.2),
        clock=env.time.clock,
        sleep=env.time.sleep,
    )
    async with gateway:
        env.sim.gateway.delay_next(1.0)
        result = await gateway.send(change())
    assert result.ok
    assert result.batches[0].attempts == 2


async def test_an_unreachable_gateway_ends_in_gateway_unavailable(env: Env) -> None:
    """Nobody listening: three retries, then GatewayUnavailable chained to the network error."""
    gateway = EventGatewayClient(
        env.user_tokens,
        config=GatewayConfig(base_url="https://127.0.0.1:9", timeout=2),
        clock=env.time.clock,
        sleep=env.time.sleep,
    )
    async with gateway:
        result = await gateway.send(change(), raise_on_error=False)
    assert isinstance(result.error, GatewayUnavailable)
    assert result.error.__cause__ is not None
    assert result.batches[0].attempts == 4


# -- tokens and secrets --------------------------------------------------------------------


async def test_no_token_means_one_failed_outcome(env: Env) -> None:
    """A revoked refresh token ends the report with ReauthorizationRequired, nothing sent."""
    env.save_stale_token()
    stored = env.store.load()
    assert stored is not None and stored.tokens.refresh_token is not None
    env.sim.lwa.revoke(stored.tokens.refresh_token)
    result = await env.gateway.send(change(), raise_on_error=False)
    assert result.outcome is ReportOutcome.FAILED
    assert type(result.error).__name__ == "ReauthorizationRequired"
    assert [r.status for r in env.sim.gateway.requests] == [401]


async def test_no_secret_reaches_logs_or_reprs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """Tokens, the refresh token and the client secret appear in no log line or repr."""
    # Our loggers only: hpack's own DEBUG output prints every header it encodes.
    caplog.set_level(logging.DEBUG, logger="avsclient")
    env.save_stale_token()
    stored = env.store.load()
    assert stored is not None
    env.sim.gateway.fail_next(status=503)
    result = await env.gateway.send(cameras(3))
    await env.messaging.send("amzn1.ask.account.A", {"k": "v"})
    secrets = {
        SKILL_CLIENT_SECRET,
        stored.tokens.access_token,
        stored.tokens.refresh_token or "",
        *(r.token for r in env.sim.gateway.requests),
    }
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("avsclient"))
    texts = [
        ours,
        repr(result),
        repr(env.gateway),
        repr(env.messaging),
        repr(env.sim.gateway.requests),
        repr(env.gateway.config),
    ]
    for secret in secrets:
        for text in texts:
            assert secret not in text
    assert "AddOrUpdateReport" in ours  # the logs do say what happened
