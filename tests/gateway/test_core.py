"""The sans-IO delivery core: the error table, splitting, retries, misuse, and properties."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient.exceptions import (
    ConnectionLost,
    GatewayError,
    GatewayUnavailable,
    InvalidAccessToken,
    InvalidGatewayRequest,
    LocalProtocolError,
    ReportTooLarge,
    SkillDisabled,
)
from avsclient.gateway import (
    GATEWAY_RETRY,
    Delivery,
    DeliveryFinished,
    GatewayConfig,
    GatewayRetryScheduled,
    ReportOutcome,
    RequestReady,
    SkillMessagingConfig,
    TokenRefreshRequired,
    parse_error_body,
)
from avsclient.gateway.core import (
    GATEWAY_TRANSITIONS,
    SKILL_MESSAGING_RULES,
    GatewayInput,
    GatewayState,
)


@dataclass(frozen=True)
class Items:
    """A batch of numbered items that halves like a discovery batch."""

    ids: tuple[int, ...]

    def split(self) -> tuple[Items, Items] | None:
        if len(self.ids) < 2:
            return None
        half = len(self.ids) // 2
        return Items(self.ids[:half]), Items(self.ids[half:])


def err(code: str | None = None, field: str = "code", description: str = "d") -> bytes:
    payload = {} if code is None else {field: code, "description": description}
    return json.dumps({"header": {"namespace": "System"}, "payload": payload}).encode()


def new(*batches: tuple[int, ...], **kw: object) -> Delivery[Items]:
    return Delivery([Items(b) for b in batches], random=lambda: 0.0, **kw)  # type: ignore[arg-type]


def send(d: Delivery[Items], now: float = 0.0) -> RequestReady[Items]:
    event = d.next_event(now)
    assert isinstance(event, RequestReady), event
    return event


def finish(d: Delivery[Items], now: float = 0.0) -> DeliveryFinished[Items]:
    event = d.next_event(now)
    assert isinstance(event, DeliveryFinished), event
    return event


def test_a_2xx_delivers_each_batch_in_order() -> None:
    """Batches go out one at a time; 200, 202 and 204 all count."""
    d = new((1,), (2,), (3,))
    for status in (200, 202, 204):
        ready = send(d)
        d.receive_response(status, b"", now=0)
    result = finish(d).result
    assert result.ok and [b.ids for b in result.delivered] == [(1,), (2,), (3,)]
    assert ready.attempt == 1
    assert finish(d).result is result  # finished stays finished


def test_401_asks_for_one_refresh_per_report() -> None:
    """401 -> TokenRefreshRequired -> resend; a second 401 in the report fails."""
    d = new((1,), (2,))
    send(d)
    d.receive_response(401, err("INVALID_ACCESS_TOKEN_EXCEPTION"), now=0)
    assert isinstance(d.next_event(0), TokenRefreshRequired)
    assert send(d).attempt == 2
    d.receive_response(202, b"", now=0)
    send(d)
    d.receive_response(401, b"", now=0)
    result = finish(d).result
    assert isinstance(result.error, InvalidAccessToken)
    assert result.token_refreshes == 1
    assert [b.outcome for b in result.batches] == [ReportOutcome.DELIVERED, ReportOutcome.FAILED]


def test_the_code_wins_over_the_status() -> None:
    """INVALID_ACCESS_TOKEN_EXCEPTION refreshes whatever the status; a known fatal code on a
    5xx is still final."""
    d = new((1,))
    send(d)
    d.receive_response(400, err("INVALID_ACCESS_TOKEN_EXCEPTION", field="type"), now=0)
    assert isinstance(d.next_event(0), TokenRefreshRequired)
    send(d)
    d.receive_response(500, err("SKILL_DISABLED_EXCEPTION"), now=0)
    assert isinstance(finish(d).result.error, SkillDisabled)


def test_413_queues_the_halves_first() -> None:
    """Split halves are sent before the next batch of the report."""
    d = new((1, 2, 3), (9,))
    send(d)
    d.receive_response(413, b"", now=0)
    order = []
    while not isinstance(event := d.next_event(0), DeliveryFinished):
        assert isinstance(event, RequestReady)
        order.append(event.batch.ids)
        d.receive_response(202, b"", now=0)
    assert order == [(1,), (2, 3), (9,)]
    assert event.result.batches[0].outcome is ReportOutcome.SPLIT


def test_413_on_an_unsplittable_batch_is_report_too_large() -> None:
    """One item left and still too large: ReportTooLarge."""
    d = new((1,))
    send(d)
    d.receive_response(413, err("REQUEST_ENTITY_TOO_LARGE_EXCEPTION"), now=0)
    assert isinstance(finish(d).result.error, ReportTooLarge)


def test_retries_wait_until_their_time() -> None:
    """Asking before the back-off ended repeats RetryScheduled with the time left."""
    d = new((1,))
    send(d, now=10)
    d.receive_response(503, err("SERVICE_UNAVAILABLE_EXCEPTION"), now=10)
    first = d.next_event(10)
    assert isinstance(first, GatewayRetryScheduled) and first.delay == 1.0 and first.retry == 1
    early = d.next_event(10.4)
    assert isinstance(early, GatewayRetryScheduled) and early.delay == pytest.approx(0.6)
    assert send(d, now=11).attempt == 2


def test_jitter_only_lengthens_and_retry_after_is_capped() -> None:
    """Delays are never below the policy's; Retry-After counts up to 60 s."""
    d = Delivery(
        [Items((1,))],
        retry=replace(GATEWAY_RETRY, delays=(1.0, 2.0), jitter=(1.0, 1.5), max_retries=2),
        random=lambda: 0.99,
    )
    send(d)
    d.receive_response(429, b"", now=0)
    event = d.next_event(0)
    assert isinstance(event, GatewayRetryScheduled) and 1.0 <= event.delay <= 1.5
    send(d, now=2)
    d.receive_response(429, b"", now=2, retry_after=3600)
    event = d.next_event(2)
    assert isinstance(event, GatewayRetryScheduled) and event.delay == 60.0
    too_fast = replace(GATEWAY_RETRY, delays=(0.5,))
    with pytest.raises(ValueError, match=r"1\.0 s"):
        Delivery([Items((1,))], retry=too_fast)
    with pytest.raises(ValueError, match=r"1\.0 s"):
        GatewayConfig(retry=too_fast)
    with pytest.raises(ValueError, match=r"1\.0 s"):
        SkillMessagingConfig(retry=too_fast)
    with pytest.raises(ValueError, match=r"1\.0 s"):
        GatewayConfig(retry=replace(GATEWAY_RETRY, jitter=(0.5, 1.0)))  # jitter may shorten
    with pytest.raises(ValueError, match="max_retries"):
        GatewayConfig(retry=replace(GATEWAY_RETRY, max_retries=None))


