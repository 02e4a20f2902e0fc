"""Token providers: the `TokenProvider` interface the connection manager consumes, and three
implementations (a static token, the LWA refresh grant, the client_credentials grant).

A provider hands out an access token that is not about to expire, refreshing it at most once
at a time (single-flight: concurrent callers await the same refresh). When AVS rejects a token
(HTTP 403 on any stream, avs-protocol.md 2.4) the caller reports that exact token with
`invalidate(token)`; the next `get_token()` then refreshes, once, however many streams saw the
403. A report about a token that was already replaced changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random as _random
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from avsclient._resource import AsyncResource
from avsclient.auth.http import Clock, LWAHttpClient, Sleep, run_exchange
from avsclient.auth.lwa import (
    LWAConfig,
    LWARetryScheduled,
    TokenExchange,
    TokenSet,
    client_credentials_request,
    refresh_request,
)
from avsclient.auth.store import StoredTokens, TokenStore
from avsclient.exceptions import (
    AuthError,
    ClientConfigError,
    ReauthorizationRequired,
    TokenStoreError,
    TransportError,
)

__all__ = [
    "ClientCredentialsTokenProvider",
    "RefreshingTokenProvider",
    "StaticTokenProvider",
    "TokenProvider",
]

logger = logging.getLogger("avsclient.auth")


@runtime_checkable
class TokenProvider(Protocol):
    """Where the connection manager gets bearer tokens."""

    async def get_token(self) -> str:
        """Return an access token that is valid now (refreshing first if needed).

        Raises:
            ReauthorizationRequired: the device must be linked again.
            ClientConfigError: the LWA client configuration is wrong.
            AuthError: LWA failed in another way (malformed replies, retries exhausted).
            TransportError: LWA was unreachable until the retry policy ran out.
            TokenStoreError: the token file could not be read or written.
        """
        ...

    async def invalidate(self, token: str) -> None:
        """Report that AVS rejected exactly this token (HTTP 403); the next `get_token()`
        returns a different one. A token that was already replaced is ignored."""
        ...


class StaticTokenProvider:
    """Always hands out the same token (tests, the simulator, short scripts).

    Once that token is reported as rejected, `get_token()` raises `AuthError`: a static
    token cannot be refreshed, and retrying it would only loop.

    Args:
        token: the bearer token.
    """

    __slots__ = ("_rejected", "_token")

    def __init__(self, token: str) -> None:
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            raise ValueError("token must be non-empty printable ASCII without spaces")
        self._token = token
        self._rejected = False

    def __repr__(self) -> str:
        return f"StaticTokenProvider(<{len(self._token)} chars hidden>, rejected={self._rejected})"

    async def get_token(self) -> str:
        """Return the token.

        Raises:
            AuthError: the token was reported as rejected.
        """
        if self._rejected:
            raise AuthError("the static access token was rejected; supply a new one")
        return self._token

    async def invalidate(self, token: str) -> None:
        """Mark the token as rejected if it is ours."""
        if token == self._token:
            self._rejected = True


class _RefreshingProvider(AsyncResource):
    """Shared machinery: cache, single-flight refresh, sticky fatal errors, closing."""

    def __init__(
        self,
        config: LWAConfig,
        *,
        http: LWAHttpClient | None,
        clock: Clock,
        sleep: Sleep,
        random: Callable[[], float],
    ) -> None:
        self._config = config
        self._owns_http = http is None
        self._http = http or LWAHttpClient(config.url, timeout=config.timeout)
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._access: TokenSet | None = None
        self._task: asyncio.Task[TokenSet] | None = None
        # Set once the refresh in flight has failed an attempt and is backing off.
        self._retrying = asyncio.Event()
        self._error: AuthError | None = None  # sticky: re-linking or a config fix is needed
        self._closed = False
        self._refreshes = 0
        #: Why the latest LWA attempt failed while a refresh backs off (None once it worked):
        #: the connection manager names it when connecting times out.
        self.last_failure: str | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("failed" if self._error else "open")
        return f"{type(self).__name__}(client_id={self._config.client_id!r}, {state})"

    @property
    def refresh_count(self) -> int:
        """How many grants this provider completed (for diagnostics and tests)."""
        return self._refreshes

    async def aclose(self) -> None:
        """Cancel a refresh in flight and close the HTTP client if this provider made it."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            # Wait for it to finish without taking on its outcome (which no longer matters;
            # _fetch_done retrieves it). Unlike suppressing everything around `await task`,
            # this lets a cancellation of aclose() itself propagate.
            await asyncio.wait({task})
        if self._owns_http:
            await self._http.aclose()

    async def _fetch(self, sleep: Sleep) -> TokenSet:
        """Run the grant; `sleep` waits between attempts."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Called before each `get_token` decision (load the store, retry a failed save)."""

    async def get_token(self) -> str:
        """Return an access token valid for at least `refresh_margin` more seconds if possible.

        When a refresh is due but the current token has not expired, this waits for the
        refresh's first attempt only: if that fails transiently (network, 5xx, 429), the
        current token is returned at once while the refresh goes on with its back-off in the
        background, so a struggling LWA never holds up a caller that has a usable token.

        Raises:
            RuntimeError: the provider is closed.
            ReauthorizationRequired: the device must be linked again (sticky).
            ClientConfigError: the LWA client configuration is wrong (sticky).
            AuthError: LWA failed in another way.
            TransportError: LWA was unreachable and no unexpired token is left.
            TokenStoreError: the token file could not be read or written.
        """
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        if self._error is not None:
            raise self._error
        self._prepare()
        current = self._access
        now = self._clock()
        if current is not None and not current.refresh_due(now, self._config.refresh_margin):
            return current.access_token
        flight = self._single_flight()
        try:
            if current is not None and not current.expired(now):
                retrying = asyncio.ensure_future(self._retrying.wait())
                either: set[asyncio.Future[Any]] = {flight, retrying}
                try:
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    retrying.cancel()
                if not flight.done():
                    logger.warning(
                        "LWA refresh failed; retrying in the background, the current token "
                        "is still valid for %.0f s",
                        current.expires_at - self._clock(),
                    )
                    return current.access_token
            tokens = await flight
        except (TransportError, AuthError) as exc:
            if isinstance(exc, ReauthorizationRequired | ClientConfigError | TokenStoreError):
                raise
            if (
                current is not None
                and current is self._access
                and not current.expired(self._clock())
            ):
                logger.warning("LWA refresh failed (%s); using the current token for now", exc)
                return current.access_token
            raise
        finally:
            if not flight.done():
                flight.cancel()  # only this caller's shield: the refresh itself goes on
        return tokens.access_token

    async def invalidate(self, token: str) -> None:
        """Forget `token` if it is the current access token, so the next call refreshes."""
        current = self._access
        if current is not None and current.access_token == token:
            logger.info("access token rejected; the next request refreshes it")
            self._access = None

    def _single_flight(self) -> asyncio.Future[TokenSet]:
        task = self._task
        if task is None:
            self._retrying.clear()
            task = asyncio.get_running_loop().create_task(
                self._run_fetch(), name=f"{type(self).__name__} refresh"
            )
            task.add_done_callback(self._fetch_done)
            self._task = task
        # shield: one caller giving up (cancelled) must not cancel the others' refresh.
        return asyncio.shield(task)

    async def _run_fetch(self) -> TokenSet:
        async def sleep_between_attempts(delay: float) -> None:
            self._retrying.set()
            await self._sleep(delay)

        tokens = await self._fetch(sleep_between_attempts)
        self._refreshes += 1
        self.last_failure = None
        return tokens

    def _note_retry(self, event: LWARetryScheduled) -> None:
        self.last_failure = f"Login with Amazon: {event.reason} (attempt {event.attempt})"

    def _fetch_done(self, task: asyncio.Task[TokenSet]) -> None:
        if self._task is task:
            self._task = None
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved when every caller was cancelled
        if isinstance(exc, ReauthorizationRequired | ClientConfigError):
            self._error = exc


