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
    media.add("/radio.mp3", mp3_bytes, repeat=10_000)  # a stream without end (or length)
    media.add_live_hls("/live.m3u8", ["s0.ts", "s1.ts", "s2.ts"], first=1)  # grows per load

Byte ranges (RFC 9110 14): a route answers `Range: bytes=a-b` / `bytes=a-` with 206 and
Content-Range, and a range past its end with 416; `ranges="ignore"` answers 200 with the whole
body (a server without range support), `ranges="refuse"` answers 416 to any range request.
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

__all__ = ["LivePlaylist", "MediaRoute", "MediaServer"]

_REASONS = {
    200: "OK",
    206: "Partial Content",
    302: "Found",
    403: "Forbidden",
    404: "Not Found",
    416: "Range Not Satisfiable",
    500: "Server Error",
}
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
    #: Byte ranges: "bytes" (honoured), "ignore" (200, whole body) or "refuse" (416).
    ranges: str = "bytes"
    #: Send the body this many times, without a Content-Length (a live stream); no ranges.
    repeat: int = 1


@dataclass(slots=True)
class LivePlaylist:
    """An HLS media playlist without EXT-X-ENDLIST that grows by `step` segments per load
    (RFC 8216 6.2.1): load n lists the first `first + n * step` entries (at most `window` of
    them, EXT-X-MEDIA-SEQUENCE counting those dropped); once all are listed, `end` adds
    EXT-X-ENDLIST, else it stays as it is (a playlist that stopped growing)."""

    entries: list[str]
    target: int = 1
    first: int = 1
    step: int = 1
    window: int | None = None
    end: bool = True
    loads: int = 0

    def render(self) -> bytes:
        listed = min(len(self.entries), self.first + self.loads * self.step)
        self.loads += 1
        start = 0 if self.window is None else max(0, listed - self.window)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{self.target}",
            f"#EXT-X-MEDIA-SEQUENCE:{start}",
        ]
        for entry in self.entries[start:listed]:
            lines += [f"#EXTINF:{self.target}.0,", entry]
        if self.end and listed == len(self.entries):
            lines.append("#EXT-X-ENDLIST")
        return ("\n".join(lines) + "\n").encode()


def _byte_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `bytes=a-b` / `bytes=a-` / `bytes=-n` range within `size`
    bytes; None when it is not satisfiable (RFC 9110 14.1.2)."""
    unit, _, spec = value.partition("=")
    first, _, last = spec.strip().partition("-")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    try:
        if not first:
            length = int(last)
            return (max(0, size - length), size - 1) if length > 0 and size else None
        start = int(first)
        end = min(size - 1, int(last)) if last else size - 1
    except ValueError:
        return None
    return (start, end) if start < size and start <= end else None


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
            ca: the CA that signs its certificate (default: the one `start()` is given, else
                a new one made when first needed).
        """
        self.routes: dict[str, MediaRoute] = {}
        self.requests: dict[str, int] = {}
        #: The Authorization header of each request, by path (None: the request had none).
        self.authorizations: dict[str, list[str | None]] = {}
        #: The Range header of each request, by path (None: the request had none).
        self.ranges: dict[str, list[str | None]] = {}
        #: Body bytes written per path (what a client was sent, ranges and repeats included).
        self.sent: dict[str, int] = {}
        self.live: dict[str, LivePlaylist] = {}
        self._ca = ca
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

    def add_live_hls(self, path: str, entries: list[str], **options: object) -> str:
        """Serve a live HLS playlist of `entries` (options: the fields of `LivePlaylist`),
        growing with each load; returns its URL."""
        self.live[path] = LivePlaylist(list(entries), **options)  # type: ignore[arg-type]
        return self.url(path)

    def url(self, path: str) -> str:
        """The https URL of `path`."""
        return f"https://127.0.0.1:{self.port}{path}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this server's CA (and nothing else)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self._authority().configure_trust(ctx)
        return ctx

    def _authority(self) -> trustme.CA:
        if self._ca is None:
            self._ca = trustme.CA()
        return self._ca

    async def start(self, ca: trustme.CA | None = None) -> None:
        """Listen on an ephemeral loopback port.

        Args:
            ca: the CA to sign its certificate with (the simulator's own, so that one CA file
                covers AVS and its media); routes added before `start()` stay.
        """
        if ca is not None:
            self._ca = ca
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._authority().issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
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
            wanted = _header(request, b"range")
            self.ranges.setdefault(path, []).append(wanted)
            live = self.live.get(path)
            if live is not None:
                route = MediaRoute(live.render(), content_type="application/vnd.apple.mpegurl")
            else:
                route = self.routes.get(path, MediaRoute(b"no such media", status=404))
            await self._answer(writer, route, wanted, path)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(
        self, writer: asyncio.StreamWriter, route: MediaRoute, wanted: str | None, path: str
    ) -> None:
        status, body, extra = route.status, route.body, []
        if route.repeat != 1:
            wanted = None  # a stream of unknown length has no ranges
        if wanted is not None and status == 200 and route.ranges != "ignore":
            span = None if route.ranges == "refuse" else _byte_range(wanted, len(body))
            if span is None:
                status, body = 416, b""
                extra.append(f"Content-Range: bytes */{len(route.body)}")
            else:
                status, body = 206, body[span[0] : span[1] + 1]
                extra.append(f"Content-Range: bytes {span[0]}-{span[1]}/{len(route.body)}")
        headers = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        if route.redirect is not None:
            headers.append(f"Location: {route.redirect}")
        headers.append(f"Content-Type: {route.content_type}")
        if route.repeat == 1:
            headers.append(f"Content-Length: {len(body)}")
        if route.ranges == "bytes" and route.repeat == 1:
            headers.append("Accept-Ranges: bytes")
        headers += [*extra, "Connection: close"]
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("ascii"))
        end = len(body) if route.truncate_at is None else min(len(body), route.truncate_at)
        stall_after = route.stall_after
        for _ in range(route.repeat):
            for start in range(0, end, _CHUNK):
                if stall_after is not None and start >= stall_after:
                    await writer.drain()
                    await asyncio.sleep(route.stall)
                    stall_after = None  # once
                piece = body[start : min(end, start + _CHUNK)]
                writer.write(piece)
                self.sent[path] = self.sent.get(path, 0) + len(piece)
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