def test_transport_failures_exhaust_into_gateway_unavailable() -> None:
    """Network failures are retried like 5xx, then fail chained to the last one."""
    d = new((1,), (2,))
    now = 0.0
    for _ in range(4):
        send(d, now)
        d.transport_failed(ConnectionLost("reset"), now=now)
        now += 10
    result = finish(d, now).result
    assert isinstance(result.error, GatewayUnavailable)
    assert isinstance(result.error.__cause__, ConnectionLost)
    assert [b.outcome for b in result.batches] == [ReportOutcome.FAILED, ReportOutcome.NOT_SENT]


def test_unknown_statuses_are_final_and_skill_messaging_has_its_own_table() -> None:
    """A 418 is final; Skill Messaging refreshes on 403 instead of failing."""
    d = new((1,))
    send(d)
    d.receive_response(418, b"teapot", now=0)
    error = finish(d).result.error
    assert type(error) is GatewayError and error.status == 418
    sm = new((1,), rules=SKILL_MESSAGING_RULES)
    send(sm)
    sm.receive_response(403, b"", now=0)
    assert isinstance(sm.next_event(0), TokenRefreshRequired)
    send(sm)
    sm.receive_response(400, b"", now=0)
    assert isinstance(finish(sm).result.error, InvalidGatewayRequest)


