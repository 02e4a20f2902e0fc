"""Login with Amazon over real HTTP/2 (TLS) against the simulator's LWA endpoints.

Every error path the SDK handles is produced by the simulator itself (faults and real state),
never mocked: invalid_grant, authorization_pending, slow_down, expiry, invalid_client, 429,
500, 503, malformed JSON, a slow server and a dropped connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest

from avsclient._retry import NO_JITTER
from avsclient.auth import (
    ClientCredentialsTokenProvider,
    CodePair,
    LWAConfig,
    LWAHttpClient,
    RefreshingTokenProvider,
    StaticTokenProvider,
    TokenProvider,
    TokenSet,
    TokenStore,
    link_device,
    refresh_request,
)
from avsclient.auth.lwa import LWA_RETRY
from avsclient.exceptions import (
    AuthError,
    ClientConfigError,
    ConnectionLost,
    LinkingExpired,
    ReauthorizationRequired,
    ResponseTimeout,
)
from avsclient.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Simulator
from tests.auth.conftest import FakeTime

FAST = replace(LWA_RETRY, jitter=NO_JITTER)


def config(sim: Simulator, **kw: object) -> LWAConfig:
    kw.setdefault("retry", FAST)
    return LWAConfig(client_id=DEFAULT_CLIENT_ID, url=sim.url, **kw)  # type: ignore[arg-type]


def token_requests(sim: Simulator, grant: str | None = None) -> list[dict[str, str]]:
    return [
        form
        for path, form in sim.lwa.requests
        if path.lower() == "/auth/o2/token" and (grant is None or form.get("grant_type") == grant)
    ]


def refreshing(
    sim: Simulator, http: LWAHttpClient, t: FakeTime, tmp_path: Path, **kw: object
) -> RefreshingTokenProvider:
    return RefreshingTokenProvider(
        config(sim),
        refresh_token=sim.lwa.issue_refresh_token(),
        store=TokenStore(tmp_path / "tokens.json"),
        http=http,
        clock=t.clock,
        sleep=t.sleep,
        **kw,  # type: ignore[arg-type]
    )


# -- refresh grant -----------------------------------------------------------------------------


async def test_refresh_gives_a_token_avs_accepts_and_stores_it(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """A refresh over HTTP/2 returns an Atza| token the simulator's AVS side accepts."""
    provider = refreshing(avs_simulator, sim_http, fake_time, tmp_path)
    assert isinstance(provider, TokenProvider)
    token = await provider.get_token()
    assert token.startswith("Atza|")
    assert avs_simulator.lwa.access_token_valid(token, avs_simulator.lwa.clock())
    stored = TokenStore(tmp_path / "tokens.json").load()
    assert stored is not None
    assert stored.tokens.access_token == token
    assert stored.client_id == DEFAULT_CLIENT_ID
    assert await provider.get_token() == token  # cached: no second request
    assert len(token_requests(avs_simulator)) == 1
    await provider.aclose()


async def test_h2c_refresh(avs_simulator_h2c: Simulator, fake_time: FakeTime) -> None:
    """Cleartext HTTP/2 (prior knowledge) works too."""
    sim = avs_simulator_h2c
    async with RefreshingTokenProvider(
        config(sim), refresh_token=sim.lwa.issue_refresh_token(), clock=fake_time.clock
    ) as provider:
        assert (await provider.get_token()).startswith("Atza|")


