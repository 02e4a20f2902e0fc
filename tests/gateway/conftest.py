"""Fixtures for the gateway tests: fake time, a skill's LWA client and token providers wired to
the simulator (TLS), and clients of both APIs pointed at it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from avsclient._retry import NO_JITTER
from avsclient.auth import (
    ClientCredentialsTokenProvider,
    LWAConfig,
    LWAHttpClient,
    RefreshingTokenProvider,
    StoredTokens,
    TokenSet,
    TokenStore,
)
from avsclient.auth.lwa import LWA_RETRY
from avsclient.gateway import (
    EventGatewayClient,
    GatewayConfig,
    SkillMessagingClient,
    SkillMessagingConfig,
)
from avsclient.simulator import Simulator

SKILL_CLIENT_ID = "amzn1.application-oa2-client.0123456789abcdef"
SKILL_CLIENT_SECRET = "skill-secret-5f1c0d9e7a"
USER_ID = "amzn1.ask.account.AEXAMPLEUSER"


class FakeTime:
    """A monotonic clock that moves only when `sleep` is awaited; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Env:
    """Everything a gateway test needs, pointed at one simulator."""

    sim: Simulator
    time: FakeTime
    lwa_http: LWAHttpClient
    lwa: LWAConfig
    store: TokenStore
    user_tokens: RefreshingTokenProvider
    skill_tokens: ClientCredentialsTokenProvider
    gateway: EventGatewayClient
    messaging: SkillMessagingClient

    def gateway_config(self, **kw: object) -> GatewayConfig:
        kw.setdefault("timeout", 5)
        return GatewayConfig(
            base_url=self.sim.url,
            ca_file=self.sim.ca_file,
            **kw,  # type: ignore[arg-type]
        )

    def save_stale_token(self) -> str:
        """Store a token set whose access token the simulator does not know (it was revoked
        or expired server-side), with a refresh token that works; returns the stale token."""
        stale = "Atza|stale-" + "s" * 380
        self.store.save(
            StoredTokens(
                client_id=SKILL_CLIENT_ID,
                tokens=TokenSet(
                    access_token=stale,
                    refresh_token=self.sim.lwa.issue_refresh_token(SKILL_CLIENT_ID),
                    expires_at=time.time() + 3000,
                ),
            )
        )
        return stale

    def token_grants(self, grant: str) -> list[dict[str, str]]:
        return [form for _, form in self.sim.lwa.requests if form.get("grant_type") == grant]


@pytest.fixture
async def env(avs_simulator: Simulator, tmp_path: Path) -> AsyncIterator[Env]:
    """A TLS simulator with a registered skill client, a user with stored tokens, and both
    clients using a fake clock (retries never sleep for real)."""
    sim = avs_simulator
    sim.lwa.register_client(SKILL_CLIENT_ID, SKILL_CLIENT_SECRET)
    fake = FakeTime()
    lwa = LWAConfig(
        client_id=SKILL_CLIENT_ID,
        client_secret=SKILL_CLIENT_SECRET,
        url=sim.url,
        retry=replace(LWA_RETRY, jitter=NO_JITTER),
    )
    store = TokenStore(tmp_path / "users" / "user-1.json")
    store.save(
        StoredTokens(
            client_id=SKILL_CLIENT_ID,
            tokens=TokenSet(
                access_token=sim.lwa.issue_access_token(SKILL_CLIENT_ID, now=sim.lwa.clock()),
                refresh_token=sim.lwa.issue_refresh_token(SKILL_CLIENT_ID),
                expires_at=time.time() + 3000,
            ),
        )
    )
    ca = str(sim.ca_file)
    async with LWAHttpClient(sim.url, ca_file=ca, timeout=5) as lwa_http:
        user_tokens = RefreshingTokenProvider(lwa, store=store, http=lwa_http)
        skill_tokens = ClientCredentialsTokenProvider(lwa, http=lwa_http)
        gateway = EventGatewayClient(
            user_tokens,
            config=GatewayConfig(base_url=sim.url, ca_file=ca, timeout=5),
            clock=fake.clock,
            sleep=fake.sleep,
            random=lambda: 0.0,
        )
        messaging = SkillMessagingClient(
            skill_tokens,
            config=SkillMessagingConfig(base_url=sim.url, ca_file=ca, timeout=5),
            clock=fake.clock,
            sleep=fake.sleep,
            random=lambda: 0.0,
        )
        try:
            yield Env(
                sim, fake, lwa_http, lwa, store, user_tokens, skill_tokens, gateway, messaging
            )
        finally:
            await gateway.aclose()
            await messaging.aclose()
            await user_tokens.aclose()
            await skill_tokens.aclose()