def test_abort_ends_the_report_with_the_given_error() -> None:
    """A batch that could not be sent fails with the driver's error; the rest is not sent."""
    d = new((1,), (2,))
    send(d)
    problem = LocalProtocolError("no token")
    d.abort(problem)
    result = finish(d).result
    assert result.error is problem
    assert [b.outcome for b in result.batches] == [ReportOutcome.FAILED, ReportOutcome.NOT_SENT]


def test_misuse_is_a_sticky_local_protocol_error() -> None:
    """Replying with nothing outstanding, or asking while a reply is due, breaks the core."""
    d = new((1,))
    with pytest.raises(LocalProtocolError):
        d.receive_response(202, b"", now=0)
    with pytest.raises(LocalProtocolError):
        d.next_event(0)
    d2 = new((1,))
    send(d2)
    with pytest.raises(LocalProtocolError):
        d2.next_event(0)
    assert d2.state is GatewayState.ERROR
    with pytest.raises(LocalProtocolError):
        d2.transport_failed(ConnectionLost("x"), now=0)
    with pytest.raises(ValueError, match="at least one"):
        Delivery([])


def test_parse_error_body_reads_code_or_type_and_survives_garbage() -> None:
    """payload.code, then payload.type, then top level; non-JSON and odd shapes give None."""
    assert parse_error_body(err("X", field="code")) == ("X", "d")
    assert parse_error_body(err("Y", field="type")) == ("Y", "d")
    assert parse_error_body(b'{"code": "Z", "message": "m"}') == ("Z", "m")
    assert parse_error_body(b'{"payload": {"code": "A", "message": "m\\u0000x"}}') == ("A", "m x")
    for junk in (b"", b"\xff\xfe", b"[1]", b'{"payload": 3}', b"[" * 100_000):
        code, _ = parse_error_body(junk)
        assert code is None
    assert parse_error_body(err("C" * 500))[0] is None
    assert len(parse_error_body(err("C", description="x" * 5000))[1] or "") == 300


@given(st.sampled_from(GatewayState), st.sampled_from(GatewayInput))
def test_every_state_input_pair_follows_the_table(state: GatewayState, event: GatewayInput) -> None:
    """A pair in TRANSITIONS moves to its target; any other pair raises and sticks in ERROR."""
    d = new((1,))
    d._machine.state = state
    if (state, event) in GATEWAY_TRANSITIONS:
        d._machine.feed(event)
        assert d.state is GATEWAY_TRANSITIONS[(state, event)][1]
    else:
        with pytest.raises(LocalProtocolError):
            d._machine.feed(event)
        assert d.state is GatewayState.ERROR
        with pytest.raises(LocalProtocolError):
            d.next_event(0)


_REPLY = st.one_of(
    st.sampled_from([200, 202, 400, 401, 403, 404, 413, 418, 429, 500, 502, 503]),
    st.just(-1),  # a transport failure
)


@given(st.lists(st.integers(1, 40), min_size=1, max_size=5), st.lists(_REPLY, max_size=200))
def test_every_item_ends_with_exactly_one_outcome(sizes: list[int], replies: list[int]) -> None:
    """Whatever the server answers, the delivery finishes, every item is delivered, failed or
    not sent exactly once, and the report's outcome matches its batches."""
    batches, start = [], 0
    for size in sizes:
        batches.append(tuple(range(start, start + size)))
        start += size
    d = new(*batches)
    now, feed = 0.0, iter(replies)
    for _ in range(10_000):
        event = d.next_event(now)
        if isinstance(event, DeliveryFinished):
            break
        if isinstance(event, GatewayRetryScheduled):
            now += event.delay
            continue
        if isinstance(event, TokenRefreshRequired):
            continue
        status = next(feed, 202)
        if status == -1:
            d.transport_failed(ConnectionLost("x"), now=now)
        else:
            d.receive_response(status, b"", now=now)
    else:
        pytest.fail("the delivery did not finish")
    result = event.result
    final = [b for b in result.batches if b.outcome is not ReportOutcome.SPLIT]
    items = sorted(i for b in final for i in b.batch.ids)
    assert items == list(range(start))
    assert result.ok == (result.error is None)
    assert result.ok == all(b.outcome is ReportOutcome.DELIVERED for b in final)
    assert sum(b.outcome is ReportOutcome.FAILED for b in final) == (0 if result.ok else 1)