async def test_refresh_is_due_ten_minutes_before_expiry(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """The token is reused until 600 s before expiry, then refreshed."""
    provider = refreshing(avs_simulator, sim_http, fake_time, tmp_path)
    first = await provider.get_token()
    fake_time.now += 3600 - 601
    assert await provider.get_token() == first
    fake_time.now += 2
    second = await provider.get_token()
    assert second != first
    assert provider.refresh_count == 2
    await provider.aclose()


async def test_refresh_margin_is_configurable(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """With a 60 s margin the token lives until 60 s before expiry."""
    provider = RefreshingTokenProvider(
        config(avs_simulator, refresh_margin=60.0),
        refresh_token=avs_simulator.lwa.issue_refresh_token(),
        http=sim_http,
        clock=fake_time.clock,
    )
    first = await provider.get_token()
    fake_time.now += 3600 - 61
    assert await provider.get_token() == first
    fake_time.now += 2
    assert await provider.get_token() != first
    await provider.aclose()


async def test_concurrent_callers_share_one_refresh(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """Twenty concurrent get_token calls cause exactly one refresh request."""
    avs_simulator.lwa.delay_next(0.2)
    provider = refreshing(avs_simulator, sim_http, fake_time, tmp_path)
    tokens = await asyncio.gather(*(provider.get_token() for _ in range(20)))
    assert len(set(tokens)) == 1
    assert len(token_requests(avs_simulator)) == 1
    await provider.aclose()


async def test_invalidate_forces_one_refresh_for_that_token_only(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """A 403 report on the current token refreshes once; a report on an old token is ignored."""
    provider = refreshing(avs_simulator, sim_http, fake_time, tmp_path)
    old = await provider.get_token()
    await asyncio.gather(*(provider.invalidate(old) for _ in range(5)))
    new_tokens = await asyncio.gather(*(provider.get_token() for _ in range(5)))
    assert len(set(new_tokens)) == 1
    assert new_tokens[0] != old
    await provider.invalidate(old)  # stale report: nothing happens
    assert await provider.get_token() == new_tokens[0]
    assert len(token_requests(avs_simulator)) == 2
    await provider.aclose()


async def test_rotated_refresh_token_is_saved_at_once(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """When LWA rotates the refresh token, the new one is on disk before the token is used."""
    avs_simulator.lwa.rotate_refresh_tokens = True
    original = avs_simulator.lwa.issue_refresh_token()
    store = TokenStore(tmp_path / "tokens.json")
    provider = RefreshingTokenProvider(
        config(avs_simulator),
        refresh_token=original,
        store=store,
        http=sim_http,
        clock=fake_time.clock,
    )
    token = await provider.get_token()
    stored = store.load()
    assert stored is not None
    assert stored.tokens.access_token == token
    assert stored.tokens.refresh_token not in (None, original)
    await provider.aclose()
    # A fresh process starting from the file alone refreshes with the rotated token.
    fake_time.now += 3600
    async with RefreshingTokenProvider(
        config(avs_simulator), store=store, http=sim_http, clock=fake_time.clock
    ) as restarted:
        assert (await restarted.get_token()).startswith("Atza|")
    sent = [f["refresh_token"] for f in token_requests(avs_simulator, "refresh_token")]
    assert sent == [original, stored.tokens.refresh_token]


async def test_provider_reuses_unexpired_token_from_the_store(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """A process restart within the token's life makes no LWA request."""
    first = refreshing(avs_simulator, sim_http, fake_time, tmp_path)
    token = await first.get_token()
    await first.aclose()
    async with RefreshingTokenProvider(
        config(avs_simulator),
        store=TokenStore(tmp_path / "tokens.json"),
        http=sim_http,
        clock=fake_time.clock,
    ) as second:
        assert await second.get_token() == token
    assert len(token_requests(avs_simulator)) == 1


async def test_empty_store_asks_to_link(
    avs_simulator: Simulator, sim_http: LWAHttpClient, tmp_path: Path
) -> None:
    """No token file means the device must be linked: ReauthorizationRequired, no request."""
    async with RefreshingTokenProvider(
        config(avs_simulator), store=TokenStore(tmp_path / "none.json"), http=sim_http
    ) as provider:
        with pytest.raises(ReauthorizationRequired, match="avsclient login"):
            await provider.get_token()
    assert avs_simulator.lwa.requests == []


async def test_invalid_grant_requires_reauthorization_without_retrying(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """A revoked refresh token raises ReauthorizationRequired after one request, stickily."""
    provider = refreshing(avs_simulator, sim_http, fake_time, tmp_path)
    refresh = token_requests(avs_simulator) or None
    assert refresh is None
    form_token = provider._refresh_token
    assert form_token is not None
    avs_simulator.lwa.revoke(form_token)
    with pytest.raises(ReauthorizationRequired, match="re-authorize this device") as info:
        await provider.get_token()
    assert info.value.error == "invalid_grant"
    assert info.value.status == 400
    with pytest.raises(ReauthorizationRequired):
        await provider.get_token()
    assert len(token_requests(avs_simulator)) == 1
    assert fake_time.sleeps == []
    await provider.aclose()


async def test_wrong_client_secret_is_a_config_error(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """401 invalid_client raises ClientConfigError without retries."""
    provider = RefreshingTokenProvider(
        config(avs_simulator, client_secret="wrong-secret"),
        refresh_token=avs_simulator.lwa.issue_refresh_token(),
        http=sim_http,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    with pytest.raises(ClientConfigError) as info:
        await provider.get_token()
    assert info.value.status == 401
    assert info.value.error == "invalid_client"
    assert fake_time.sleeps == []
    await provider.aclose()


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_statuses_are_retried_on_the_schedule(
    avs_simulator: Simulator,
    sim_http: LWAHttpClient,
    fake_time: FakeTime,
    tmp_path: Path,
    status: int,
) -> None:
    """429, 500 and 503 are retried after 0, 1, 2, 4 s (jitter off), then succeed."""
    avs_simulator.lwa.fail_next(4, status=status)
    provider = refreshing(avs_simulator, sim_http, fake_time, tmp_path)
    assert (await provider.get_token()).startswith("Atza|")
    assert fake_time.sleeps == [0.0, 1.0, 2.0, 4.0]
    assert len(token_requests(avs_simulator)) == 5
    await provider.aclose()


async def test_jitter_is_injectable(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """The random source scales each delay within +/-50 %."""
    avs_simulator.lwa.fail_next(3, status=503)
    provider = RefreshingTokenProvider(
        config(avs_simulator, retry=LWA_RETRY),
        refresh_token=avs_simulator.lwa.issue_refresh_token(),
        http=sim_http,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        random=lambda: 0.0,
    )
    await provider.get_token()
    assert fake_time.sleeps == [0.0, 0.5, 1.0]
    await provider.aclose()


async def test_persistent_server_errors_give_up_after_max_attempts(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """When 500s outlast the retry policy an AuthError carrying the status is raised."""
    avs_simulator.lwa.fail_next(10, status=500)
    provider = RefreshingTokenProvider(
        config(avs_simulator, retry=replace(FAST, max_retries=2)),
        refresh_token=avs_simulator.lwa.issue_refresh_token(),
        http=sim_http,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    with pytest.raises(AuthError, match="kept failing") as info:
        await provider.get_token()
    assert info.value.status == 500
    assert len(token_requests(avs_simulator)) == 3
    await provider.aclose()


async def test_failed_refresh_keeps_serving_an_unexpired_token(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """If LWA is down when a refresh is due, the still-valid token is handed out."""
    provider = RefreshingTokenProvider(
        config(avs_simulator, retry=replace(FAST, max_retries=1)),
        refresh_token=avs_simulator.lwa.issue_refresh_token(),
        http=sim_http,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    token = await provider.get_token()
    fake_time.now += 3300  # inside the 10-minute margin, not expired
    avs_simulator.lwa.fail_next(2, status=503)
    assert await provider.get_token() == token
    # The refresh went on in the background and ran out of attempts.
    async with asyncio.timeout(5):
        while len(token_requests(avs_simulator)) < 3 or provider._task is not None:
            await asyncio.sleep(0.01)
    assert provider.refresh_count == 1
    fake_time.now += 400  # now expired, and LWA is up again
    assert await provider.get_token() != token
    await provider.aclose()


async def test_due_refresh_backs_off_in_the_background_while_the_token_is_valid(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """A failed first attempt does not hold callers for the whole back-off schedule."""
    gate = asyncio.Event()

    async def long_sleep(seconds: float) -> None:  # a back-off that lasts until released
        fake_time.sleeps.append(seconds)
        await gate.wait()

    provider = RefreshingTokenProvider(
        config(avs_simulator),
        refresh_token=avs_simulator.lwa.issue_refresh_token(),
        store=TokenStore(tmp_path / "tokens.json"),
        http=sim_http,
        clock=fake_time.clock,
        sleep=long_sleep,
    )
    token = await provider.get_token()
    fake_time.now += 3300  # inside the 10-minute margin, not expired
    avs_simulator.lwa.fail_next(1, status=500)
    async with asyncio.timeout(5):  # would hang while the refresh backs off
        tokens = await asyncio.gather(*(provider.get_token() for _ in range(5)))
    assert tokens == [token] * 5
    assert fake_time.sleeps == [0.0]
    assert len(token_requests(avs_simulator)) == 2  # one refresh for all five callers
    gate.set()  # the back-off ends; the retry succeeds
    async with asyncio.timeout(5):
        while provider.refresh_count < 2:
            await asyncio.sleep(0.01)
    fresh = await provider.get_token()
    assert fresh != token
    assert len(token_requests(avs_simulator)) == 3
    stored = TokenStore(tmp_path / "tokens.json").load()
    assert stored is not None
    assert stored.tokens.access_token == fresh
    await provider.aclose()


@pytest.mark.parametrize(
    ("status", "raw", "match"),
    [
        (200, b'{"access_token": "Atza|x", "token_type": "bea', "not a JSON object"),
        (200, b'{"token_type": "bearer", "expires_in": 3600}', "no access_token"),
        (200, b'{"access_token": "Atza|x", "token_type": "bearer", "expires_in": 0}', "expires_in"),
        (400, b"<html>bad</html>", "no JSON error body"),
    ],
)
async def test_malformed_replies_are_clear_auth_errors(
    avs_simulator: Simulator,
    sim_http: LWAHttpClient,
    fake_time: FakeTime,
    tmp_path: Path,
    status: int,
    raw: bytes,
    match: str,
) -> None:
    """Malformed JSON or missing fields raise AuthError naming the problem."""
    avs_simulator.lwa.fail_next(status=status, body=raw)
    provider = refreshing(avs_simulator, sim_http, fake_time, tmp_path)
    with pytest.raises(AuthError, match=match):
        await provider.get_token()
    # Not sticky: the next call tries again and succeeds.
    assert (await provider.get_token()).startswith("Atza|")
    await provider.aclose()


async def test_slow_server_times_out_and_is_retried(
    avs_simulator: Simulator, fake_time: FakeTime, tmp_path: Path
) -> None:
    """A reply slower than the timeout is a ResponseTimeout, retried on the schedule."""
    assert avs_simulator.ca_file is not None
    avs_simulator.lwa.delay_next(2.0)
    async with LWAHttpClient(
        avs_simulator.url, ca_file=avs_simulator.ca_file, timeout=0.3
    ) as http:
        with pytest.raises(ResponseTimeout):
            await http.send(refresh_request("Atzr|x", DEFAULT_CLIENT_ID))
        avs_simulator.lwa.delay_next(2.0)
        provider = refreshing(avs_simulator, http, fake_time, tmp_path)
        assert (await provider.get_token()).startswith("Atza|")
        assert fake_time.sleeps == [0.0]
        await provider.aclose()


async def test_dropped_connection_is_retried(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """A connection closed without a reply is ConnectionLost, retried on a new connection."""
    avs_simulator.lwa.drop_next(2)
    provider = refreshing(avs_simulator, sim_http, fake_time, tmp_path)
    assert (await provider.get_token()).startswith("Atza|")
    assert fake_time.sleeps == [0.0, 1.0]
    await provider.aclose()
    avs_simulator.lwa.drop_next(1)
    with pytest.raises(ConnectionLost):
        await sim_http.send(refresh_request("Atzr|x", DEFAULT_CLIENT_ID))


async def test_unreachable_lwa_raises_connect_error(fake_time: FakeTime) -> None:
    """Nothing listening: ConnectError after the retry policy runs out."""
    from avsclient.exceptions import ConnectError

    async with RefreshingTokenProvider(
        LWAConfig(client_id="c", url="http://127.0.0.1:9", retry=replace(FAST, max_retries=1)),
        refresh_token="Atzr|x",
        sleep=fake_time.sleep,
    ) as provider:
        with pytest.raises(ConnectError):
            await provider.get_token()
    assert fake_time.sleeps == [0.0]


# -- client_credentials ------------------------------------------------------------------------


async def test_client_credentials_token_is_cached_until_near_expiry(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """The Skill Messaging token is fetched once, shared, and renewed near expiry."""
    avs_simulator.lwa.delay_next(0.1)
    provider = ClientCredentialsTokenProvider(
        config(avs_simulator, client_secret=DEFAULT_CLIENT_SECRET),
        http=sim_http,
        clock=fake_time.clock,
    )
    tokens = await asyncio.gather(*(provider.get_token() for _ in range(10)))
    assert len(set(tokens)) == 1
    forms = token_requests(avs_simulator, "client_credentials")
    assert len(forms) == 1
    assert forms[0]["scope"] == "alexa:skill_messaging"
    fake_time.now += 3600 - 599
    assert await provider.get_token() != tokens[0]
    await provider.invalidate("not-the-current-token")
    assert len(token_requests(avs_simulator, "client_credentials")) == 2
    await provider.aclose()


async def test_client_credentials_bad_secret(
    avs_simulator: Simulator, sim_http: LWAHttpClient
) -> None:
    """A wrong secret is a ClientConfigError (401 invalid_client)."""
    async with ClientCredentialsTokenProvider(
        config(avs_simulator, client_secret="nope"), http=sim_http
    ) as provider:
        with pytest.raises(ClientConfigError):
            await provider.get_token()
    with pytest.raises(ValueError, match="client_secret"):
        ClientCredentialsTokenProvider(config(avs_simulator), http=sim_http)


async def test_static_provider(avs_simulator: Simulator) -> None:
    """The static provider returns its token until told it was rejected."""
    token = avs_simulator.add_token()
    provider = StaticTokenProvider(token)
    assert isinstance(provider, TokenProvider)
    assert await provider.get_token() == token
    assert token not in repr(provider)
    await provider.invalidate("other")
    assert await provider.get_token() == token
    await provider.invalidate(token)
    with pytest.raises(AuthError, match="rejected"):
        await provider.get_token()


# -- code-based linking ------------------------------------------------------------------------


class Approver:
    """Plays the user: shows nothing, approves the code after `after` polls."""

    def __init__(self, sim: Simulator, after: int | None = 0, deny: bool = False) -> None:
        self.sim = sim
        self.after = after
        self.deny = deny
        self.pairs: list[CodePair] = []

    def __call__(self, pair: CodePair) -> None:
        self.pairs.append(pair)

    async def sleep_then_maybe_approve(self, t: FakeTime, seconds: float) -> None:
        await t.sleep(seconds)
        polls = len(token_requests(self.sim, "device_code"))
        if self.pairs and self.after is not None and polls >= self.after:
            if self.deny:
                self.sim.lwa.deny(self.pairs[-1].user_code)
            else:
                self.sim.lwa.approve(self.pairs[-1].user_code)


def shared_clock(sim: Simulator, t: FakeTime) -> None:
    sim.lwa.clock = t.clock


async def link(
    sim: Simulator, http: LWAHttpClient, t: FakeTime, approver: Approver, **kw: object
) -> object:
    async def sleep(seconds: float) -> None:
        await approver.sleep_then_maybe_approve(t, seconds)

    return await link_device(
        http,
        client_id=DEFAULT_CLIENT_ID,
        product_id="test_product",
        serial="SN-0001",
        on_code=approver,
        retry=FAST,
        clock=t.clock,
        sleep=sleep,
        **kw,  # type: ignore[arg-type]
    )


async def test_code_pair_linking_waits_for_the_user(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """Pending polls wait at the interval until the user approves; tokens then work."""
    sim = avs_simulator
    shared_clock(sim, fake_time)
    approver = Approver(sim, after=3)
    tokens = await link(sim, sim_http, fake_time, approver)
    assert len(approver.pairs) == 1
    pair = approver.pairs[0]
    assert pair.verification_uri == sim.lwa.verification_uri
    assert len(token_requests(sim, "device_code")) == 4  # 3 pending, then tokens
    assert fake_time.sleeps == [5.0] * 4
    issued = sim.lwa.codepairs[0]
    assert (issued.product_id, issued.serial) == ("test_product", "SN-0001")
    assert isinstance(tokens, TokenSet)
    assert sim.lwa.access_token_valid(tokens.access_token, fake_time.now)
    assert tokens.refresh_token is not None


async def test_slow_down_doubles_the_poll_interval(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """A slow_down reply doubles the poll interval."""
    sim = avs_simulator
    shared_clock(sim, fake_time)
    sim.lwa.codepair_interval = 8
    approver = Approver(sim, after=2)
    injected = [False]

    async def sleep(seconds: float) -> None:
        await approver.sleep_then_maybe_approve(fake_time, seconds)
        if approver.pairs and not injected[0]:
            sim.lwa.fail_next(status=400, error="slow_down")  # the first poll gets slow_down
            injected[0] = True

    await link_device(
        sim_http,
        client_id=DEFAULT_CLIENT_ID,
        product_id="p",
        serial="s",
        on_code=approver,
        clock=fake_time.clock,
        sleep=sleep,
    )
    # first poll after 8 s: slow_down -> 16 s; then pending, then approved, 16 s apart.
    assert fake_time.sleeps == [8.0, 16.0, 16.0]


async def test_real_slow_down_from_polling_too_fast(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """The simulator's own rate check answers slow_down when the interval is not kept."""
    sim = avs_simulator
    shared_clock(sim, fake_time)
    sim.lwa.codepair_interval = 10
    approver = Approver(sim, after=None)
    sim_time_skew = [0.0]

    async def impatient_sleep(seconds: float) -> None:
        # The device's timer runs fast: only 60 % of each wait passes on the server's clock.
        fake_time.sleeps.append(seconds)
        fake_time.now += seconds * 0.6
        sim_time_skew[0] += seconds * 0.4
        polls = len(token_requests(sim, "device_code"))
        if polls >= 3 and approver.pairs:
            sim.lwa.approve(approver.pairs[-1].user_code)
        await asyncio.sleep(0)

    await link_device(
        sim_http,
        client_id=DEFAULT_CLIENT_ID,
        product_id="p",
        serial="s",
        on_code=approver,
        retry=FAST,
        clock=fake_time.clock,
        sleep=impatient_sleep,
    )
    # 10 s (first poll), 10 s -> too fast (6 s) -> slow_down -> 20 s -> 12 s apart: accepted.
    assert fake_time.sleeps[:3] == [10.0, 10.0, 20.0]


async def test_pair_expiry_raises_linking_expired(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """Nobody approves: once expires_in has elapsed, LinkingExpired."""
    sim = avs_simulator
    shared_clock(sim, fake_time)
    sim.lwa.codepair_lifetime = 30
    with pytest.raises(LinkingExpired):
        await link(sim, sim_http, fake_time, Approver(sim, after=None))
    assert sum(fake_time.sleeps) == pytest.approx(30.0)


@pytest.mark.parametrize("error", ["expired_token", "invalid_code_pair"])
async def test_server_side_expiry_raises_linking_expired(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, error: str
) -> None:
    """expired_token / invalid_code_pair from LWA end linking with LinkingExpired."""
    sim = avs_simulator
    shared_clock(sim, fake_time)
    approver = Approver(sim, after=None)

    async def sleep(seconds: float) -> None:
        await fake_time.sleep(seconds)
        if approver.pairs:
            sim.lwa.fail_next(status=400, error=error)

    with pytest.raises(LinkingExpired) as info:
        await link_device(
            sim_http,
            client_id=DEFAULT_CLIENT_ID,
            product_id="p",
            serial="s",
            on_code=approver,
            clock=fake_time.clock,
            sleep=sleep,
        )
    assert info.value.error == error


async def test_real_expired_token_from_the_server(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """When the server's clock says the pair is over, its expired_token ends linking."""
    sim = avs_simulator
    server_now = [fake_time.now]
    sim.lwa.clock = lambda: server_now[0]
    approver = Approver(sim, after=None)

    async def sleep(seconds: float) -> None:
        await fake_time.sleep(seconds)
        server_now[0] += 1000  # the server's clock runs far ahead

    with pytest.raises(LinkingExpired) as info:
        await link_device(
            sim_http,
            client_id=DEFAULT_CLIENT_ID,
            product_id="p",
            serial="s",
            on_code=approver,
            clock=fake_time.clock,
            sleep=sleep,
        )
    assert info.value.error == "expired_token"


async def test_restart_gets_a_new_pair_after_expiry(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """With restart, an expired pair is replaced by a new one, shown again, then approved."""
    sim = avs_simulator
    shared_clock(sim, fake_time)
    sim.lwa.codepair_lifetime = 20
    approver = Approver(sim, after=None)

    async def sleep(seconds: float) -> None:
        await fake_time.sleep(seconds)
        if len(approver.pairs) == 2:
            sim.lwa.approve(approver.pairs[1].user_code)

    await link_device(
        sim_http,
        client_id=DEFAULT_CLIENT_ID,
        product_id="p",
        serial="s",
        on_code=approver,
        restart=True,
        clock=fake_time.clock,
        sleep=sleep,
    )
    assert len(approver.pairs) == 2
    assert approver.pairs[0].user_code != approver.pairs[1].user_code
    assert len(sim.lwa.codepairs) == 2


async def test_denied_pair_raises_linking_expired(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """A user who refuses ends linking (access_denied) unless restart is on."""
    sim = avs_simulator
    shared_clock(sim, fake_time)
    with pytest.raises(LinkingExpired) as info:
        await link(sim, sim_http, fake_time, Approver(sim, after=1, deny=True))
    assert info.value.error == "access_denied"


async def test_codepair_with_unknown_client_is_a_config_error(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """An unknown client id gets 401 invalid_client: ClientConfigError."""
    with pytest.raises(ClientConfigError):
        await link_device(
            sim_http,
            client_id="nobody",
            product_id="p",
            serial="s",
            on_code=print,
            clock=fake_time.clock,
            sleep=fake_time.sleep,
        )


async def test_linking_survives_server_errors_and_drops(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime
) -> None:
    """503 on the pair request, and a dropped poll, are retried; linking still succeeds."""
    sim = avs_simulator
    shared_clock(sim, fake_time)
    sim.lwa.fail_next(status=503)
    approver = Approver(sim, after=2)
    dropped = [False]

    async def sleep(seconds: float) -> None:
        await approver.sleep_then_maybe_approve(fake_time, seconds)
        if approver.pairs and not dropped[0]:
            sim.lwa.drop_next()
            dropped[0] = True

    tokens = await link_device(
        sim_http,
        client_id=DEFAULT_CLIENT_ID,
        product_id="p",
        serial="s",
        on_code=approver,
        retry=FAST,
        clock=fake_time.clock,
        sleep=sleep,
    )
    assert len(approver.pairs) == 1
    assert tokens.refresh_token is not None
    # 0 s retry of the pair request; polls 5 s apart, the dropped one retried at the interval.
    assert fake_time.sleeps[0] == 0.0
    assert set(fake_time.sleeps[1:]) == {5.0}


# -- secrets never reach the logs ----------------------------------------------------------------


async def test_no_secret_reaches_any_log(
    avs_simulator: Simulator,
    sim_http: LWAHttpClient,
    fake_time: FakeTime,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full link, refresh, rotation and failure sequence logs no token, code or secret."""
    sim = avs_simulator
    shared_clock(sim, fake_time)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "hpack", "h2", "avsclient"):
        caplog.set_level(logging.DEBUG, logger=name)
    sim.lwa.rotate_refresh_tokens = True
    approver = Approver(sim, after=1)
    tokens = await link(sim, sim_http, fake_time, approver)
    assert isinstance(tokens, TokenSet)
    assert tokens.refresh_token is not None
    store = TokenStore(tmp_path / "tokens.json")
    provider = RefreshingTokenProvider(
        config(sim, client_secret=DEFAULT_CLIENT_SECRET),
        refresh_token=tokens.refresh_token,
        store=store,
        http=sim_http,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    seen_access = [await provider.get_token()]
    sim.lwa.fail_next(status=500)
    sim.lwa.drop_next()
    await provider.invalidate(seen_access[0])
    seen_access.append(await provider.get_token())
    cc = ClientCredentialsTokenProvider(
        config(sim, client_secret=DEFAULT_CLIENT_SECRET), http=sim_http, clock=fake_time.clock
    )
    seen_access.append(await cc.get_token())
    sim.lwa.revoke(provider._refresh_token or "")
    await provider.invalidate(seen_access[1])
    with pytest.raises(ReauthorizationRequired) as failure:
        await provider.get_token()
    logging.getLogger("avsclient.auth").debug("state: %r %r %r", provider, tokens, failure.value)
    await provider.aclose()
    await cc.aclose()

    secrets = {DEFAULT_CLIENT_SECRET, tokens.access_token, tokens.refresh_token, *seen_access}
    for _, form in sim.lwa.requests:
        for key in ("refresh_token", "device_code", "client_secret"):
            if form.get(key):
                secrets.add(form[key])
    stored = store.load()
    assert stored is not None
    secrets.update(t for t in (stored.tokens.access_token, stored.tokens.refresh_token) if t)
    assert len(secrets) >= 8
    text = "\n".join(caplog.handler.format(r) for r in caplog.records) + "\n" + str(failure.value)
    assert "HTTP Request: POST" in text  # httpx logged, so the check is not vacuous
    assert "receive_response_headers" in text  # httpcore DEBUG trace was captured
    for secret in secrets:
        assert secret not in text
        assert secret[5:40] not in text  # no fragment either


async def test_aclose_cancels_a_refresh_in_flight(
    avs_simulator: Simulator, sim_http: LWAHttpClient
) -> None:
    """Closing the provider cancels a slow refresh; later calls say it is closed."""
    avs_simulator.lwa.delay_next(5.0)
    provider = RefreshingTokenProvider(
        config(avs_simulator),
        refresh_token=avs_simulator.lwa.issue_refresh_token(),
        http=sim_http,
    )
    waiter = asyncio.create_task(provider.get_token())
    while not avs_simulator.lwa.requests:
        await asyncio.sleep(0.01)
    await provider.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    with pytest.raises(RuntimeError, match="closed"):
        await provider.get_token()


async def test_cancelling_aclose_is_not_swallowed(
    avs_simulator: Simulator, sim_http: LWAHttpClient
) -> None:
    """aclose() waits for the refresh it cancelled, but its own cancellation still wins."""

    backing_off = asyncio.Event()
    cleaned_up = asyncio.Event()  # the clean-up lasts until the test lets it end

    async def slow_to_cancel_sleep(seconds: float) -> None:
        backing_off.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await cleaned_up.wait()  # clean-up that takes a while
            raise

    avs_simulator.lwa.fail_next(status=500)
    provider = RefreshingTokenProvider(
        config(avs_simulator),
        refresh_token=avs_simulator.lwa.issue_refresh_token(),
        http=sim_http,
        sleep=slow_to_cancel_sleep,
    )
    waiter = asyncio.create_task(provider.get_token())
    async with asyncio.timeout(20):
        await backing_off.wait()  # the first request failed: the refresh is backing off
    closer = asyncio.create_task(provider.aclose())
    await asyncio.sleep(0.05)
    assert not closer.done()  # it waits for the clean-up of the refresh it cancelled
    closer.cancel()
    cleaned_up.set()
    with pytest.raises(asyncio.CancelledError):
        await closer
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_refresh_keeps_the_device_identity_login_recorded(
    avs_simulator: Simulator, sim_http: LWAHttpClient, fake_time: FakeTime, tmp_path: Path
) -> None:
    """The product id and serial stay in the token file across refreshes, whether the
    provider started from the file or from a refresh token."""
    path = tmp_path / "tokens.json"
    avs_simulator.write_token_file(path, product_id="speaker", serial="SN-5")
    first = TokenStore(path).load()
    assert first is not None
    before = first.tokens.access_token
    for start in ({}, {"refresh_token": avs_simulator.lwa.issue_refresh_token()}):
        fake_time.now = max(fake_time.now, time.time()) + 7200  # the stored token expired
        async with RefreshingTokenProvider(
            config(avs_simulator), store=TokenStore(path), http=sim_http,
            clock=fake_time.clock, sleep=fake_time.sleep, **start,  # type: ignore[arg-type]
        ) as provider:
            token = await provider.get_token()
        stored = TokenStore(path).load()
        assert stored is not None
        assert stored.tokens.access_token == token != before
        assert (stored.product_id, stored.device_serial_number) == ("speaker", "SN-5")
        before = token