class RefreshingTokenProvider(_RefreshingProvider):
    """Access tokens from the LWA refresh grant, saved to a `TokenStore` after every refresh.

    Give it a refresh token, a store holding one (written by `avsclient login`), or both (the
    refresh token then wins and the store receives every new token set). A rotated refresh
    token is saved before the new access token is handed out.

    Args:
        config: the LWA client.
        refresh_token: a refresh token to start from.
        store: the token file to load from (lazily, on first use) and save to.
        http: an `LWAHttpClient` to use (default: one made from `config`, closed by `aclose`).
        clock: wall-clock time source (`expires_at` is stored; tests pass a fake).
        sleep: the coroutine that waits between retries (tests pass a fake).
        random: returns a float in [0, 1) for back-off jitter.

    Raises:
        ValueError: neither `refresh_token` nor `store` was given.
    """

    def __init__(
        self,
        config: LWAConfig,
        *,
        refresh_token: str | None = None,
        store: TokenStore | None = None,
        http: LWAHttpClient | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if refresh_token is None and store is None:
            raise ValueError("give a refresh_token, a store, or both")
        super().__init__(config, http=http, clock=clock, sleep=sleep, random=random)
        self._refresh_token = refresh_token
        self._store = store
        self._loaded = refresh_token is not None
        self._unsaved: TokenSet | None = None
        self._record: StoredTokens | None = None  # what the file held: its device identity

    @property
    def store(self) -> TokenStore | None:
        """The token file, if any."""
        return self._store

    def _prepare(self) -> None:
        if not self._loaded:
            assert self._store is not None
            record = self._store.load()
            if record is None:
                raise ReauthorizationRequired(
                    f"no tokens in {self._store.path}: link this device with `avsclient login`"
                )
            if record.client_id != self._config.client_id:
                raise TokenStoreError(
                    f"the tokens in {self._store.path} belong to client {record.client_id!r}, "
                    f"not {self._config.client_id!r}"
                )
            self._record = record
            self._refresh_token = record.tokens.refresh_token
            if not record.tokens.expired(self._clock()):
                self._access = record.tokens
            self._loaded = True
        if self._unsaved is not None:
            try:
                self._save(self._unsaved)
            except TokenStoreError as exc:
                logger.error("%s", exc)

    def _save(self, tokens: TokenSet) -> None:
        if self._store is None:
            return
        self._unsaved = tokens
        previous = self._record
        if previous is None:  # started from a refresh token: keep the file's device identity
            with contextlib.suppress(TokenStoreError):
                previous = self._store.load()
        if previous is not None and previous.client_id == self._config.client_id:
            record = dataclasses.replace(previous, tokens=tokens)
        else:
            record = StoredTokens(client_id=self._config.client_id, tokens=tokens)
        self._store.save(record)
        self._record = record
        self._unsaved = None

    async def _fetch(self, sleep: Sleep) -> TokenSet:
        if self._refresh_token is None:
            raise ReauthorizationRequired(
                "no refresh token: link this device with `avsclient login`"
            )
        request = refresh_request(
            self._refresh_token, self._config.client_id, self._config.client_secret
        )
        exchange = TokenExchange(request, retry=self._config.retry, random=self._random)
        tokens = await run_exchange(
            self._http, exchange, clock=self._clock, sleep=sleep, on_retry=self._note_retry
        )
        rotated = tokens.refresh_token != self._refresh_token
        self._refresh_token = tokens.refresh_token
        self._access = tokens
        logger.info(
            "LWA access token refreshed%s; valid for %.0f s",
            " (refresh token rotated)" if rotated else "",
            tokens.expires_at - self._clock(),
        )
        # Save at once: after a rotation the old refresh token no longer works. A failure is
        # raised here and the save is retried on the next get_token.
        self._save(tokens)
        return tokens


class ClientCredentialsTokenProvider(_RefreshingProvider):
    """Access tokens from the client_credentials grant (the Skill Messaging API, section 8),
    cached in memory until `refresh_margin` before they expire.

    Args:
        config: the LWA client; `client_secret` is required.
        scope: the scope to ask for.
        http: an `LWAHttpClient` to use (default: one made from `config`, closed by `aclose`).
        clock: time source (tests pass a fake).
        sleep: the coroutine that waits between retries (tests pass a fake).
        random: returns a float in [0, 1) for back-off jitter.

    Raises:
        ValueError: `config` has no client secret, or `scope` is empty.
    """

    def __init__(
        self,
        config: LWAConfig,
        *,
        scope: str = "alexa:skill_messaging",
        http: LWAHttpClient | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if config.client_secret is None:
            raise ValueError("the client_credentials grant needs config.client_secret")
        if not scope:
            raise ValueError("scope must not be empty")
        super().__init__(config, http=http, clock=clock, sleep=sleep, random=random)
        self._scope = scope

    async def _fetch(self, sleep: Sleep) -> TokenSet:
        assert self._config.client_secret is not None
        request = client_credentials_request(
            self._config.client_id, self._config.client_secret, self._scope
        )
        exchange = TokenExchange(request, retry=self._config.retry, random=self._random)
        tokens = await run_exchange(
            self._http, exchange, clock=self._clock, sleep=sleep, on_retry=self._note_retry
        )
        self._access = tokens
        logger.info("LWA client_credentials token obtained (scope %s)", tokens.scope or self._scope)
        return tokens
