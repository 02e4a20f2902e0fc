"""The sans-IO LWA core: requests, reply validation, retries and the code-pair state machine."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient._retry import NO_JITTER as NO_JITTER_RANGE
from avsclient.auth.codepair import _LINK_TRANSITIONS, CodePairLinking, LinkingState, _LinkInput
from avsclient.auth.lwa import (
    _EXCHANGE_TRANSITIONS,
    CODEPAIR_PATH,
    LWA_RETRY,
    MAX_POLL_INTERVAL,
    TOKEN_PATH,
    CodePairReceived,
    LWAConfig,
    LWARetryScheduled,
    PollScheduled,
    TokenExchange,
    TokenSet,
    TokensReceived,
    _ExchangeInput,
    _ExchangeState,
    client_credentials_request,
    codepair_request,
    parse_token_reply,
    refresh_request,
)
from avsclient.exceptions import (
    AuthError,
    ClientConfigError,
    ConnectionLost,
    LinkingExpired,
    LocalProtocolError,
    ReauthorizationRequired,
)

ACCESS = "Atza|" + "a" * 400
REFRESH = "Atzr|" + "r" * 100
NO_JITTER = replace(LWA_RETRY, jitter=NO_JITTER_RANGE)
LWA_TABLE = LWA_RETRY.delays


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def tokens_body(**overrides: object) -> bytes:
    doc: dict[str, object] = {
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "token_type": "bearer",
        "expires_in": 3600,
    }
    doc.update(overrides)
    return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()


def error_body(error: str) -> bytes:
    return body(error=error, error_description="described")


# -- requests --------------------------------------------------------------------------------


def test_codepair_request_matches_section_6_3() -> None:
    """The code-pair request carries response_type, client_id, scope and the SDK's scope_data."""
    request = codepair_request("cid", "my_product", "SN-1")
    assert request.path == CODEPAIR_PATH
    form = dict(parse_qsl(request.body().decode()))
    assert form["response_type"] == "device_code"
    assert form["client_id"] == "cid"
    assert form["scope"] == "alexa:all"
    assert json.loads(form["scope_data"]) == {
        "alexa:all": {
            "productID": "my_product",
            "productInstanceAttributes": {"deviceSerialNumber": "SN-1"},
        }
    }
    assert b"scope=alexa%3Aall" in request.body()


