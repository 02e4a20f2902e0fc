"""The local AVS simulator: an HTTP/2 server on asyncio and h2 that speaks the AVS protocol.

It serves the downchannel, events and ping endpoints of API v20160207 and the Login with Amazon
endpoints, over TLS (a certificate made at start by trustme, ALPN h2) or cleartext HTTP/2 with
prior knowledge, on loopback only. Tests drive it through `script`, `faults` and `lwa` and read
back what it received in `events`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import ssl
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avsclient._resource import AsyncService
from avsclient.auth.lwa import TokenSet
from avsclient.auth.store import StoredTokens, TokenStore
from avsclient.config import ClientConfig
from avsclient.simulator._extra import missing_extra
from avsclient.simulator.config import SimulatorConfig
from avsclient.simulator.connection import Connection
from avsclient.simulator.discovery import CapabilitiesApiService, DiscoveryService
from avsclient.simulator.faults import Faults
from avsclient.simulator.gateway import GatewayService
from avsclient.simulator.lwa import DEFAULT_CLIENT_ID, LWAService
from avsclient.simulator.media import MediaServer
from avsclient.simulator.mime import RelatedWriter
from avsclient.simulator.scenarios import ReceivedEvent, Script, ScriptedReply
from avsclient.simulator.scripted import scripted_directive

try:
    import trustme
except ImportError as exc:  # the simulator extra is not installed
    raise missing_extra("trustme") from exc

__all__ = ["Simulator"]

logger = logging.getLogger("avsclient.simulator")

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
# The names the simulator's certificate carries: all of them are the simulator itself.
_CERTIFICATE_NAMES = ("127.0.0.1", "::1", "localhost")


class Simulator(AsyncService):
    """A local Alexa Voice Service.

    Use it as `async with Simulator() as sim:` (or `await sim.start()` ... `await sim.aclose()`).

    Args:
        tls: serve HTTPS with a fresh certificate (True) or cleartext HTTP/2, h2c (False).
        host: the loopback address to listen on (127.0.0.1, ::1 or localhost).
        port: the TCP port; 0 picks a free one (read it back from `port` or `url`).
        config: limits and HTTP/2 settings.

    Attributes:
        events: every event received, in the order their uploads completed.
        script: how events are answered (`Script`).
        faults: faults to inject (`Faults`).
        lwa: the Login with Amazon service (`LWAService`).
        gateway: the smart-home event gateway and Skill Messaging API (`GatewayService`).
        discovery: Alexa.Discovery reports judged against the reference, EventProcessed,
            VerifyGateway (`DiscoveryService`).
        capabilities_api: the legacy Capabilities API, `PUT /v1/devices/@self/capabilities`
            on this same server (`CapabilitiesApiService`).
        media: an HTTPS media server for AudioPlayer streams (`MediaServer`), started with
            the simulator; its certificate comes from the simulator's CA when it serves TLS.
        config: the `SimulatorConfig` in use.
    """

    def __init__(
        self,
        *,
        tls: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        config: SimulatorConfig | None = None,
    ) -> None:
        if host not in _LOOPBACK:
            raise ValueError(f"the simulator listens on loopback only, not {host!r}")
        self.tls = tls
        self.host = host
        self.port = port
        self.config = config or SimulatorConfig()
        self.events: list[ReceivedEvent] = []
        self.script = Script()
        self.faults = Faults(self)
        self.lwa = LWAService()
        self.gateway = GatewayService(self.token_accepted)
        self.discovery = DiscoveryService(self.push_directive)
        for name in ("AddOrUpdateReport", "DeleteReport"):
            self.script.on("Alexa.Discovery", name, self.discovery.reply)
        self.script.on("Alexa.ApiGateway", "VerifyGateway", self.discovery.reply)
        self.capabilities_api = CapabilitiesApiService(self.token_accepted)
        self.media = MediaServer()
        self._tokens: set[str] = set()
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._connection_count = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._events_changed = asyncio.Event()
        self._downchannels_changed = asyncio.Event()
        self._tmpdir: Path | None = None
        self._ca: trustme.CA | None = None
        self.ca_file: Path | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Create the certificate (TLS) and start listening.

        Raises:
            RuntimeError: already started.
            OSError: the port could not be bound.
        """
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        server_ctx: ssl.SSLContext | None = None
        if self.tls:
            self._ca = trustme.CA()
            cert = self._ca.issue_cert(*_CERTIFICATE_NAMES)
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            cert.configure_cert(server_ctx)
            server_ctx.set_alpn_protocols(["h2"])
            self._tmpdir = Path(tempfile.mkdtemp(prefix="avs-simulator-"))
            self.ca_file = self._tmpdir / "ca.pem"
            self._ca.cert_pem.write_to_path(str(self.ca_file))
        await self.media.start(self._ca)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_connection, self.host, self.port, ssl=server_ctx
        )
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("AVS simulator listening on %s", self.url)

    def _new_connection(self) -> Connection:
        self._connection_count += 1
        return Connection(self, self._connection_count)

    async def aclose(self) -> None:
        """Stop listening, close every connection and remove the CA file."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self.discovery.aclose()
        for conn in list(self._connections):
            conn.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        await self.media.aclose()
        # Let the transports deliver connection_lost before the loop may close.
        await asyncio.sleep(0)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # -- addresses and credentials -------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. `https://127.0.0.1:8443` (`http://` for h2c)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client SSL context that trusts the simulator, with ALPN `h2`.

        Raises:
            RuntimeError: the simulator serves h2c or has not started.
        """
        if self._ca is None:
            raise RuntimeError("no TLS: the simulator is not started or serves h2c")
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._ca.configure_trust(ctx)
        ctx.set_alpn_protocols(["h2"])
        return ctx

    def client_config(self, **options: Any) -> ClientConfig:
        """A `ClientConfig` that reaches this simulator (its URL, and its CA for TLS).

        A System.SetEndpoint pushed by the simulator may move the client to the simulator's
        own names (its certificate's: 127.0.0.1, ::1, localhost) instead of the Amazon hosts
        of the default configuration.

        Args:
            options: other `ClientConfig` fields (e.g. `connect_timeout=5`).

        Raises:
            RuntimeError: the simulator has not started.
        """
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        ca_file = None if self.ca_file is None else str(self.ca_file)
        options.setdefault("endpoint_hosts", _CERTIFICATE_NAMES)
        return ClientConfig(endpoint=self.url, ca_file=ca_file, **options)

    def write_token_file(
        self,
        path: str | os.PathLike[str],
        client_id: str = DEFAULT_CLIENT_ID,
        *,
        product_id: str = "sim_device",
        serial: str = "0001",
    ) -> Path:
        """Write tokens this simulator accepts as a token file, as `avsclient login` would
        (with the device's product id and serial number).

        `avsclient talk --token-file PATH` and `AVSClient.from_login(token_file=PATH)` then
        use them, refreshing them against this simulator's Login with Amazon service.

        Returns:
            The path written (mode 0600).

        Raises:
            KeyError: `client_id` is not registered with `lwa`.
            TokenStoreError: the file cannot be written.
        """
        now = time.time()
        tokens = TokenSet(
            access_token=self.lwa.issue_access_token(client_id, now=self.lwa.clock()),
            refresh_token=self.lwa.issue_refresh_token(client_id),
            expires_at=now + self.lwa.access_token_lifetime,
        )
        store = TokenStore(path)
        store.save(
            StoredTokens(
                client_id=client_id,
                tokens=tokens,
                product_id=product_id,
                device_serial_number=serial,
            )
        )
        return store.path

    def add_token(self, token: str | None = None) -> str:
        """Accept `token` (or a new random one) as a bearer token; returns it.

        Access tokens issued by `lwa` are accepted without this.
        """
        token = token or "sim-token-" + secrets.token_urlsafe(16)
        self._tokens.add(token)
        return token

    def remove_token(self, token: str) -> None:
        """Stop accepting a token added with `add_token` (later requests get 403)."""
        self._tokens.discard(token)

    def token_accepted(self, token: str) -> bool:
        """True if AVS requests with this bearer token are authorized."""
        return token in self._tokens or self.lwa.access_token_valid(token, self.lwa.clock())

    # -- connections ---------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        """How many client connections are open."""
        return len(self._connections)

    @property
    def connected_downchannels(self) -> int:
        """How many downchannels are open (at most one per connection)."""
        return sum(1 for c in self._connections if c.downchannel is not None)

    async def wait_for_downchannel(self, count: int = 1, *, timeout: float = 5.0) -> None:
        """Wait until at least `count` downchannels are open.

        Raises:
            TimeoutError: they did not open within `timeout` seconds.
        """
        async with asyncio.timeout(timeout):
            while self.connected_downchannels < count:
                await self._downchannels_changed.wait()

    async def push_directive(
        self,
        message: Mapping[str, Any],
        attachments: Mapping[str, bytes] | None = None,
        *,
        timeout: float = 5.0,
    ) -> int:
        """Send a directive, and its attachments, on every open downchannel.

        Waits for a downchannel if none is open yet, and until the bytes were handed to the
        socket (a slow client applies HTTP/2 backpressure here).

        Args:
            message: the JSON part, `{"directive": {...}}` (see `scenarios.directive`).
            attachments: binary parts by content id, sent after the directive
                (`"url": "cid:<id>"` refers to them).
            timeout: seconds to wait for a downchannel and for the send.

        Returns:
            How many downchannels it was sent on.

        Raises:
            TimeoutError: no downchannel opened, or sending did not finish, within `timeout`.
            ConnectionLost: a downchannel closed before the directive went out.
        """
        async with asyncio.timeout(timeout):
            await self.wait_for_downchannel()
            channels = [c.downchannel for c in self._connections if c.downchannel is not None]
            corrupt_framing = self.faults.take_malformed_multipart()
            corrupt_json = self.faults.take_malformed_json()
            pushes = []
            for channel in channels:
                chunks = self._directive_chunks(
                    channel.writer,
                    dict(message),
                    dict(attachments or {}),
                    last=False,
                    corrupt_framing=corrupt_framing,
                    corrupt_json=corrupt_json,
                )
                pushes.append(channel.push(chunks))
            await asyncio.gather(*pushes)
        return len(channels)

    async def push_scripted(self, name: str, *, timeout: float = 5.0, **fields: Any) -> int:
        """Push a scripted directive by name (`avsclient.simulator.scripted.SCRIPTED`), its
        payload fields given as keywords over the defaults; returns the downchannel count.

        Raises:
            KeyError: no scripted directive of that name.
            TimeoutError: no downchannel, or the send did not finish, within `timeout`.
        """
        return await self.push_directive(scripted_directive(name, **fields), timeout=timeout)

    # -- events --------------------------------------------------------------------------

    async def wait_for_event(
        self, namespace: str, name: str, *, timeout: float = 5.0, nth: int = 1
    ) -> ReceivedEvent:
        """Wait for the `nth` event `namespace.name` (counting from the first ever received).

        Raises:
            TimeoutError: it did not arrive within `timeout` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                matches = [e for e in self.events if (e.namespace, e.name) == (namespace, name)]
                if len(matches) >= nth:
                    return matches[nth - 1]
                await self._events_changed.wait()

    # -- for Connection and Faults -------------------------------------------------------

    def _record_event(self, event: ReceivedEvent) -> None:
        self.events.append(event)
        logger.debug("event received: %r", event)
        self._events_changed.set()
        self._events_changed = asyncio.Event()

    def _downchannel_changed(self) -> None:
        self._downchannels_changed.set()
        self._downchannels_changed = asyncio.Event()

    def _connection_opened(self, conn: Connection) -> None:
        self._connections.add(conn)

    def _connection_closed(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._downchannel_changed()

    def _directive_chunks(
        self,
        writer: RelatedWriter,
        message: dict[str, Any],
        attachments: Mapping[str, bytes],
        *,
        last: bool,
        corrupt_framing: bool | None = None,
        corrupt_json: bool | None = None,
    ) -> list[bytes]:
        """Encode one directive and its attachments; the malformed faults apply once."""
        if corrupt_framing is None:
            corrupt_framing = self.faults.take_malformed_multipart()
        if corrupt_json is None:
            corrupt_json = self.faults.take_malformed_json()
        items = list(attachments.items())
        chunks = writer.directive(
            message,
            last=last and not items,
            corrupt_json=corrupt_json,
            corrupt_framing=corrupt_framing and not items,
        )
        for index, (cid, data) in enumerate(items):
            final = index == len(items) - 1
            chunks += writer.attachment(
                cid, data, last=last and final, corrupt=corrupt_framing and final
            )
        return chunks

    def _reply_chunks(self, writer: RelatedWriter, reply: ScriptedReply) -> list[bytes]:
        """Encode a reply's directives, each followed by the attachments it names."""
        remaining = dict(reply.attachments)
        groups: list[tuple[dict[str, Any], dict[str, bytes]]] = []
        for message in reply.directives:
            text = json.dumps(message)
            mine = {cid: data for cid, data in remaining.items() if f"cid:{cid}" in text}
            for cid in mine:
                del remaining[cid]
            groups.append((message, mine))
        chunks: list[bytes] = []
        for index, (message, mine) in enumerate(groups):
            last = index == len(groups) - 1 and not remaining
            chunks += self._directive_chunks(writer, message, mine, last=last)
        for index, (cid, data) in enumerate(remaining.items()):
            chunks += writer.attachment(cid, data, last=index == len(remaining) - 1)
        if not writer.finished:
            chunks.append(writer.close())
        return chunks

    def goaway_all(self, error_code: int, close_after: float | None) -> int:
        """Send GOAWAY on every open connection (use `faults.goaway()`); returns the count."""
        conns = list(self._connections)
        for conn in conns:
            conn.goaway(error_code, close_after)
        return len(conns)

    def reset_downchannels(self, error_code: int) -> int:
        """RST_STREAM every open downchannel (use `faults.reset_downchannel()`)."""
        channels = [c.downchannel for c in self._connections if c.downchannel is not None]
        for channel in channels:
            channel.conn.reset(channel.stream_id, error_code)
            channel.close()
        return len(channels)

    def drop_all(self) -> int:
        """Abort every open connection (use `faults.drop_connections()`)."""
        conns = list(self._connections)
        for conn in conns:
            conn.abort()
        return len(conns)
