"""Unit tests of the sans-IO cores and the pipeline fed parts directly (no network)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient.agents import (
    RECOGNIZER_TRANSITIONS,
    RecognizerInput,
    RecognizerMachine,
    RecognizerState,
)
from avsclient.attachments import AttachmentLimits, AttachmentStore, cid_of
from avsclient.dialog import Disposition
from avsclient.directives import DirectivePipeline
from avsclient.exceptions import AttachmentError, RemoteProtocolError, StateError
from avsclient.messages import (
    MAX_DIRECTIVE_DEPTH,
    ContextState,
    Directive,
    Event,
    ExceptionType,
    exception_encountered,
    parse_directive,
)
from avsclient.multipart import Headers


def _raw(namespace: str, name: str, dialog: str | None = None, **payload: Any) -> bytes:
    header: dict[str, Any] = {"namespace": namespace, "name": name, "messageId": "m"}
    if dialog is not None:
        header["dialogRequestId"] = dialog
    return json.dumps({"directive": {"header": header, "payload": payload}}).encode()


def _directive(dialog: str | None, name: str = "Speak") -> Directive:
    return parse_directive(_raw("SpeechSynthesizer", name, dialog))


# -- messages -------------------------------------------------------------------------------


def test_parse_directive_reads_header_and_payload() -> None:
    """A directive part becomes a typed Directive that keeps its raw bytes."""
    raw = _raw("Speaker", "SetVolume", "d-1", volume=3)
    directive = parse_directive(raw, source="s")
    assert directive.key == ("Speaker", "SetVolume")
    assert directive.dialog_request_id == "d-1"
    assert directive.payload == {"volume": 3}
    assert directive.raw == raw and directive.source == "s"


@pytest.mark.parametrize("dialog", ["", "null"])
def test_empty_and_null_dialog_ids_mean_none(dialog: str) -> None:
    """ "" and "null" are no dialog id (avs-protocol 5.0)."""
    assert parse_directive(_raw("System", "X", dialog)).dialog_request_id is None


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"directive": 1}',
        b'{"directive": {"payload": {}}}',
        b'{"directive": {"header": {"namespace": "A", "name": "B"}}}',
        b'{"directive": {"header": {"namespace": "A", "name": "", "messageId": "m"}}}',
        b'{"directive": {"header": {"namespace": "A", "name": "B", "messageId": "m"},'
        b' "payload": []}}',
        b'{"directive": {"header": {"namespace": "A", "name": "B", "messageId": "m",'
        b' "dialogRequestId": 5}}}',
    ],
)
def test_malformed_directives_raise_remote_protocol_error(raw: bytes) -> None:
    """Anything but a well-formed directive is a RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError):
        parse_directive(raw)


def _wrapped(payload_json: str) -> bytes:
    header = '{"namespace": "A", "name": "B", "messageId": "m"}'
    return f'{{"directive": {{"header": {header}, "payload": {payload_json}}}}}'.encode()