def test_refresh_request_includes_secret_only_when_given() -> None:
    """client_secret is sent only for clients that have one (section 6.2)."""
    plain = dict(refresh_request(REFRESH, "cid").form)
    assert plain == {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": "cid"}
    with_secret = dict(refresh_request(REFRESH, "cid", "s3cret").form)
    assert with_secret["client_secret"] == "s3cret"
    assert refresh_request(REFRESH, "cid").path == TOKEN_PATH


def test_reprs_hide_secrets() -> None:
    """Requests, tokens and configs never show secrets in their repr."""
    request = refresh_request(REFRESH, "cid", "s3cret")
    cc = client_credentials_request("cid", "s3cret")
    tokens = TokenSet(access_token=ACCESS, refresh_token=REFRESH, expires_at=1.0)
    config = LWAConfig(client_id="cid", client_secret="s3cret")
    for text in (repr(request), repr(cc), repr(tokens), repr(config), str(tokens)):
        assert REFRESH not in text
        assert ACCESS not in text
        assert "s3cret" not in text
    assert "client_id='cid'" in repr(request)


def test_config_rejects_bad_values() -> None:
    """LWAConfig checks its fields when built."""
    with pytest.raises(ValueError, match="client_id"):
        LWAConfig(client_id="")
    with pytest.raises(ValueError, match="client_id"):
        LWAConfig(client_id="x" * 101)
    with pytest.raises(ValueError, match="url"):
        LWAConfig(client_id="c", url="ftp://x")
    with pytest.raises(ValueError, match="refresh_margin"):
        LWAConfig(client_id="c", refresh_margin=-1)
    with pytest.raises(ValueError, match="jitter"):
        replace(LWA_RETRY, jitter=(-1.0, 3.0))
    with pytest.raises(ValueError, match="delays"):
        replace(LWA_RETRY, delays=())


def test_refresh_due_ten_minutes_before_expiry() -> None:
    """A refresh is due from `margin` seconds before expiry on."""
    tokens = TokenSet(access_token=ACCESS, refresh_token=REFRESH, expires_at=5000.0)
    assert not tokens.refresh_due(4399.9)
    assert tokens.refresh_due(4400.0)
    assert tokens.refresh_due(4900.0, margin=100)
    assert not tokens.refresh_due(4899.0, margin=100)
    assert not tokens.expired(4999.9)
    assert tokens.expired(5000.0)


# -- reply validation ----------------------------------------------------------------------


def test_parse_token_reply_accepts_lwa_reply() -> None:
    """A well-formed reply gives tokens with expires_at = now + expires_in."""
    tokens = parse_token_reply(200, tokens_body(), now=100.0, require_refresh_token=True)
    assert tokens.access_token == ACCESS
    assert tokens.refresh_token == REFRESH
    assert tokens.expires_at == 3700.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not a JSON object"),
        (b"[1, 2]", "not a JSON object"),
        (b"", "not a JSON object"),
        (tokens_body(access_token=None), "no access_token"),
        (tokens_body(access_token=""), "no access_token"),
        (tokens_body(access_token=42), "no access_token"),
        (tokens_body(access_token="Atza|a\r\nX-Evil: 1"), "malformed access_token"),
        (tokens_body(access_token="Atza|" + "a" * 5000), "over 4096 bytes"),
        (tokens_body(token_type="mac"), "token_type"),
        (tokens_body(token_type=None), "token_type"),
        (tokens_body(expires_in=0), "expires_in"),
        (tokens_body(expires_in=-5), "expires_in"),
        (tokens_body(expires_in=True), "expires_in"),
        (tokens_body(expires_in="3600"), "expires_in"),
        (tokens_body(refresh_token=None), "no refresh_token"),
    ],
)
def test_parse_token_reply_rejects_malformed_replies(raw: bytes, message: str) -> None:
    """Missing or malformed fields give a clear AuthError (SDK rules, section 6.2)."""
    with pytest.raises(AuthError, match=message) as info:
        parse_token_reply(200, raw, now=0.0, require_refresh_token=True)
    assert type(info.value) is AuthError
    assert info.value.status == 200


def test_client_credentials_reply_needs_no_refresh_token() -> None:
    """client_credentials replies have no refresh token but may name the scope."""
    raw = tokens_body(refresh_token=None, scope="alexa:skill_messaging")
    tokens = parse_token_reply(200, raw, now=0.0, require_refresh_token=False)
    assert tokens.refresh_token is None
    assert tokens.scope == "alexa:skill_messaging"


@given(st.binary(max_size=200), st.integers(min_value=100, max_value=599))
def test_parse_token_reply_never_crashes(raw: bytes, status: int) -> None:
    """Arbitrary bytes and statuses give tokens or an AuthError, nothing else."""
    with contextlib.suppress(AuthError):
        parse_token_reply(status, raw, now=0.0, require_refresh_token=True)


# -- retry policy ----------------------------------------------------------------------------


def test_backoff_follows_sdk_table_without_jitter() -> None:
    """Retry n waits the n-th table entry; the last entry repeats."""
    delays = [NO_JITTER.delay(n, 0.9) for n in range(1, 10)]
    assert delays == [*LWA_TABLE, 60.0, 60.0]


@given(st.integers(min_value=1, max_value=20), st.floats(min_value=0, max_value=0.999999))
def test_backoff_jitter_stays_within_half(retry: int, fraction: float) -> None:
    """With the default jitter every delay is within +/-50 % of its table entry."""
    base = LWA_TABLE[min(retry, len(LWA_TABLE)) - 1]
    delay = LWA_RETRY.delay(retry, fraction)
    assert base * 0.5 <= delay <= base * 1.5


# -- token exchange --------------------------------------------------------------------------


