"""A media server for AudioPlayer tests: HTTPS (HTTP/1.1) on loopback, serving tracks from
memory, with faults (an HTTP error, a redirect loop, a stall, a truncated body, a playlist that
names itself).

Every `Simulator` runs one as `sim.media`, with a certificate from the simulator's own CA, so a
client that trusts the simulator (`ca_file=sim.ca_file`) trusts its media too. On its own:

    media = MediaServer()
    await media.start()
    media.add("/track.mp3", mp3_bytes)
    media.add("/gone.mp3", status=404)
    media.add("/loop", redirect="/loop", status=302)
    media.add("/slow.mp3", mp3_bytes, stall_after=4096, stall=2.0)
    player = AudioPlayerAgent(channel, verify=media.ssl_context())
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass

from avsclient.simulator._extra import missing_extra

try:
    import trustme
except ImportError as exc:  # the simulator extra is not installed
    raise missing_extra("trustme") from exc

__all__ = ["MediaRoute", "MediaServer"]

_REASONS = {200: "OK", 302: "Found", 403: "Forbidden", 404: "Not Found", 500: "Server Error"}
#: Bytes sent per write: a client sees a stream, not one block.
_CHUNK = 4096


@dataclass(slots=True)
class MediaRoute:
    """What one path answers."""

    body: bytes = b""
    status: int = 200
    content_type: str = "audio/mpeg"
    #: Location of a 302 answer.
    redirect: str | None = None
    #: Stop sending after this many bytes for `stall` seconds (a stalling server).
    stall_after: int | None = None
    stall: float = 0.0
    #: Announce the full length but close after this many bytes (a truncated file).
    truncate_at: int | None = None


def _header(request: bytes, name: bytes) -> str | None:
    for line in request.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


class MediaServer:
    """Serves registered routes over HTTPS on 127.0.0.1; counts requests per path."""

    def __init__(self, ca: trustme.CA | None = None) -> None:
        """Create a server (it listens once started).

        Args:
            ca: the CA that signs its certificate (default: a new one).
        """
        self.routes: dict[str, MediaRoute] = {}
        self.requests: dict[str, int] = {}
        #: The Authorization header of each request, by path (None: the request had none).
        self.authorizations: dict[str, list[str | None]] = {}
        self._ca = ca or trustme.CA()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    def add(self, path: str, body: bytes = b"", **options: object) -> str:
        """Serve `path` (options: the fields of `MediaRoute`); returns its URL."""
        self.routes[path] = MediaRoute(body, **options)  # type: ignore[arg-type]
        return self.url(path)

    def add_playlist(self, path: str, entries: list[str], *, kind: str = "m3u") -> str:
        """Serve a playlist (`kind` m3u, hls or pls) of `entries` (paths or URLs)."""
        if kind == "pls":
            lines = ["[playlist]", *(f"File{n}={e}" for n, e in enumerate(entries, 1))]
            lines.append(f"NumberOfEntries={len(entries)}")
            body, content_type = "\n".join(lines), "audio/x-scpls"
        elif kind == "hls":
            lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:10"]
            lines += [x for e in entries for x in ("#EXTINF:10.0,", e)] + ["#EXT-X-ENDLIST"]
            body, content_type = "\n".join(lines), "application/vnd.apple.mpegurl"
        elif kind == "m3u":
            body, content_type = "\n".join(["#EXTM3U", *entries]), "audio/x-mpegurl"
        else:
            raise ValueError(f"kind must be m3u, hls or pls, not {kind!r}")
        return self.add(path, (body + "\n").encode(), content_type=content_type)

    def url(self, path: str) -> str:
        """The https URL of `path`."""
        return f"https://127.0.0.1:{self.port}{path}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this server's CA (and nothing else)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._ca.configure_trust(ctx)
        return ctx

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            async with asyncio.timeout(30):
                request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode("ascii", "replace")
            self.requests[path] = self.requests.get(path, 0) + 1
            self.authorizations.setdefault(path, []).append(_header(request, b"authorization"))
            route = self.routes.get(path, MediaRoute(b"no such media", status=404))
            await self._answer(writer, route)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, route: MediaRoute) -> None:
        headers = [f"HTTP/1.1 {route.status} {_REASONS.get(route.status, 'Status')}"]
        if route.redirect is not None:
            headers.append(f"Location: {route.redirect}")
        headers += [
            f"Content-Type: {route.content_type}",
            f"Content-Length: {len(route.body)}",
            "Connection: close",
        ]
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("ascii"))
        end = len(route.body) if route.truncate_at is None else route.truncate_at
        for start in range(0, end, _CHUNK):
            if route.stall_after is not None and start >= route.stall_after:
                await writer.drain()
                await asyncio.sleep(route.stall)
                route = MediaRoute(route.body, route.status, route.content_type)  # once
            writer.write(route.body[start : min(end, start + _CHUNK)])
            await writer.drain()

    async def aclose(self) -> None:
        """Stop listening and end every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