@pytest.mark.parametrize(
    ("payload_json", "why"),
    [
        ('{"v": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests deeper than"),
        ('{"a": ' * 50_000 + "1" + "}" * 50_000, "nests deeper than"),
        # Deep but unbalanced: refused for its depth before the decoder sees it.
        ('{"v": ' + "[" * 100_000, "nests deeper than"),
        ('{"v": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"v": NaN}', "not valid JSON"),
        ('{"v": -Infinity}', "not valid JSON"),
    ],
)
def test_hostile_json_is_a_remote_protocol_error(payload_json: str, why: str) -> None:
    """Nesting is bounded before decoding and numbers that are not JSON are refused: the only
    exception is RemoteProtocolError, whatever the bytes (no RecursionError, no ValueError)."""
    with pytest.raises(RemoteProtocolError, match=why):
        parse_directive(_wrapped(payload_json))


def test_nesting_is_counted_outside_strings_up_to_the_limit() -> None:
    """Brackets inside strings (escaped quotes included) do not count; nesting up to
    MAX_DIRECTIVE_DEPTH levels (the whole document) parses, one more does not."""
    inside = '"' + "[{" * 1000 + '\\"[[["'
    assert parse_directive(_wrapped('{"s": ' + inside + "}")).payload == {
        "s": "[{" * 1000 + '"[[['
    }

    # The document itself takes 2 levels (the outer object and "directive"), the payload
    # the rest.
    def nested(levels: int) -> str:
        return '{"a": ' * levels + "1" + "}" * levels

    limit = MAX_DIRECTIVE_DEPTH - 2
    assert parse_directive(_wrapped(nested(limit))).payload["a"]
    with pytest.raises(RemoteProtocolError, match="nests deeper"):
        parse_directive(_wrapped(nested(limit + 1)))
    assert parse_directive(_wrapped(nested(limit + 1)), max_depth=MAX_DIRECTIVE_DEPTH + 1)
    with pytest.raises(RemoteProtocolError, match="nests deeper than 4"):
        parse_directive(_wrapped(nested(3)), max_depth=4)


def test_events_carry_dialog_id_only_when_given() -> None:
    """Event JSON: fresh messageIds, dialogRequestId only when set, context only when asked."""
    a = Event.build("SpeechSynthesizer", "SpeechStarted", {"token": "t"})
    b = Event.build("SpeechRecognizer", "Recognize", dialog_request_id="d")
    assert a.message_id != b.message_id
    assert "dialogRequestId" not in a.to_json()["event"]["header"]
    assert "context" not in a.to_json()
    state = ContextState(namespace="Speaker", name="VolumeState", payload={"volume": 1})
    document = b.to_json(context=[state.to_json()])
    assert document["event"]["header"]["dialogRequestId"] == "d"
    assert document["context"][0]["header"] == {"namespace": "Speaker", "name": "VolumeState"}


def test_exception_encountered_shape() -> None:
    """ExceptionEncountered has the raw directive text, the error, and an empty context."""
    document = exception_encountered(b"{bad", ExceptionType.UNSUPPORTED_OPERATION, "why")
    assert document["context"] == []
    assert document["event"]["payload"] == {
        "unparsedDirective": "{bad",
        "error": {"type": "UNSUPPORTED_OPERATION", "message": "why"},
    }


# -- the recognizer's transition table -------------------------------------------------------


@given(st.sampled_from(RecognizerState), st.sampled_from(RecognizerInput))
def test_recognizer_table_is_total_or_raises(
    state: RecognizerState, event: RecognizerInput
) -> None:
    """Every (state, input) either follows the table or raises StateError, keeping the state."""
    machine = RecognizerMachine()
    machine.state = state
    expected = RECOGNIZER_TRANSITIONS.get((state, event))
    if expected is None:
        assert not machine.accepts(event)
        with pytest.raises(StateError):
            machine.feed(event)
        assert machine.state is state
    else:
        assert machine.accepts(event)
        assert machine.feed(event) is None
        assert machine.state is expected[1]


def test_expect_speech_is_refused_while_recognizing() -> None:
    """ExpectSpeech is valid only while idle or busy (avs-protocol 5.2)."""
    machine = RecognizerMachine()
    machine.feed(RecognizerInput.RECOGNIZE)
    assert not machine.accepts(RecognizerInput.EXPECT_SPEECH)
    assert not machine.accepts(RecognizerInput.RECOGNIZE)


# -- attachments ------------------------------------------------------------------------------


async def _read_all(store: AttachmentStore, source: str, cid: str) -> bytes:
    async with store.open(source, cid) as reader:
        return b"".join([bytes(c) async for c in reader])


async def test_attachment_read_before_it_arrives() -> None:
    """A reader opened first waits for the part."""
    store = AttachmentStore()
    reading = asyncio.create_task(_read_all(store, "s", "x"))
    await asyncio.sleep(0)
    part = store.begin("s", "x")
    await part.put(memoryview(b"abc"))
    await part.put(memoryview(b"def"))
    part.finish()
    assert await reading == b"abcdef"
    assert len(store) == 0


async def test_attachment_arriving_before_its_reader_is_buffered() -> None:
    """A part that comes first is kept until it is opened."""
    store = AttachmentStore()
    part = store.begin("s", "x")
    await part.put(memoryview(b"abc"))
    part.finish()
    assert await _read_all(store, "s", "x") == b"abc"


async def test_cid_scope_is_the_response() -> None:
    """The same cid in another response is another attachment; an ended response without
    the cid fails the reader at once."""
    store = AttachmentStore()
    part = store.begin("s1", "x")
    await part.put(memoryview(b"one"))
    part.finish()
    store.claim("s1", "x")
    store.response_ended("s2")
    with pytest.raises(AttachmentError):
        store.open("s2", "x")
    assert await _read_all(store, "s1", "x") == b"one"


async def test_waiting_reader_fails_when_response_ends_without_part() -> None:
    """A reader waiting for a part that never came gets AttachmentError."""
    store = AttachmentStore()
    reader = store.open("s", "x")
    store.response_ended("s")
    with pytest.raises(AttachmentError):
        await reader.read()
    await reader.aclose()


async def test_reader_backpressure_bounds_the_buffer() -> None:
    """With a reader attached, put() waits once max_buffer bytes are queued."""
    store = AttachmentStore(AttachmentLimits(max_buffer=8))
    reader = store.open("s", "x")
    part = store.begin("s", "x")
    await part.put(memoryview(b"12345678"))
    blocked = asyncio.create_task(part.put(memoryview(b"9")))
    await asyncio.sleep(0.01)
    assert not blocked.done() and part.buffered == 8
    assert bytes(await reader.read()) == b"12345678"
    await blocked
    part.finish()
    assert bytes(await reader.read()) == b"9"
    assert await reader.read() == b""
    await reader.aclose()


async def test_unread_attachments_are_bounded() -> None:
    """Unclaimed parts expire by age and count; an oversized unread part fails."""
    now = [0.0]
    store = AttachmentStore(
        AttachmentLimits(max_unclaimed=2, max_unclaimed_bytes=4, ttl=10), clock=lambda: now[0]
    )
    for cid in "abc":
        store.begin("s", cid).finish()
    assert len(store) == 2 and store.expired == 1  # "a" was evicted
    now[0] = 11.0
    assert store.expire() == 2 and len(store) == 0
    big = store.begin("s", "big")
    await big.put(memoryview(b"12345"))
    assert isinstance(big.error, AttachmentError)


def test_cid_of() -> None:
    """cid: URLs name content ids; other URLs do not."""
    assert cid_of("cid:TTS_1") == "TTS_1"
    assert cid_of("https://x") is None and cid_of(3) is None


# -- the pipeline fed parts directly ----------------------------------------------------------

JSON = Headers((("Content-Type", "application/json; charset=UTF-8"),))


def _attachment_headers(cid: str) -> Headers:
    return Headers((("Content-Type", "application/octet-stream"), ("Content-ID", f"<{cid}>")))


class Recorder:
    """Collects reports and handled directives."""

    def __init__(self) -> None:
        self.reports: list[tuple[bytes, ExceptionType, str]] = []
        self.read: dict[str, bytes] = {}
        self.seen: list[tuple[str, Disposition]] = []

    async def report(self, raw: bytes, error: ExceptionType, message: str) -> None:
        self.reports.append((raw, error, message))

    def observe(self, directive: Directive, disposition: Disposition) -> None:
        self.seen.append((directive.name, disposition))


async def _feed(pipeline: DirectivePipeline, source: str, headers: Headers, data: bytes) -> None:
    await pipeline.part_started(source, headers)
    for i in range(0, len(data), 7):
        await pipeline.part_data(source, memoryview(data)[i : i + 7])
    await pipeline.part_ended(source)


@pytest.mark.parametrize("attachment_first", [False, True])
async def test_pipeline_pairs_directive_and_attachment_in_either_order(
    attachment_first: bool,
) -> None:
    """A Speak finds its attachment whichever part comes first."""
    rec = Recorder()
    pipeline = DirectivePipeline(report=rec.report, observer=rec.observe)

    async def speak(directive: Directive) -> None:
        cid = cid_of(directive.payload["url"])
        assert cid is not None
        rec.read[cid] = await _read_all(pipeline.attachments, directive.source, cid)  # type: ignore[arg-type]

    pipeline.register("SpeechSynthesizer", "Speak", speak)
    parts = [
        (JSON, _raw("SpeechSynthesizer", "Speak", url="cid:a1", token="t")),
        (_attachment_headers("a1"), b"mp3-bytes" * 10),
    ]
    if attachment_first:
        parts.reverse()
    for headers, data in parts:
        await _feed(pipeline, "src", headers, data)
    await pipeline.response_ended("src", None)
    await pipeline.wait_idle()
    assert rec.read == {"a1": b"mp3-bytes" * 10}
    assert rec.reports == []
    assert len(pipeline.attachments) == 0
    await pipeline.aclose()


async def test_pipeline_holds_the_reader_back_when_handlers_fall_behind() -> None:
    """With `max_in_flight` handlers and reports busy, `part_ended` (awaited by the response
    reader before it takes the next chunk) waits; it goes on once one finishes. Unknown
    directives' reports count too. Closing releases a waiting reader at once."""
    rec = Recorder()
    pipeline = DirectivePipeline(report=rec.report, observer=rec.observe, max_in_flight=3)
    release = asyncio.Event()

    async def slow(directive: Directive) -> None:
        await release.wait()

    pipeline.register("Speaker", "SetVolume", slow)
    for volume in range(3):
        await _feed(pipeline, "s", JSON, _raw("Speaker", "SetVolume", volume=volume))
    assert pipeline.in_flight == 3
    fourth = asyncio.create_task(_feed(pipeline, "s", JSON, _raw("Foo", "Unknown")))
    await asyncio.sleep(0.05)
    assert not fourth.done(), "the reader went on although every handler is busy"
    assert pipeline.in_flight == 3
    release.set()
    async with asyncio.timeout(2):
        await fourth
    await pipeline.wait_idle()
    assert [error for _, error, _ in rec.reports] == [ExceptionType.UNSUPPORTED_OPERATION]

    release.clear()
    for volume in range(3):
        await _feed(pipeline, "s", JSON, _raw("Speaker", "SetVolume", volume=volume))
    waiting = asyncio.create_task(_feed(pipeline, "s", JSON, _raw("Speaker", "SetVolume")))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    async with asyncio.timeout(2):
        await pipeline.aclose()
        await waiting
    assert pipeline.in_flight == 0


def test_pipeline_rejects_a_bound_below_one() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        DirectivePipeline(report=Recorder().report, max_in_flight=0)


async def test_pipeline_reports_bad_parts_and_carries_on() -> None:
    """Unknown directives, broken JSON and oversized JSON are reported; other parts skipped;
    the next good directive is still handled."""
    rec = Recorder()
    pipeline = DirectivePipeline(report=rec.report, observer=rec.observe, max_json_part=200)
    handled: list[Directive] = []

    async def handler(directive: Directive) -> None:
        handled.append(directive)

    pipeline.register("Speaker", "SetVolume", handler)
    await _feed(pipeline, "s", JSON, _raw("Foo", "Bar"))
    await _feed(pipeline, "s", JSON, b'{"directive": {')
    await _feed(pipeline, "s", JSON, _raw("Speaker", "SetVolume", pad="x" * 300))
    await _feed(pipeline, "s", Headers((("Content-Type", "text/plain"),)), b"ignored")
    await _feed(pipeline, "s", Headers(()), b"no content type")
    await _feed(pipeline, "s", JSON, _raw("Speaker", "SetVolume", volume=1))
    await pipeline.wait_idle()
    assert [r[1] for r in rec.reports] == [
        ExceptionType.UNSUPPORTED_OPERATION,
        ExceptionType.UNEXPECTED_INFORMATION_RECEIVED,
        ExceptionType.UNEXPECTED_INFORMATION_RECEIVED,
    ]
    assert rec.reports[1][0] == b'{"directive": {'
    assert [d.payload for d in handled] == [{"volume": 1}]
    await pipeline.aclose()


async def test_speak_blocks_the_rest_of_its_dialog() -> None:
    """Directives after a blocking one in the same dialog wait; a failure cancels them."""
    rec = Recorder()
    pipeline = DirectivePipeline(report=rec.report, observer=rec.observe)
    release = asyncio.Event()
    order: list[str] = []

    async def speak(directive: Directive) -> None:
        order.append("speak-start")
        await release.wait()
        order.append("speak-end")

    async def expect(directive: Directive) -> None:
        order.append("expect")

    async def broken(directive: Directive) -> None:
        raise RuntimeError("device failure")

    pipeline.register("SpeechSynthesizer", "Speak", speak)
    pipeline.register("SpeechRecognizer", "ExpectSpeech", expect)
    pipeline.register("SpeechRecognizer", "Broken", broken)
    pipeline.dialogs.start("d")
    pipeline.dispatch(parse_directive(_raw("SpeechSynthesizer", "Speak", "d")))
    pipeline.dispatch(parse_directive(_raw("SpeechRecognizer", "ExpectSpeech", "d")))
    await asyncio.sleep(0.01)
    assert order == ["speak-start"]
    release.set()
    await pipeline.wait_lane("d")
    assert order == ["speak-start", "speak-end", "expect"]

    pipeline.dispatch(parse_directive(_raw("SpeechRecognizer", "Broken", "d")))
    pipeline.dispatch(parse_directive(_raw("SpeechRecognizer", "ExpectSpeech", "d")))
    await pipeline.wait_idle()
    assert ("ExpectSpeech", Disposition.CANCELLED) in rec.seen
    assert rec.reports[-1][1] is ExceptionType.INTERNAL_ERROR
    assert order.count("expect") == 1
    await pipeline.aclose()