def exchange(max_retries: int | None = 7) -> TokenExchange:
    policy = replace(LWA_RETRY, jitter=NO_JITTER_RANGE, max_retries=max_retries)
    return TokenExchange(refresh_request(REFRESH, "cid"), retry=policy, random=lambda: 0.5)


def test_exchange_success() -> None:
    """A 200 reply ends the exchange with tokens."""
    ex = exchange()
    assert ex.next_request().grant_type == "refresh_token"
    event = ex.receive_reply(200, tokens_body(), now=10.0)
    assert isinstance(event, TokensReceived)
    assert event.tokens.expires_at == 3610.0
    assert ex.done
    assert ex.attempts == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_exchange_retries_5xx_and_429_on_the_sdk_schedule(status: int) -> None:
    """Each retryable reply schedules the next delay of the table, then tokens arrive."""
    ex = exchange()
    delays = []
    for _ in range(len(LWA_TABLE)):
        ex.next_request()
        event = ex.receive_reply(status, error_body("servererror"), now=0.0)
        assert isinstance(event, LWARetryScheduled)
        delays.append(event.delay)
    assert delays == list(LWA_TABLE)
    ex.next_request()
    assert isinstance(ex.receive_reply(200, tokens_body(), now=0.0), TokensReceived)


def test_exchange_retries_malformed_5xx_bodies() -> None:
    """A 5xx with a non-JSON body is still a retryable server failure."""
    ex = exchange()
    ex.next_request()
    assert isinstance(ex.receive_reply(503, b"<html>busy</html>", now=0.0), LWARetryScheduled)


def test_exchange_gives_up_after_max_attempts() -> None:
    """When the policy is exhausted the last failure is raised, and stays raised."""
    ex = exchange(max_retries=1)
    ex.next_request()
    ex.receive_reply(500, b"", now=0.0)
    ex.next_request()
    with pytest.raises(AuthError, match="kept failing") as info:
        ex.receive_reply(500, b"", now=0.0)
    assert info.value.status == 500
    with pytest.raises(AuthError, match="kept failing"):
        ex.next_request()


def test_exchange_transport_errors_retry_then_reraise() -> None:
    """Transport failures are retried; the last one is re-raised when attempts run out."""
    ex = exchange(max_retries=1)
    ex.next_request()
    first = ex.transport_failed(ConnectionLost("dropped"))
    assert first.delay == 0.0
    assert first.reason == "ConnectionLost"
    ex.next_request()
    final = ConnectionLost("dropped again")
    with pytest.raises(ConnectionLost) as info:
        ex.transport_failed(final)
    assert info.value is final


def test_invalid_grant_asks_to_reauthorize_without_retry() -> None:
    """invalid_grant raises ReauthorizationRequired at once and forever."""
    ex = exchange()
    ex.next_request()
    with pytest.raises(ReauthorizationRequired, match="re-authorize this device") as info:
        ex.receive_reply(400, error_body("invalid_grant"), now=0.0)
    assert info.value.error == "invalid_grant"
    assert info.value.status == 400
    with pytest.raises(ReauthorizationRequired):
        ex.next_request()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, "invalid_client"),
        (400, "invalid_client"),
        (400, "unauthorized_client"),
        (400, "invalid_request"),
        (400, "unsupported_grant_type"),
        (400, "InvalidValue"),
        (401, None),
    ],
)
def test_config_errors_are_fatal(status: int, error: str | None) -> None:
    """Client configuration errors raise ClientConfigError without retry."""
    ex = exchange()
    ex.next_request()
    raw = error_body(error) if error else b"unauthorized"
    with pytest.raises(ClientConfigError) as info:
        ex.receive_reply(status, raw, now=0.0)
    assert info.value.error == error
    assert info.value.status == status


@pytest.mark.parametrize(("status", "raw"), [(400, b"{oops"), (404, b""), (400, body(error=7))])
def test_other_client_errors_are_clear_auth_errors(status: int, raw: bytes) -> None:
    """Unknown 4xx replies, malformed or not, raise a plain AuthError with the status."""
    ex = exchange()
    ex.next_request()
    with pytest.raises(AuthError) as info:
        ex.receive_reply(status, raw, now=0.0)
    assert type(info.value) is AuthError
    assert info.value.status == status


