"""The AudioPlayer interface (avs-protocol 14): Play, Stop and ClearQueue, played on the Content
channel of the client's mixer under audio focus (13.3).

`PlayQueue` is the sans-IO part: the current item and the queue, and what Play (REPLACE_ALL,
ENQUEUE, REPLACE_ENQUEUED, `expectedPreviousToken`) and ClearQueue do to them. The agent plays
items one after another in one task: from a `cid:` attachment or an https URL (httpx,
certificate verified, redirects bounded, https only; the access token goes only to the hosts
in `token_hosts`), through M3U/M3U8 (HLS) and PLS playlists. MP3 is decoded by `Mp3Sink`
(miniaudio); AAC, MP4/M4A, MPEG-TS (HLS segments), Ogg, Opus, FLAC and WAV by `MediaSink`
(PyAV, the `media` extra; without it such a stream fails with a PlaybackFailed that names the
extra). The offset it reports is what the mixer has played of the item (samples, not wall
clock). A Play offset on an MP3 stream is fetched with an HTTP range (`Mp3SeekIndex`); other
formats, and servers without ranges, are decoded from the start and the offset discarded.
Live HLS playlists are reloaded as they grow (`LiveHls`).
Focus: music acquires Content as MIXABLE when Play asks `interruptedBehavior: ATTENUATE`, else
NONMIXABLE; in the background it ducks or pauses (PlaybackPaused / PlaybackResumed); losing the
channel stops it (PlaybackStopped).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import enum
import logging
import ssl
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any

import httpx

from avsclient.agents.base import CapabilityAgent, DirectiveHandler
from avsclient.agents.payload import choice, integer, obj, text
from avsclient.attachments import AttachmentReader, cid_of
from avsclient.audio import AudioSink, MixerChannel, Mp3Sink
from avsclient.audio.media import MediaSink
from avsclient.audio.mp3 import (
    Id3TagReader,
    Mp3SeekIndex,
    id3v2_length,
    leading_frames_dropped,
)
from avsclient.config import Region
from avsclient.exceptions import AttachmentError, AudioError, AVSError, DirectiveError
from avsclient.focus import ContentType, FocusState, MixingBehavior
from avsclient.messages import ContextState, Directive, Event

__all__ = [
    "AudioItem",
    "AudioPlayerAgent",
    "MediaError",
    "PlayQueue",
    "PlaybackMonitor",
    "PlayerActivity",
    "TOKEN_HOSTS",
    "LiveHls",
    "is_hls",
    "is_live_hls",
    "parse_playlist",
    "sends_token",
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
#: Longest stream URL and token accepted in a Play.
MAX_URL = 8 * 1024
MAX_TOKEN = 2 * 1024
#: The largest offset, delay or interval in milliseconds: a Java long (avs-protocol 14.2).
MAX_MS = 2**63 - 1
#: StreamMetadataExtracted is sent at most this often (seconds; the SDK's limit, 14.3).
METADATA_PERIOD = 1.0
#: Tags sent in StreamMetadataExtracted (strings; the SDK sends only `title`).
METADATA_TAGS = ("title", "artist", "album")

#: Hosts whose media requests carry the device's access token: the AVS hosts the reference
#: names (avs-protocol 1.1). Which media hosts want the token is not documented (unconfirmed),
#: so AudioPlayerAgent takes the set as `token_hosts`; no other host ever sees the token.
TOKEN_HOSTS = frozenset(httpx.URL(url).host for region in Region for url in region.value)


def sends_token(url: str, hosts: Collection[str]) -> bool:
    """True if a request for `url` may carry the access token: https, to one of `hosts`
    (exact host names; no suffix matching, so `evil-amazon.com` is not `amazon.com`)."""
    parsed = httpx.URL(url)
    return parsed.scheme == "https" and parsed.host.lower() in hosts


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


#: Activities of a stream that has started (a pause then sends PlaybackPaused).
_STARTED = frozenset({PlayerActivity.PLAYING, PlayerActivity.BUFFER_UNDERRUN})


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
        """The item of a Play directive, read through the payload readers (avs-protocol 14.2;
        optional fields may be missing).

        Raises:
            DirectiveError: the stream token or URL is missing, or a field has a bad type or
                value.
        """
        where = "audioItem.stream"
        stream = obj(obj(directive.payload, "audioItem"), "stream", where="audioItem")
        requestor = obj(directive.payload, "playRequestor", default=None)
        if requestor is not None:  # 1.3: the SDK rejects one missing either field (14.2)
            text(requestor, "type", max_length=256, where="playRequestor")
            text(requestor, "id", max_length=MAX_TOKEN, where="playRequestor")
        report = obj(stream, "progressReport", default={}, where=where)
        rwhere = where + ".progressReport"
        delay = integer(
            report, "progressReportDelayInMilliseconds", low=0, high=MAX_MS, default=0, where=rwhere
        )
        interval = integer(
            report,
            "progressReportIntervalInMilliseconds",
            low=0,
            high=MAX_MS,
            default=0,
            where=rwhere,
        )
        # AVS sends an empty expectedPreviousToken for a Play that follows nothing.
        expected = stream.get("expectedPreviousToken")
        behavior = choice(
            stream, "interruptedBehavior", ("PAUSE", "ATTENUATE"), default="PAUSE", where=where
        )
        return cls(
            token=text(stream, "token", max_length=MAX_TOKEN, where=where),
            url=text(stream, "url", max_length=MAX_URL, where=where),
            offset_ms=integer(
                stream, "offsetInMilliseconds", low=0, high=MAX_MS, default=0, where=where
            ),
            expected_previous=(
                None
                if expected == ""
                else text(
                    stream, "expectedPreviousToken", max_length=MAX_TOKEN, default=None, where=where
                )
            ),
            content_type=ContentType.MIXABLE if behavior == "ATTENUATE" else ContentType.NONMIXABLE,
            report_delay_ms=delay or None,
            report_interval_ms=interval or None,
            expires=_parse_expiry(
                text(stream, "expiryTime", max_length=64, default=None, where=where)
            ),
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


#: Content types an MP3 stream may come with (a generic type is MP3 unless its URL says
#: otherwise).
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
#: Content types PyAV decodes (the `media` extra): AAC (ADTS, MP4/M4A), MPEG-TS (HLS
#: segments), Ogg Vorbis and Opus, FLAC, WAV.
MEDIA_TYPES = frozenset(
    {
        "audio/aac",
        "audio/aacp",
        "audio/x-aac",
        "audio/mp4",
        "audio/m4a",
        "audio/x-m4a",
        "video/mp4",
        "video/mp2t",
        "audio/mp2t",
        "audio/ogg",
        "application/ogg",
        "audio/opus",
        "audio/flac",
        "audio/x-flac",
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
    }
)
#: File name endings that mean a PyAV format when the content type is generic.
MEDIA_SUFFIXES = (".aac", ".m4a", ".mp4", ".m4s", ".ts", ".ogg", ".oga", ".opus", ".flac", ".wav")

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
#: A Play offset on an https stream: the stream's head asked first (a range), to learn
#: where the offset lies (MP3: an ID3v2 tag, the first frames, a Xing/VBRI table).
SEEK_PROBE_BYTES = 16 * 1024
#: Bytes of frames read before deciding (the index; the frames at the cut).
SEEK_HEAD_BYTES = 8 * 1024
#: Seconds fetched before the offset: the frames at the cut decode to nothing or to the
#: bit reservoir's leftovers, and a table's estimate may land late.
SEEK_LEAD_S = 0.2


def _range_total(content_range: str) -> int | None:
    """The full length of `Content-Range: bytes a-b/N` (None if unknown: `*`)."""
    total = content_range.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


def _range_start(content_range: str) -> int | None:
    """The first byte of `Content-Range: bytes a-b/N`."""
    first = content_range.partition(" ")[2].partition("-")[0].strip()
    return int(first) if first.isdigit() else None


def _looks_like_playlist(url: str) -> bool:
    path = httpx.URL(url).path.lower()
    return path.endswith((".m3u", ".m3u8", ".pls"))


def _media_kind(content_type: str, url: str) -> str | None:
    """ "mp3", "media" (PyAV) or None (not a format this client plays)."""
    if content_type in MEDIA_TYPES:
        return "media"
    if content_type in MP3_TYPES:
        generic = content_type not in ("audio/mpeg", "audio/mp3", "audio/mpeg3")
        if generic and httpx.URL(url).path.lower().endswith(MEDIA_SUFFIXES):
            return "media"
        return "mp3"
    return None


def is_hls(text: str) -> bool:
    """True for an HLS playlist (RFC 8216 tags), whose entries are segments of one stream."""
    return "#EXT-X-" in text


def parse_playlist(text: str, base_url: str) -> list[str]:
    """The entries of an M3U/M3U8 or PLS playlist, as absolute URLs in order.

    HLS (RFC 8216): a media playlist gives its init section (EXT-X-MAP) then its segments; a
    master playlist gives its first variant only (one stream, not every rendition).
    """
    entries: list[str] = []
    lines = [line.strip() for line in text.splitlines()]
    if lines and lines[0].lower() == "[playlist]":
        for line in lines:
            key, _, value = line.partition("=")
            if key.lower().startswith("file") and value:
                entries.append(value.strip())
    else:
        variant = False
        for line in lines:
            if line.startswith("#EXT-X-STREAM-INF"):
                variant = True
            elif line.startswith("#EXT-X-MAP:") and 'URI="' in line:
                entries.append(line.split('URI="', 1)[1].split('"', 1)[0])
            elif line and not line.startswith("#"):
                entries.append(line)
                if variant:
                    break
    base = httpx.URL(base_url)
    return [str(base.join(entry)) for entry in entries]


def is_live_hls(text: str) -> bool:
    """True for an HLS media playlist without EXT-X-ENDLIST: a live one, reloaded as it grows
    (RFC 8216 6.2.1, 6.3.4)."""
    return "#EXTINF" in text and "#EXT-X-ENDLIST" not in text


class LiveHls:
    """What to play of a live HLS media playlist, and when to reload it (no I/O).

    Each `load(text, now)` gives the segments not played yet (by media sequence number, so a
    sliding window is followed); `reload_at` is when to load it again: one target duration
    after a load that brought something new, half of one after a load that did not (RFC 8216
    6.3.4). `ended` once EXT-X-ENDLIST appears. A playlist that brings nothing new for
    `stuck_targets` target durations is stuck (`load` raises: the stream stopped).
    """

    def __init__(self, base_url: str, *, stuck_targets: float = 3.0) -> None:
        self.base = httpx.URL(base_url)
        self.stuck_targets = stuck_targets
        self.target = 1.0
        self.ended = False
        self.reload_at = 0.0
        self.loads = 0
        self._next_seq: int | None = None
        self._changed_at = 0.0

    def load(self, text: str, now: float) -> list[str]:
        """The new segments of a (re)loaded playlist, as absolute URLs (the init section,
        EXT-X-MAP, first on the first load).

        Raises:
            _Failed: the playlist has not grown for `stuck_targets` target durations.
        """
        sequence, segments, init = 0, [], None
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("#EXT-X-TARGETDURATION:"):
                with contextlib.suppress(ValueError):
                    self.target = min(60.0, max(0.1, float(line.partition(":")[2])))
            elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                with contextlib.suppress(ValueError):
                    sequence = int(line.partition(":")[2])
            elif line.startswith("#EXT-X-MAP:") and 'URI="' in line:
                init = line.split('URI="', 1)[1].split('"', 1)[0]
            elif line == "#EXT-X-ENDLIST":
                self.ended = True
            elif line and not line.startswith("#"):
                segments.append(line)
        first = self._next_seq is None
        start = sequence if self._next_seq is None else self._next_seq
        new = [seg for n, seg in enumerate(segments, sequence) if n >= start]
        self._next_seq = max(start, sequence + len(segments))
        self.loads += 1
        if first and init is not None:
            new.insert(0, init)
        if new or first or self.ended:
            self._changed_at = now
            self.reload_at = now + self.target
        else:
            if now - self._changed_at >= self.stuck_targets * self.target:
                raise _Failed(
                    MediaError.SERVICE_UNAVAILABLE,
                    f"live playlist did not grow for {now - self._changed_at:.1f} s",
                )
            self.reload_at = now + self.target / 2
        return [str(self.base.join(seg)) for seg in new]


@dataclass(slots=True)
class _Part:
    """Bytes of a stream; `start`: the first of a resource that needs a fresh decoder;
    `at_ms`: with `start`, the stream time of the first sample it decodes to, when the bytes
    were fetched from inside the stream (a range), else None (from its beginning)."""

    kind: str
    start: bool
    data: bytes
    at_ms: float | None = None


async def _read_bytes(response: httpx.Response, limit: int) -> bytearray:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise _Failed(MediaError.INVALID_REQUEST, f"playlist larger than {limit} bytes")
    return body


async def _read_bounded(response: httpx.Response, limit: int) -> str:
    return (await _read_bytes(response, limit)).decode("utf-8", "replace")


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


def _pending(decoder: Mp3Sink | MediaSink) -> bool:
    """True while compressed input waits to be decoded."""
    if isinstance(decoder, MediaSink):
        return decoder.pending
    mp3 = decoder.decoder
    return mp3 is not None and mp3.pending_frames > 0


def _media_failure(exc: httpx.HTTPError) -> _Failed:
    """The PlaybackFailed a media request's httpx error means: a redirect loop is the
    request's fault (INVALID_REQUEST), anything else on the way is the service's."""
    if isinstance(exc, httpx.TooManyRedirects):
        return _Failed(MediaError.INVALID_REQUEST, f"too many redirects: {exc}")
    return _Failed(MediaError.SERVICE_UNAVAILABLE, f"media unreachable: {exc}")


async def _https_only(request: httpx.Request) -> None:
    # Every request, redirects included, stays on https: a redirect to http is refused before
    # anything is sent.
    if request.url.scheme != "https":
        raise _Failed(MediaError.INVALID_REQUEST, f"redirected to a non-https URL {request.url}")


class _Skip(AudioSink):
    """Drops the first `skip` bytes written (a Play's offset), passes the rest on."""

    def __init__(self, sink: AudioSink, skip: int) -> None:
        self.sink, self.skip = sink, skip

    def skip_to(self, ms: float) -> None:
        """Drop the first `ms` of audio (from now on) instead."""
        fmt = self.sink.format
        self.skip = max(0, round(ms * fmt.rate / 1000)) * fmt.frame_size

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
        token_hosts: Collection[str] = TOKEN_HOSTS,
    ) -> None:
        """Create the agent.

        Args:
            output: the mixer channel music is written to (ducked and paused there).
            http: the client for https media (default: one of its own, certificates verified).
            verify: certificate verification of that own client (an SSLContext to trust a
                private CA; never False in production).
            max_queue: items at most waiting behind the current one.
            token_hosts: hosts whose https media requests carry the access token (exact
                names; default `TOKEN_HOSTS`). httpx drops the token on a redirect to
                another host.
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
        self._held = False  # paused from its start (began in the background)
        self.token_hosts = frozenset(host.lower() for host in token_hosts)
        self._tags: dict[str, str] = {}
        self._tags_sent: dict[str, str] = {}
        self._tags_sent_at: float | None = None
        self._decoders: list[Mp3Sink | MediaSink] = []

    @property
    def decoder(self) -> Mp3Sink | MediaSink | None:
        """The decoder of the stream playing, if any (its queue shows what is buffered)."""
        return self._decoders[0] if self._decoders else None

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
        behavior = choice(
            directive.payload,
            "playBehavior",
            ("REPLACE_ALL", "ENQUEUE", "REPLACE_ENQUEUED"),
            default="ENQUEUE",
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
        # A missing clearBehavior is CLEAR_ENQUEUED, as in the SDK (avs-protocol 14.2).
        behavior = choice(
            directive.payload,
            "clearBehavior",
            ("CLEAR_ENQUEUED", "CLEAR_ALL"),
            default="CLEAR_ENQUEUED",
        )
        for old in self.items.clear():
            await self._release(old)
        if behavior == "CLEAR_ALL":
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

    async def _started(self) -> None:
        # PlaybackStarted once the stream delivers, as the SDK sends it when its media player
        # began: a URL that fails at once (404, refused) ends with PlaybackFailed alone.
        self._set(PlayerActivity.PLAYING)
        await self._event("PlaybackStarted")

    async def _stop_current(self) -> None:
        player, self._player = self._player, None
        if player is None or player.done():
            return
        player.cancel()
        await asyncio.gather(player, return_exceptions=True)
        await self.output.stop()
        self.output.mixer.resume(self.output.name)
        self._paused = self._held = False
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
        # After the last item ends or fails the SDK returns to IDLE; only a Stop (which
        # cancels this task) leaves STOPPED (avs-protocol 14.4).
        if self.activity in (PlayerActivity.FINISHED, PlayerActivity.STOPPED):
            self._set(PlayerActivity.IDLE)

    async def _play(self, item: AudioItem) -> None:
        self.token = item.token
        self._item_offset = item.offset_ms
        self._base_frames = self.output.frames_played
        self._tags, self._tags_sent, self._tags_sent_at = {}, {}, None
        await self.services.focus.acquire(self.channel, self, item.content_type)
        fmt = self.output.format
        out = _Skip(self.output, fmt.rate * item.offset_ms // 1000 * fmt.frame_size)
        reading = [True]
        decoder: list[Mp3Sink | MediaSink] = []
        self._decoders = decoder
        monitor = asyncio.get_running_loop().create_task(self._monitor(item, decoder, reading))
        try:
            kind = ""
            tags: Id3TagReader | None = None
            started = False
            async for part in self._open(item):
                if not started:
                    started = True
                    await self._started()  # the stream's first bytes are in (14.3)
                if not decoder or (part.start and (part.kind != kind or kind == "media")):
                    if decoder:  # the previous playlist entry ends: let it play out
                        await decoder.pop().drain()
                    if part.at_ms is not None:  # fetched from inside the stream (a range)
                        out.skip_to(item.offset_ms - part.at_ms)
                    decoder.append(self._decoder(part.kind, out))
                    kind = part.kind
                    tags = Id3TagReader() if kind == "mp3" else None
                if tags is not None and (found := tags.feed(part.data)):
                    self._found_tags(found)
                    await self._send_tags(item)
                await decoder[0].write(part.data)
            reading[0] = False
            if not started:
                await self._started()  # an empty stream: started and finished at once
            await self._send_tags(item)
            await self._event("PlaybackNearlyFinished")
            if decoder:
                await decoder[0].drain()
        except _Failed as exc:
            await self._stop_decoder(decoder)
            await self._fail(item, exc.error, str(exc))
            return
        except (AudioError, AttachmentError) as exc:
            await self._stop_decoder(decoder)
            await self._fail(item, MediaError.INTERNAL_DEVICE_ERROR, str(exc))
            return
        except asyncio.CancelledError:  # Stop, REPLACE_ALL, focus lost: end the decoder too
            await asyncio.shield(self._stop_decoder(decoder))
            raise
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
            await self._release(item)
        self._set(PlayerActivity.FINISHED)
        await self._event("PlaybackFinished")

    def _decoder(self, kind: str, out: AudioSink) -> Mp3Sink | MediaSink:
        if kind == "mp3":
            return Mp3Sink(out)
        try:
            return MediaSink(out, on_metadata=self._found_tags)
        except AudioError as exc:  # PyAV missing: say which extra plays this format
            raise _Failed(
                MediaError.INTERNAL_DEVICE_ERROR, f"this format needs the media extra: {exc}"
            ) from exc

    @staticmethod
    async def _stop_decoder(decoder: list[Mp3Sink | MediaSink]) -> None:
        if decoder:
            await decoder[0].stop()

    def _found_tags(self, tags: dict[str, str]) -> None:
        for key in METADATA_TAGS:
            value = tags.get(key)
            if value:
                self._tags[key] = value[:512]

    async def _send_tags(self, item: AudioItem) -> None:
        # StreamMetadataExtracted when the tags changed, at most once per METADATA_PERIOD.
        now = asyncio.get_running_loop().time()
        if not self._tags or self._tags == self._tags_sent:
            return
        if self._tags_sent_at is not None and now - self._tags_sent_at < METADATA_PERIOD:
            return
        self._tags_sent, self._tags_sent_at = dict(self._tags), now
        payload = {"token": item.token, "metadata": dict(self._tags)}
        await self._event("StreamMetadataExtracted", payload)

    async def _monitor(
        self, item: AudioItem, decoder: list[Mp3Sink | MediaSink], reading: list[bool]
    ) -> None:
        watch = PlaybackMonitor(item)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(MONITOR_PERIOD)
            now = loop.time()
            await self._send_tags(item)
            if self.activity not in (PlayerActivity.PLAYING, PlayerActivity.BUFFER_UNDERRUN):
                continue  # paused, or the stream has not started: no stutter, no progress
            pending = bool(decoder) and _pending(decoder[0])
            queued = self.output.buffered_ms > 0 or pending
            for name, extra in watch.update(self.offset_ms, queued, reading[0], now):
                if name == "PlaybackStutterStarted":
                    self._set(PlayerActivity.BUFFER_UNDERRUN)
                elif name == "PlaybackStutterFinished":
                    self.activity = PlayerActivity.PLAYING
                payload = {"token": self.token, "offsetInMilliseconds": self.offset_ms, **extra}
                await self._event(name, payload)

    async def _fail(self, item: AudioItem, error: MediaError, message: str) -> None:
        # currentPlaybackState is the state the failure found (PLAYING, BUFFER_UNDERRUN, ...);
        # then the player stops, and returns to IDLE when nothing follows (avs-protocol 14.4).
        _log.warning("stream %r failed: %s", item.token, message)
        state = {
            "token": self.token,
            "offsetInMilliseconds": self.offset_ms,
            "playerActivity": self.activity.value,
        }
        self._set(PlayerActivity.STOPPED)
        await self._event(
            "PlaybackFailed",
            {
                "token": item.token,
                "currentPlaybackState": state,
                "error": {"type": error.value, "message": message[:500]},
            },
        )

    async def _open(self, item: AudioItem) -> AsyncIterator[_Part]:
        if item.reader is not None:
            start = True
            async with item.reader:
                async for chunk in item.reader:
                    yield _Part("mp3", start, bytes(chunk))  # attachments are MP3 (14.5)
                    start = False
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
                event_hooks={"request": [_https_only]},
            )
        async for part in self._fetch(
            item.url, visited=set(), depth=0, segment=0, offset_ms=item.offset_ms
        ):
            yield part

    async def _headers(self, url: str) -> dict[str, str]:
        if not sends_token(url, self.token_hosts):
            return {}
        try:
            token = await self.services.access_token()
        except AVSError as exc:
            raise _Failed(MediaError.INTERNAL_DEVICE_ERROR, f"no access token: {exc}") from exc
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    async def _check(response: httpx.Response) -> None:
        if response.url.scheme != "https":  # an application's own client
            raise _Failed(MediaError.INVALID_REQUEST, "redirected to a non-https URL")
        if response.status_code >= 400:
            body = (await response.aread())[:200].decode("utf-8", "replace")
            kind = (
                MediaError.INTERNAL_SERVER_ERROR
                if response.status_code >= 500
                else MediaError.INVALID_REQUEST
            )
            raise _Failed(kind, f"HTTP {response.status_code}: {body}")

    async def _fetch(
        self, url: str, visited: set[str], depth: int, segment: int, offset_ms: int = 0
    ) -> AsyncIterator[_Part]:
        # One URL: a stream, or a playlist (M3U, M3U8/HLS, PLS) whose entries play one after
        # the other, nested at most MAX_PLAYLIST_DEPTH deep; a URL seen before is a loop, and
        # one Play visits at most MAX_PLAYLIST_URLS URLs (segments of a live HLS playlist
        # excepted). `segment` > 0: an HLS segment after the first, which continues the same
        # decoder's stream. `offset_ms` > 0 (the Play's own URL): the first request asks for
        # the stream's head only (a range), which for MP3 tells where the offset lies, so
        # that the rest is fetched from there (`_seek`).
        if url in visited:
            raise _Failed(MediaError.INVALID_REQUEST, f"playlist loop at {url[:200]}")
        if len(visited) >= MAX_PLAYLIST_URLS:
            raise _Failed(MediaError.INVALID_REQUEST, "too many playlist entries")
        visited.add(url)
        assert self._http is not None
        headers = await self._headers(url)
        probe = dict(headers)
        if offset_ms > 0:
            probe["Range"] = f"bytes=0-{SEEK_PROBE_BYTES - 1}"
        seek: tuple[str, bytearray, int | None] | None = None
        live: LiveHls | None = None
        try:
            async with self._http.stream("GET", url, headers=probe) as response:
                if response.status_code == 416 and offset_ms > 0:
                    refused = True  # a server refusing ranges: fetch it whole
                else:
                    refused = False
                    await self._check(response)
                entries: list[str] = []
                hls = False
                kind_of = response.headers.get("content-type", "").split(";")[0]
                kind_of = kind_of.strip().lower()
                playlist = kind_of in PLAYLIST_TYPES or _looks_like_playlist(url)
                if refused:
                    pass  # nothing to read: fetched again, whole, below
                elif response.status_code == 206:  # the stream's head (ranges honoured)
                    mp3 = not playlist and _media_kind(kind_of, str(response.url)) == "mp3"
                    head = await _read_bytes(response, SEEK_PROBE_BYTES) if mp3 else None
                    total = _range_total(response.headers.get("content-range", ""))
                    if head is not None:
                        seek = (str(response.url), head, total)
                elif playlist:
                    if depth >= MAX_PLAYLIST_DEPTH:
                        raise _Failed(MediaError.INVALID_REQUEST, "playlists nested too deep")
                    text_ = await _read_bounded(response, MAX_PLAYLIST_BYTES)
                    hls = is_hls(text_)
                    if hls and is_live_hls(text_):
                        live = LiveHls(str(response.url))
                        entries = live.load(text_, asyncio.get_running_loop().time())
                    else:
                        entries = parse_playlist(text_, str(response.url))
                    if not entries and live is None:
                        raise _Failed(MediaError.INVALID_REQUEST, f"empty playlist {url[:200]}")
                else:
                    media = _media_kind(kind_of, str(response.url))
                    if media is None:
                        raise _Failed(
                            MediaError.INTERNAL_DEVICE_ERROR,
                            f"unsupported media type {kind_of!r} at {url[:200]}",
                        )
                    start = segment == 0
                    # The whole stream (a server ignoring the range): the offset is
                    # decoded and discarded.
                    async for chunk in response.aiter_bytes():
                        yield _Part(media, start, chunk)
                        start = False
                    return
        except (httpx.TooManyRedirects, httpx.TransportError) as exc:
            raise _media_failure(exc) from exc
        if seek is not None:
            async for part in self._seek(*seek, headers, offset_ms):
                yield part
            return
        if offset_ms > 0 and not entries:
            # Not MP3, a playlist, or ranges refused: fetch it whole, decode up to the offset.
            visited.discard(url)
            async for part in self._fetch(url, visited, depth, segment):
                yield part
            return
        count = segment
        while True:
            for entry in entries:
                if not entry.lower().startswith("https://"):
                    raise _Failed(MediaError.INVALID_REQUEST, f"not an https URL: {entry[:200]}")
                nested = count if hls else 0
                count += 1
                # A live playlist's segments are new URLs without end: not kept as visited.
                seen = set(visited) if live is not None else visited
                async for part in self._fetch(entry, seen, depth + 1, nested):
                    yield part
            if live is None or live.ended:
                return
            entries = await self._reload(url, live)

    async def _reload(self, url: str, live: LiveHls) -> list[str]:
        # The next load of a live HLS playlist, at the time it asks for.
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, live.reload_at - loop.time()))
        assert self._http is not None
        loaded = loop.time()
        try:
            async with self._http.stream("GET", url, headers=await self._headers(url)) as response:
                await self._check(response)
                text_ = await _read_bounded(response, MAX_PLAYLIST_BYTES)
        except (httpx.TooManyRedirects, httpx.TransportError) as exc:
            raise _media_failure(exc) from exc
        return live.load(text_, loaded)

    async def _seek(
        self,
        url: str,
        head: bytearray,
        total: int | None,
        headers: dict[str, str],
        offset_ms: int,
    ) -> AsyncIterator[_Part]:
        # An MP3 Play offset reached with a range (avs-protocol 14.2 offsetInMilliseconds):
        # `head` is the stream's first bytes. Where the offset lies is known for a constant
        # bitrate (exactly) or from a Xing/VBRI table; the fetch starts a few frames before
        # it, and the decoder is told the time of its first sample, found by decoding the
        # first frames fetched (frames whose bit reservoir lies before the cut give no
        # audio). Without an index, or when the server answers the range with 200 or 416,
        # the stream is fetched whole and decoded up to the offset.
        assert self._http is not None
        if found := Id3TagReader().feed(head):
            self._found_tags(found)
        tag = id3v2_length(head)
        body: bytes | bytearray = head[tag:]
        if tag and len(body) < SEEK_HEAD_BYTES and (total is None or tag < total):
            body = await self._range(url, headers, tag, tag + SEEK_PROBE_BYTES - 1) or b""
        index = Mp3SeekIndex.from_head(body, tag, total)
        target = offset_ms / 1000
        at = None if index is None else index.byte_for(max(0.0, target - SEEK_LEAD_S))
        if index is None or at is None or at <= len(head) or (total is not None and at >= total):
            async for part in self._whole(url, headers):
                yield part
            return
        try:
            async with self._http.stream(
                "GET", url, headers={**headers, "Range": f"bytes={at}-"}
            ) as response:
                if response.status_code != 416:  # 416: fetched whole below
                    await self._check(response)
                    if response.status_code == 200:  # the range ignored: the whole stream
                        start = True
                        async for chunk in response.aiter_bytes():
                            yield _Part("mp3", start, chunk, 0.0 if start else None)
                            start = False
                        return
                    if _range_start(response.headers.get("content-range", "")) != at:
                        raise _Failed(
                            MediaError.INVALID_REQUEST, "the media server sent another range"
                        )
                    stream = response.aiter_bytes()
                    buffered = bytearray()
                    async for chunk in stream:
                        buffered += chunk
                        if len(buffered) >= SEEK_HEAD_BYTES:
                            break
                    where = index.locate(buffered, at)
                    if where is None:
                        raise _Failed(
                            MediaError.INTERNAL_DEVICE_ERROR, "no MP3 frame at the offset"
                        )
                    pos, seconds = where
                    channels = 1 if (buffered[pos + 3] >> 6) == 3 else 2
                    try:
                        dropped = leading_frames_dropped(
                            bytes(buffered[pos:]), index.rate, channels, index.samples_per_frame
                        )
                    except AudioError as exc:
                        raise _Failed(MediaError.INTERNAL_DEVICE_ERROR, str(exc)) from exc
                    seconds += dropped * index.samples_per_frame / index.rate
                    _log.debug("offset %d ms fetched from byte %d (%.3f s)", offset_ms, at, seconds)
                    yield _Part("mp3", True, bytes(buffered[pos:]), seconds * 1000)
                    async for chunk in stream:
                        yield _Part("mp3", False, chunk)
                    return
        except (httpx.TooManyRedirects, httpx.TransportError) as exc:
            raise _media_failure(exc) from exc
        async for part in self._whole(url, headers):
            yield part

    async def _range(
        self, url: str, headers: dict[str, str], first: int, last: int
    ) -> bytearray | None:
        # Bytes first..last of a stream (None unless the server answers with that range).
        assert self._http is not None
        try:
            async with self._http.stream(
                "GET", url, headers={**headers, "Range": f"bytes={first}-{last}"}
            ) as response:
                if response.status_code != 206:
                    return None
                if _range_start(response.headers.get("content-range", "")) != first:
                    return None
                return await _read_bytes(response, last - first + 1)
        except httpx.HTTPError as exc:
            raise _media_failure(exc) from exc

    async def _whole(self, url: str, headers: dict[str, str]) -> AsyncIterator[_Part]:
        # The whole stream, decoded from its start (the offset is skipped after decoding).
        assert self._http is not None
        try:
            async with self._http.stream("GET", url, headers=headers) as response:
                await self._check(response)
                start = True
                async for chunk in response.aiter_bytes():
                    yield _Part("mp3", start, chunk)
                    start = False
        except (httpx.TooManyRedirects, httpx.TransportError) as exc:
            raise _media_failure(exc) from exc

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
                if self._held:
                    self._held = False
                else:
                    self._set(PlayerActivity.PLAYING)
                    await self._event("PlaybackResumed")
        elif behavior is MixingBehavior.MAY_DUCK:
            mixer.duck(name)
        elif not self._paused and self.activity not in _STARTED:
            # Starting in the background (a Play of the dialog still speaking): held until
            # the foreground, without Paused/Resumed events, as it never played.
            self._paused = self._held = True
            mixer.pause(name)
        elif not self._paused:
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
