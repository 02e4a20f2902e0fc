"""The AudioPlayer interface (avs-protocol 14): Play, Stop and ClearQueue, played on the Content
channel of the client's mixer under audio focus (13.3).

`PlayQueue` is the sans-IO part: the current item and the queue, and what Play (REPLACE_ALL,
ENQUEUE, REPLACE_ENQUEUED, `expectedPreviousToken`) and ClearQueue do to them. The agent plays
items one after another in one task: MP3 from a `cid:` attachment or an https URL (httpx,
certificate verified, redirects bounded), decoded by `Mp3Sink` into its mixer channel. The
offset it reports is what the mixer has played of the item (samples, not wall clock).
Focus: music acquires Content as MIXABLE when Play asks `interruptedBehavior: ATTENUATE`, else
NONMIXABLE; in the background it ducks or pauses (PlaybackPaused / PlaybackResumed); losing the
channel stops it (PlaybackStopped).
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import enum
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from avsclient.agents import payload
from avsclient.agents.base import CapabilityAgent, DirectiveHandler
from avsclient.attachments import AttachmentReader, cid_of
from avsclient.audio import AudioSink, MixerChannel, Mp3Sink
from avsclient.exceptions import AttachmentError, AudioError, DirectiveError
from avsclient.focus import ContentType, FocusState, MixingBehavior
from avsclient.messages import ContextState, Directive, Event

__all__ = [
    "AudioItem",
    "AudioPlayerAgent",
    "MediaError",
    "PlayQueue",
    "PlaybackMonitor",
    "PlayerActivity",
    "parse_playlist",
]

_log = logging.getLogger("avsclient.agents")

#: Items waiting behind the current one; a Play beyond it is refused.
MAX_QUEUE = 32
#: Redirects followed for one media URL.
MAX_REDIRECTS = 5
#: Seconds between two looks at the track position (progress reports, stutter).
MONITOR_PERIOD = 0.05
#: Seconds to wait for a media server (connect, and each read).
MEDIA_TIMEOUT = 10.0
#: The largest offset, delay or interval in milliseconds: a Java long (avs-protocol 14.2).
MAX_LONG = 2**63 - 1
#: The longest stream URL accepted (signed media URLs run to a few KiB).
MAX_URL_LENGTH = 16 * 1024
#: Play's playBehavior, stream.interruptedBehavior and ClearQueue's clearBehavior values.
PLAY_BEHAVIORS = ("REPLACE_ALL", "ENQUEUE", "REPLACE_ENQUEUED")
INTERRUPTED_BEHAVIORS = ("PAUSE", "ATTENUATE")
CLEAR_BEHAVIORS = ("CLEAR_ENQUEUED", "CLEAR_ALL")


class PlayerActivity(enum.Enum):
    """`playerActivity` of `AudioPlayer.PlaybackState` (avs-protocol 14.4)."""

    IDLE = "IDLE"
    PLAYING = "PLAYING"
    PAUSED = "PAUSED"
    BUFFER_UNDERRUN = "BUFFER_UNDERRUN"
    FINISHED = "FINISHED"
    STOPPED = "STOPPED"


class MediaError(enum.Enum):
    """`error.type` of PlaybackFailed (avs-protocol 14.3)."""

    UNKNOWN = "MEDIA_ERROR_UNKNOWN"
    INVALID_REQUEST = "MEDIA_ERROR_INVALID_REQUEST"
    SERVICE_UNAVAILABLE = "MEDIA_ERROR_SERVICE_UNAVAILABLE"
    INTERNAL_SERVER_ERROR = "MEDIA_ERROR_INTERNAL_SERVER_ERROR"
    INTERNAL_DEVICE_ERROR = "MEDIA_ERROR_INTERNAL_DEVICE_ERROR"


class _Failed(Exception):
    def __init__(self, error: MediaError, message: str) -> None:
        super().__init__(message)
        self.error = error


@dataclass(slots=True)
class AudioItem:
    """One stream of a Play directive."""

    token: str
    url: str
    offset_ms: int = 0
    expected_previous: str | None = None
    content_type: ContentType = ContentType.NONMIXABLE
    #: progressReport delay and interval (None: no report).
    report_delay_ms: int | None = None
    report_interval_ms: int | None = None
    #: When the URL stops working (stream.expiryTime), if given.
    expires: datetime.datetime | None = None
    #: The directive's source (for its `cid:` attachment).
    source: Any = None
    reader: AttachmentReader | None = field(default=None, repr=False)

    @classmethod
    def from_play(cls, directive: Directive) -> AudioItem:
        """The item of a Play directive (avs-protocol 14.2). Missing keys are tolerated
        (defaults: offset 0, no progress reports, no expiry); a key that is present must
        have its type and range.

        Raises:
            DirectiveError: there is no stream token or URL, or a field is malformed.
        """
        item = payload.obj(directive.payload, "audioItem")
        stream = payload.obj(item, "stream", where="audioItem")
        at = "audioItem.stream"
        report = payload.obj(stream, "progressReport", default={}, where=at)
        at_report = f"{at}.progressReport"
        # A zero delay or interval means no report, like an absent one.
        delay = payload.integer(
            report,
            "progressReportDelayInMilliseconds",
            low=0,
            high=MAX_LONG,
            default=0,
            where=at_report,
        )
        interval = payload.integer(
            report,
            "progressReportIntervalInMilliseconds",
            low=0,
            high=MAX_LONG,
            default=0,
            where=at_report,
        )
        # The SDK treats an empty expectedPreviousToken like an absent one.
        expected = payload.text(
            stream, "expectedPreviousToken", default=None, allow_empty=True, where=at
        )
        behavior = payload.choice(
            stream, "interruptedBehavior", INTERRUPTED_BEHAVIORS, default="PAUSE", where=at
        )
        expiry = payload.text(stream, "expiryTime", default=None, max_length=64, where=at)
        return cls(
            expires=_parse_expiry(expiry),
            report_delay_ms=delay or None,
            report_interval_ms=interval or None,
            token=payload.text(stream, "token", where=at),
            url=payload.text(stream, "url", max_length=MAX_URL_LENGTH, where=at),
            offset_ms=payload.integer(
                stream, "offsetInMilliseconds", low=0, high=MAX_LONG, default=0, where=at
            ),
            expected_previous=expected or None,
            content_type=ContentType.MIXABLE if behavior == "ATTENUATE" else ContentType.NONMIXABLE,
            source=directive.source,
        )


def _parse_expiry(value: str | None) -> datetime.datetime | None:
    """stream.expiryTime (ISO 8601, e.g. 2024-03-01T08:30:00+0000); None if absent or bad."""
    if value is None:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        _log.info("ignoring an unreadable expiryTime %r", value[:60])
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)


#: Content types an MP3 stream may come with (others need a decoder this client lacks).
MP3_TYPES = frozenset(
    {
        "audio/mpeg",
        "audio/mp3",
        "audio/mpeg3",
        "audio/x-mpeg",
        "audio/x-mp3",
        "application/octet-stream",
        "binary/octet-stream",
        "",
    }
)


#: Content types of playlists (M3U, M3U8/HLS, PLS).
PLAYLIST_TYPES = frozenset(
    {
        "audio/x-mpegurl",
        "audio/mpegurl",
        "application/x-mpegurl",
        "application/vnd.apple.mpegurl",
        "audio/x-scpls",
    }
)
#: A playlist is read whole, up to this size.
MAX_PLAYLIST_BYTES = 64 * 1024
#: Playlists nested in playlists, at most.
MAX_PLAYLIST_DEPTH = 4
#: URLs (playlists and their entries, HLS segments included) one Play visits at most.
MAX_PLAYLIST_URLS = 4096


def _looks_like_playlist(url: str) -> bool:
    path = httpx.URL(url).path.lower()
    return path.endswith((".m3u", ".m3u8", ".pls"))


def parse_playlist(text: str, base_url: str) -> list[str]:
    """The entries of an M3U/M3U8 (HLS media playlist: its segments) or PLS playlist, as
    absolute URLs in order."""
    entries: list[str] = []
    lines = [line.strip() for line in text.splitlines()]
    if lines and lines[0].lower() == "[playlist]":
        for line in lines:
            key, _, value = line.partition("=")
            if key.lower().startswith("file") and value:
                entries.append(value.strip())
    else:
        entries = [line for line in lines if line and not line.startswith("#")]
    base = httpx.URL(base_url)
    return [str(base.join(entry)) for entry in entries]


async def _read_bounded(response: httpx.Response, limit: int) -> str:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise _Failed(MediaError.INVALID_REQUEST, f"playlist larger than {limit} bytes")
    return body.decode("utf-8", "replace")


class PlayQueue:
    """The current item and those queued behind it (no I/O)."""

    def __init__(self, max_queue: int = MAX_QUEUE) -> None:
        self.max_queue = max_queue
        self.current: AudioItem | None = None
        self.queue: collections.deque[AudioItem] = collections.deque()

    def play(self, item: AudioItem, behavior: str) -> tuple[bool, list[AudioItem]]:
        """Apply a Play; returns (accepted, items dropped from the queue).

        REPLACE_ALL empties the queue (the caller stops the current item); ENQUEUE appends;
        REPLACE_ENQUEUED replaces the queue. An item whose `expectedPreviousToken` is not the
        token it would follow is ignored (avs-protocol 14.2).
        """
        dropped: list[AudioItem] = []
        if behavior in ("REPLACE_ALL", "REPLACE_ENQUEUED"):
            dropped, self.queue = list(self.queue), collections.deque()
        if behavior != "REPLACE_ALL" and item.expected_previous is not None:
            last = self.queue[-1] if self.queue else self.current
            if last is None or last.token != item.expected_previous:
                return False, dropped
        if len(self.queue) >= self.max_queue:
            return False, dropped
        self.queue.append(item)
        return True, dropped

    def clear(self) -> list[AudioItem]:
        """Drop the queued items; returns them."""
        dropped, self.queue = list(self.queue), collections.deque()
        return dropped

    def next(self) -> AudioItem | None:
        """Make the first queued item current (None when the queue is empty)."""
        self.current = self.queue.popleft() if self.queue else None
        return self.current


class PlaybackMonitor:
    """Progress reports and stutter of one stream, fed its track position (no I/O).

    Reports follow the track position, so pauses and underruns do not count (avs-protocol
    14.3): the delay fires once when the position reaches it (never if the Play offset is past
    it), the interval each time the position crosses a multiple of it. A stutter starts when
    nothing was queued for playback for `stutter_ms` while the stream is still being read,
    and finishes when audio is queued again.
    """

    def __init__(self, item: AudioItem, stutter_ms: int = 200) -> None:
        self.delay = item.report_delay_ms
        if self.delay is not None and item.offset_ms >= self.delay:
            self.delay = None
        self.interval = item.report_interval_ms
        self._next_interval = (
            None if self.interval is None else (item.offset_ms // self.interval + 1) * self.interval
        )
        self.stutter_ms = stutter_ms
        self._empty_since: float | None = None
        self.stutter_started: float | None = None

    def update(
        self, offset_ms: int, queued: bool, reading: bool, now: float
    ) -> list[tuple[str, dict[str, Any]]]:
        """The events due at track position `offset_ms` (`queued`: audio waits to be played;
        `reading`: the stream is not fully read yet; `now`: seconds)."""
        due: list[tuple[str, dict[str, Any]]] = []
        if self.delay is not None and offset_ms >= self.delay:
            self.delay = None
            due.append(("ProgressReportDelayElapsed", {}))
        step, next_at = self.interval, self._next_interval
        if step is not None and next_at is not None and offset_ms >= next_at:
            self._next_interval = (offset_ms // step + 1) * step
            due.append(("ProgressReportIntervalElapsed", {}))
        if queued or not reading:
            self._empty_since = None
            if self.stutter_started is not None:
                duration = round((now - self.stutter_started) * 1000)
                self.stutter_started = None
                due.append(("PlaybackStutterFinished", {"stutterDurationInMilliseconds": duration}))
        elif self._empty_since is None:
            self._empty_since = now
        elif self.stutter_started is None and now - self._empty_since >= self.stutter_ms / 1000:
            self.stutter_started = self._empty_since
            due.append(("PlaybackStutterStarted", {}))
        return due


class _Skip(AudioSink):
    """Drops the first `skip` bytes written (a Play's offset), passes the rest on."""

    def __init__(self, sink: AudioSink, skip: int) -> None:
        self.sink, self.skip = sink, skip

    @property
    def format(self) -> Any:
        return self.sink.format

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.skip:
            cut = min(self.skip, len(data))
            self.skip -= cut
            data = memoryview(data)[cut:]
        if len(data):
            await self.sink.write(data)

    async def drain(self) -> None:
        await self.sink.drain()

    async def stop(self) -> None:
        await self.sink.stop()

    async def aclose(self) -> None:
        await self.sink.stop()


class AudioPlayerAgent(CapabilityAgent):
    """Plays AudioPlayer streams on a mixer channel (the client's Content channel)."""

    namespace = "AudioPlayer"
    # 1.3: interruptedBehavior (avs-protocol 14.1). 1.4/1.5 additions are not implemented.
    version = "1.3"
    #: The focus channel music plays on (avs-protocol 13.1).
    channel = "Content"

    def __init__(
        self,
        output: MixerChannel,
        *,
        http: httpx.AsyncClient | None = None,
        verify: ssl.SSLContext | bool = True,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        """Create the agent.

        Args:
            output: the mixer channel music is written to (ducked and paused there).
            http: the client for https media (default: one of its own, certificates verified).
            verify: certificate verification of that own client (an SSLContext to trust a
                private CA; never False in production).
            max_queue: items at most waiting behind the current one.
        """
        super().__init__()
        self.output = output
        self.items = PlayQueue(max_queue)
        self.activity = PlayerActivity.IDLE
        self.token = ""
        self._own_http = http is None
        self._http = http
        self._verify = verify
        self._player: asyncio.Task[None] | None = None
        self._base_frames = 0
        self._item_offset = 0
        self._offset_ms = 0
        self._paused = False

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {"Play": self._on_play, "Stop": self._on_stop, "ClearQueue": self._on_clear}

    # -- state -----------------------------------------------------------------------------

    @property
    def offset_ms(self) -> int:
        """Milliseconds into the current stream: the Play offset plus what the mixer played."""
        if self.activity in (PlayerActivity.PLAYING, PlayerActivity.PAUSED):
            played = self.output.frames_played - self._base_frames
            rate = self.output.mixer.format.rate
            return self._item_offset + played * 1000 // rate
        return self._offset_ms

    def context_states(self) -> list[ContextState]:
        return [
            ContextState(
                namespace=self.namespace,
                name="PlaybackState",
                payload={
                    "token": self.token,
                    "offsetInMilliseconds": self.offset_ms,
                    "playerActivity": self.activity.value,
                },
            )
        ]

    def _set(self, activity: PlayerActivity) -> None:
        if activity not in (PlayerActivity.PLAYING, PlayerActivity.PAUSED):
            self._offset_ms = self.offset_ms
        self.activity = activity

    async def _event(self, name: str, payload: dict[str, Any] | None = None) -> None:
        if payload is None:
            payload = {"token": self.token, "offsetInMilliseconds": self.offset_ms}
        await self.messenger.post_event(Event.build(self.namespace, name, payload))

    # -- directives ------------------------------------------------------------------------

    async def _on_play(self, directive: Directive) -> None:
        item = AudioItem.from_play(directive)
        behavior = payload.choice(
            directive.payload, "playBehavior", PLAY_BEHAVIORS, default="ENQUEUE"
        )
        cid = cid_of(item.url)
        if cid is not None:
            try:
                item.reader = self.services.attachments.open(directive.source, cid)
            except AttachmentError as exc:
                raise DirectiveError(str(exc)) from exc
        accepted, dropped = self.items.play(item, behavior)
        for old in dropped:
            await self._release(old)
        if not accepted:
            _log.info("Play %r ignored (expectedPreviousToken or full queue)", item.token)
            await self._release(item)
            return
        if behavior == "REPLACE_ALL":
            await self._stop_current()
        self._ensure_player()

    async def _on_stop(self, directive: Directive) -> None:
        for old in self.items.clear():
            await self._release(old)
        await self._stop_current()

    async def _on_clear(self, directive: Directive) -> None:
        # The SDK reads a missing clearBehavior as CLEAR_ENQUEUED (avs-protocol 14.2).
        clear = payload.choice(
            directive.payload, "clearBehavior", CLEAR_BEHAVIORS, default="CLEAR_ENQUEUED"
        )
        for old in self.items.clear():
            await self._release(old)
        if clear == "CLEAR_ALL":
            await self._stop_current()
        await self._event("PlaybackQueueCleared", {})

    @staticmethod
    async def _release(item: AudioItem) -> None:
        if item.reader is not None:
            await item.reader.aclose()

    # -- playback --------------------------------------------------------------------------

    def _ensure_player(self) -> None:
        if self._player is None or self._player.done():
            self._player = asyncio.get_running_loop().create_task(self._run())

    async def _stop_current(self) -> None:
        player, self._player = self._player, None
        if player is None or player.done():
            return
        player.cancel()
        await asyncio.gather(player, return_exceptions=True)
        await self.output.stop()
        self.output.mixer.resume(self.output.name)
        self._paused = False
        self._set(PlayerActivity.STOPPED)
        await self._event("PlaybackStopped")
        await self.services.focus.release(self.channel, self)
        if self.items.queue:
            self._ensure_player()

    async def _run(self) -> None:
        while (item := self.items.next()) is not None:
            try:
                await self._play(item)
            except Exception as exc:  # a bug must not end the queue silently
                _log.exception("stream %r failed", item.token)
                await self._release(item)
                await self._fail(item, MediaError.INTERNAL_DEVICE_ERROR, repr(exc))
        await self.services.focus.release(self.channel, self)
        if self.activity is PlayerActivity.FINISHED:
            self._set(PlayerActivity.IDLE)

    async def _play(self, item: AudioItem) -> None:
        self.token = item.token
        self._item_offset = item.offset_ms
        self._base_frames = self.output.frames_played
        await self.services.focus.acquire(self.channel, self, item.content_type)
        fmt = self.output.format
        skip = fmt.rate * item.offset_ms // 1000 * fmt.frame_size
        mp3 = Mp3Sink(_Skip(self.output, skip))
        self._set(PlayerActivity.PLAYING)
        await self._event("PlaybackStarted")
        reading = [True]
        monitor = asyncio.get_running_loop().create_task(self._monitor(item, mp3, reading))
        try:
            async for chunk in self._open(item):
                await mp3.write(chunk)
            reading[0] = False
            await self._event("PlaybackNearlyFinished")
            await mp3.drain()
        except _Failed as exc:
            await mp3.stop()
            await self._fail(item, exc.error, str(exc))
            return
        except (AudioError, AttachmentError) as exc:
            await mp3.stop()
            await self._fail(item, MediaError.INTERNAL_DEVICE_ERROR, str(exc))
            return
        except asyncio.CancelledError:  # Stop, REPLACE_ALL, focus lost: end the decoder too
            await asyncio.shield(mp3.stop())
            raise
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
            await self._release(item)
        self._set(PlayerActivity.FINISHED)
        await self._event("PlaybackFinished")

    async def _monitor(self, item: AudioItem, mp3: Mp3Sink, reading: list[bool]) -> None:
        watch = PlaybackMonitor(item)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(MONITOR_PERIOD)
            if self.activity is PlayerActivity.PAUSED:
                continue
            decoder = mp3.decoder
            pending = decoder is not None and decoder.pending_frames > 0
            queued = self.output.buffered_ms > 0 or pending
            for name, extra in watch.update(self.offset_ms, queued, reading[0], loop.time()):
                if name == "PlaybackStutterStarted":
                    self._set(PlayerActivity.BUFFER_UNDERRUN)
                elif name == "PlaybackStutterFinished":
                    self.activity = PlayerActivity.PLAYING
                payload = {"token": self.token, "offsetInMilliseconds": self.offset_ms, **extra}
                await self._event(name, payload)

    async def _fail(self, item: AudioItem, error: MediaError, message: str) -> None:
        _log.warning("stream %r failed: %s", item.token, message)
        self._set(PlayerActivity.STOPPED)
        await self._event(
            "PlaybackFailed",
            {
                "token": item.token,
                "currentPlaybackState": {
                    "token": self.token,
                    "offsetInMilliseconds": self.offset_ms,
                    "playerActivity": self.activity.value,
                },
                "error": {"type": error.value, "message": message[:500]},
            },
        )

    async def _open(self, item: AudioItem) -> AsyncIterator[bytes]:
        if item.reader is not None:
            async with item.reader:
                async for chunk in item.reader:
                    yield bytes(chunk)
            return
        if not item.url.lower().startswith("https://"):
            raise _Failed(MediaError.INVALID_REQUEST, f"not an https URL: {item.url[:200]}")
        if item.expires is not None and item.expires <= datetime.datetime.now(datetime.UTC):
            raise _Failed(MediaError.INVALID_REQUEST, f"the URL expired at {item.expires}")
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=MEDIA_TIMEOUT,
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                verify=self._verify,
            )
        async for chunk in self._fetch(item.url, visited=set(), depth=0):
            yield chunk

    async def _fetch(self, url: str, visited: set[str], depth: int) -> AsyncIterator[bytes]:
        # One URL: a stream, or a playlist (M3U, M3U8, PLS) whose entries play one after the
        # other, nested at most MAX_PLAYLIST_DEPTH deep; a URL seen before is a loop, and one
        # Play visits at most MAX_PLAYLIST_URLS URLs (segments included).
        if url in visited:
            raise _Failed(MediaError.INVALID_REQUEST, f"playlist loop at {url[:200]}")
        if len(visited) >= MAX_PLAYLIST_URLS:
            raise _Failed(MediaError.INVALID_REQUEST, "too many playlist entries")
        visited.add(url)
        assert self._http is not None
        try:
            async with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    body = (await response.aread())[:200].decode("utf-8", "replace")
                    kind = (
                        MediaError.INTERNAL_SERVER_ERROR
                        if response.status_code >= 500
                        else MediaError.INVALID_REQUEST
                    )
                    raise _Failed(kind, f"HTTP {response.status_code}: {body}")
                kind_of = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind_of in PLAYLIST_TYPES or _looks_like_playlist(url):
                    if depth >= MAX_PLAYLIST_DEPTH:
                        raise _Failed(MediaError.INVALID_REQUEST, "playlists nested too deep")
                    text = await _read_bounded(response, MAX_PLAYLIST_BYTES)
                    entries = parse_playlist(text, str(response.url))
                    if not entries:
                        raise _Failed(MediaError.INVALID_REQUEST, f"empty playlist {url[:200]}")
                else:
                    if kind_of not in MP3_TYPES:
                        raise _Failed(
                            MediaError.INTERNAL_DEVICE_ERROR,
                            f"unsupported media type {kind_of!r}: only MP3 is decoded",
                        )
                    async for chunk in response.aiter_bytes():
                        yield chunk
                    return
        except httpx.TooManyRedirects as exc:
            raise _Failed(MediaError.INVALID_REQUEST, f"too many redirects: {exc}") from exc
        except httpx.TransportError as exc:
            raise _Failed(MediaError.SERVICE_UNAVAILABLE, f"media unreachable: {exc}") from exc
        for entry in entries:
            if not entry.lower().startswith("https://"):
                raise _Failed(MediaError.INVALID_REQUEST, f"not an https URL: {entry[:200]}")
            async for chunk in self._fetch(entry, visited, depth + 1):
                yield chunk

    # -- focus -----------------------------------------------------------------------------

    async def focus_changed(self, channel: str, state: FocusState) -> None:
        """Duck or pause in the background, resume in the foreground, stop on NONE (13.3)."""
        mixer, name = self.output.mixer, self.output.name
        if state is FocusState.NONE:
            if self._player is not None and not self._player.done():
                asyncio.get_running_loop().create_task(self._stop_current())
            return
        behavior = self.services.focus.behavior(channel)
        if state is FocusState.FOREGROUND:
            mixer.duck(name, False)
            if self._paused:
                self._paused = False
                mixer.resume(name)
                self._set(PlayerActivity.PLAYING)
                await self._event("PlaybackResumed")
        elif behavior is MixingBehavior.MAY_DUCK:
            mixer.duck(name)
        elif not self._paused and self.activity is PlayerActivity.PLAYING:
            self._paused = True
            mixer.pause(name)
            self._set(PlayerActivity.PAUSED)
            await self._event("PlaybackPaused")

    async def aclose(self) -> None:
        """Stop playback and drop the queue (the sink stays the application's)."""
        for old in self.items.clear():
            await self._release(old)
        player, self._player = self._player, None
        if player is not None and not player.done():
            player.cancel()
            await asyncio.gather(player, return_exceptions=True)
            await self.output.stop()
        if self._own_http and self._http is not None:
            await self._http.aclose()