def test_exchange_misuse_is_a_local_error() -> None:
    """Feeding a reply with no request outstanding is a LocalProtocolError (sticky)."""
    ex = exchange()
    with pytest.raises(LocalProtocolError):
        ex.receive_reply(200, tokens_body(), now=0.0)
    with pytest.raises(LocalProtocolError):
        ex.next_request()
    ex2 = exchange()
    ex2.next_request()
    with pytest.raises(LocalProtocolError):
        ex2.next_request()


@given(st.sampled_from(_ExchangeState), st.sampled_from(_ExchangeInput))
def test_exchange_transition_table(state: _ExchangeState, event: _ExchangeInput) -> None:
    """Every (state, input) pair follows the table or ends in the sticky ERROR state."""
    ex = exchange()
    ex._machine.state = state
    expected = _EXCHANGE_TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(LocalProtocolError):
            ex._machine.feed(event)
        assert ex._machine.state is _ExchangeState.ERROR
        with pytest.raises(LocalProtocolError):
            ex._machine.feed(_ExchangeInput.SEND)
    else:
        ex._machine.feed(event)
        assert ex._machine.state is expected[1]


# -- code-pair linking -----------------------------------------------------------------------


def pair_body(interval: object = 5, expires_in: object = 600) -> bytes:
    return body(
        user_code="K7PQ2X",
        device_code="dev-secret-1",
        verification_uri="https://amazon.com/us/code",
        expires_in=expires_in,
        interval=interval,
    )


def linked_machine(now: float = 0.0, interval: object = 5) -> CodePairLinking:
    machine = CodePairLinking("cid", "prod", "SN", retry=NO_JITTER, random=lambda: 0.5)
    machine.codepair_request()
    event = machine.receive_codepair_reply(200, pair_body(interval=interval), now=now)
    assert isinstance(event, CodePairReceived)
    return machine


def test_code_pair_flow_to_tokens() -> None:
    """Pair, pending, then tokens: the whole happy path."""
    machine = linked_machine(now=0.0)
    pair = machine.code_pair
    assert pair is not None
    assert pair.user_code == "K7PQ2X"
    assert pair.verification_uri == "https://amazon.com/us/code"
    assert pair.expires_at == 600.0
    assert "dev-secret-1" not in repr(pair)
    poll = machine.poll_request(5.0)
    form = dict(poll.form)
    assert form == {
        "grant_type": "device_code",
        "device_code": "dev-secret-1",
        "user_code": "K7PQ2X",
    }
    assert "dev-secret-1" not in repr(poll)
    event = machine.receive_poll_reply(400, error_body("authorization_pending"), now=5.0)
    assert event == PollScheduled(delay=5.0, interval=5.0, slowed_down=False)
    assert machine.state is LinkingState.WAITING
    machine.poll_request(10.0)
    done = machine.receive_poll_reply(200, tokens_body(), now=10.0)
    assert isinstance(done, TokensReceived)
    assert done.tokens.refresh_token == REFRESH
    assert machine.state is LinkingState.LINKED


def test_slow_down_doubles_the_interval_up_to_60_s() -> None:
    """Each slow_down doubles the poll interval, capped at 60 s."""
    machine = linked_machine(interval=5)
    seen = []
    now = 0.0
    for _ in range(6):
        now += machine.interval
        machine.poll_request(now)
        event = machine.receive_poll_reply(400, error_body("slow_down"), now=now)
        assert isinstance(event, PollScheduled)
        assert event.slowed_down
        seen.append(event.interval)
    assert seen == [10.0, 20.0, 40.0, MAX_POLL_INTERVAL, MAX_POLL_INTERVAL, MAX_POLL_INTERVAL]


def test_pair_expires_when_its_lifetime_elapses() -> None:
    """Polling after expires_in raises LinkingExpired; waits never overshoot the expiry."""
    machine = linked_machine(now=0.0, interval=250)
    machine.poll_request(500.0)
    event = machine.receive_poll_reply(400, error_body("authorization_pending"), now=500.0)
    assert isinstance(event, PollScheduled)
    assert event.delay == 100.0  # clamped to the pair's end, not the full 250 s
    with pytest.raises(LinkingExpired):
        machine.poll_request(600.0)
    assert machine.state is LinkingState.EXPIRED
    with pytest.raises(LinkingExpired):
        machine.poll_request(601.0)


@pytest.mark.parametrize(
    "error", ["invalid_code_pair", "expired_token", "invalid_grant", "access_denied"]
)
def test_pair_ending_errors_raise_linking_expired(error: str) -> None:
    """Errors that end the pair raise LinkingExpired carrying the LWA code."""
    machine = linked_machine()
    machine.poll_request(5.0)
    with pytest.raises(LinkingExpired) as info:
        machine.receive_poll_reply(400, error_body(error), now=5.0)
    assert info.value.error == error
    assert machine.state is LinkingState.EXPIRED


def test_poll_retries_server_errors_at_least_at_the_interval() -> None:
    """5xx and transport failures while polling retry, never faster than the interval."""
    machine = linked_machine()
    machine.poll_request(5.0)
    event = machine.receive_poll_reply(503, b"", now=5.0)
    assert isinstance(event, LWARetryScheduled)
    assert event.delay == 5.0
    machine.poll_request(10.0)
    event2 = machine.transport_failed(ConnectionLost("x"), now=10.0)
    assert event2.delay == 5.0
    assert machine.state is LinkingState.WAITING


def test_codepair_request_retries_then_fails_on_config_error() -> None:
    """The pair request retries 5xx, and a 401 is a ClientConfigError."""
    machine = CodePairLinking("cid", "prod", "SN", retry=NO_JITTER)
    machine.codepair_request()
    assert isinstance(machine.receive_codepair_reply(500, b"", now=0.0), LWARetryScheduled)
    assert machine.state is LinkingState.PAIR_BACKOFF
    machine.codepair_request()
    with pytest.raises(ClientConfigError):
        machine.receive_codepair_reply(401, error_body("invalid_client"), now=0.0)
    assert machine.state is LinkingState.ERROR


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        body(user_code="A", device_code="d", verification_uri="https://x", expires_in=0),
        body(user_code="A\x1b[2J", device_code="d", verification_uri="https://x", expires_in=60),
        body(user_code="A", device_code="d", verification_uri="javascript:x", expires_in=60),
        body(device_code="d", verification_uri="https://x", expires_in=60),
    ],
)
def test_malformed_code_pairs_are_rejected(raw: bytes) -> None:
    """Malformed code-pair replies (including terminal escapes) raise AuthError."""
    machine = CodePairLinking("cid", "prod", "SN")
    machine.codepair_request()
    with pytest.raises(AuthError):
        machine.receive_codepair_reply(200, raw, now=0.0)


def test_missing_interval_defaults_to_five_seconds() -> None:
    """Without an interval the SDK's 5 s start is used."""
    raw = body(user_code="A", device_code="d", verification_uri="https://x", expires_in=60)
    machine = CodePairLinking("cid", "prod", "SN")
    machine.codepair_request()
    machine.receive_codepair_reply(200, raw, now=0.0)
    assert machine.interval == 5.0


@given(st.sampled_from(LinkingState), st.sampled_from(_LinkInput))
def test_linking_transition_table(state: LinkingState, event: _LinkInput) -> None:
    """Every (state, input) pair follows the table or ends in the sticky ERROR state."""
    machine = CodePairLinking("cid", "prod", "SN")
    machine._machine.state = state
    expected = _LINK_TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(LocalProtocolError):
            machine._machine.feed(event)
        assert machine.state is LinkingState.ERROR
        with pytest.raises(LocalProtocolError):
            machine.codepair_request()
    else:
        machine._machine.feed(event)
        assert machine.state is expected[1]
