"""The dialog owner: the sequencer's rules (no I/O), the dialogs and their traces, the lanes,
and the pipeline asking it (first response part stamped through `ResponseSource`)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient.avs.manager import ResponseSource
from avsclient.dialog import (
    DialogManager,
    DialogSequencer,
    Disposition,
    new_dialog_request_id,
)
from avsclient.directives import DirectivePipeline
from avsclient.messages import Directive, ExceptionType
from avsclient.multipart import Headers
from tests.client.test_directives import _directive


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the dialog sequencer ---------------------------------------------------------------------


def test_directives_without_dialog_run_immediately() -> None:
    """Cloud-initiated directives are always processed."""
    seq = DialogSequencer()
    assert seq.receive(_directive(None)) is Disposition.IMMEDIATE


def test_superseded_dialog_is_stale_and_its_queue_cancelled() -> None:
    """A new dialog drops the old one's queue; its later directives are stale."""
    seq = DialogSequencer()
    seq.start_dialog("a")
    first, second = _directive("a"), _directive("a", "ExpectSpeech")
    assert seq.receive(first) is Disposition.START_LANE
    assert seq.receive(second) is Disposition.QUEUED
    assert seq.next("a") is first
    assert seq.start_dialog("b") == [second]
    assert seq.next("a") is None  # the old lane ends
    assert seq.receive(_directive("a")) is Disposition.STALE
    assert seq.receive(_directive("b")) is Disposition.START_LANE


def test_failure_cancels_the_rest_of_the_dialog() -> None:
    """If handling one directive fails, the remaining ones of its dialog are cancelled."""
    seq = DialogSequencer()
    seq.start_dialog("a")
    speak, expect = _directive("a"), _directive("a", "ExpectSpeech")
    seq.receive(speak)
    seq.receive(expect)
    assert seq.next("a") is speak
    assert seq.failed(speak) == [expect]
    assert seq.next("a") is None


def test_queue_is_bounded() -> None:
    """A dialog cannot queue more than max_queue directives."""
    seq = DialogSequencer(max_queue=2)
    seq.start_dialog("a")
    assert [seq.receive(_directive("a")) for _ in range(3)] == [
        Disposition.START_LANE,
        Disposition.QUEUED,
        Disposition.OVERFLOW,
    ]


@given(
    st.lists(st.tuples(st.sampled_from(["start", "recv", "next", "fail"]), st.sampled_from("abn")))
)
def test_sequencer_never_hands_out_stale_directives(ops: list[tuple[str, str]]) -> None:
    """Whatever happens, a lane only ever gets directives of the current dialog, in order."""
    seq = DialogSequencer(max_queue=4)
    for op, key in ops:
        dialog = None if key == "n" else key
        if op == "start" and dialog is not None:
            seq.start_dialog(dialog)
        elif op == "recv":
            seq.receive(_directive(dialog))
        elif op == "next" and dialog is not None:
            got = seq.next(dialog)
            if got is not None:
                assert got.dialog_request_id == dialog == seq.current
        elif op == "fail":
            seq.failed(_directive(seq.current))
        assert seq.queued <= 4


# -- the dialog manager -----------------------------------------------------------------------


def test_starting_a_dialog_makes_it_current_and_findable() -> None:
    """start() returns the Dialog, makes its id current and keeps it for lookup."""
    dialogs = DialogManager()
    dialog_id = new_dialog_request_id()
    dialog = dialogs.start(dialog_id, "msg-1")
    assert dialogs.current == dialog_id
    assert dialogs.get(dialog_id) is dialog
    assert (dialog.dialog_request_id, dialog.message_id) == (dialog_id, "msg-1")
    assert dialogs.get(None) is None and dialogs.get("other") is None
    with pytest.raises(ValueError, match="dialogRequestId"):
        dialogs.start("")


def test_a_new_dialog_cancels_the_old_queue_through_the_listeners() -> None:
    """Directives queued for the old dialog are handed to every cancel listener, once."""
    dialogs = DialogManager()
    cancelled: list[Directive] = []
    dialogs.add_cancel_listener(cancelled.append)
    dialogs.start("a")
    first, second = _directive("a"), _directive("a", "ExpectSpeech")
    assert dialogs.receive(first) is Disposition.START_LANE
    assert dialogs.receive(second) is Disposition.QUEUED
    assert dialogs.next("a") is first
    dialogs.start("b")
    assert cancelled == [second]
    assert dialogs.receive(_directive("a")) is Disposition.STALE
    dialogs.receive(_directive("b"))
    dialogs.end("b")
    assert [d.dialog_request_id for d in cancelled] == ["a", "b"]
    assert dialogs.current is None


def test_only_the_most_recent_dialogs_are_kept() -> None:
    """Lookup is bounded: the oldest dialogs are forgotten."""
    dialogs = DialogManager(kept=2)
    for name in "abc":
        dialogs.start(name)
    assert dialogs.get("a") is None
    assert dialogs.get("b") is not None and dialogs.get("c") is not None
    with pytest.raises(ValueError, match="kept"):
        DialogManager(kept=0)


def test_record_lists_arrivals_and_stamps_dispatches() -> None:
    """RECEIVED directives are listed on their dialog, DISPATCHED ones stamped on its trace;
    directives of unknown dialogs change nothing."""
    clock = Clock()
    dialogs = DialogManager(clock=clock)
    dialog = dialogs.start("d")
    speak = _directive("d")
    dialogs.record(speak, Disposition.RECEIVED)
    clock.now = 101.5
    dialogs.record(speak, Disposition.DISPATCHED)
    dialogs.record(_directive("x"), Disposition.RECEIVED)
    dialogs.record(_directive(None), Disposition.DISPATCHED)
    assert dialog.directives == [speak]
    assert dialog.trace.directives == [("SpeechSynthesizer.Speak", 101.5)]
    assert dialog.trace.directive_at("SpeechSynthesizer.Speak") == 101.5


def test_response_started_stamps_the_dialog_of_that_message_once() -> None:
    """The first response part of the Recognize (by messageId) stamps first_response_byte_at;
    later parts and other messages do not move it."""
    clock = Clock()
    dialogs = DialogManager(clock=clock)
    older = dialogs.start("a", "m-a")
    newer = dialogs.start("b", "m-b")
    dialogs.response_started("m-b")
    clock.now = 105.0
    dialogs.response_started("m-b")
    dialogs.response_started("unknown")
    assert newer.trace.first_response_byte_at == 100.0
    assert older.trace.first_response_byte_at is None


async def test_wait_finished_waits_for_the_dialogs_lane() -> None:
    """Dialog.wait_finished() returns once the lane registered for it is done."""
    dialogs = DialogManager()
    dialog = dialogs.start("d")
    release = asyncio.Event()

    async def lane() -> None:
        await release.wait()

    task = asyncio.create_task(lane())
    dialogs.lane_started("d", task)
    waiter = asyncio.create_task(dialog.wait_finished())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    release.set()
    await asyncio.wait_for(waiter, 1)
    await asyncio.wait_for(dialog.wait_finished(), 1)  # no lane: returns at once


# -- the pipeline asks the dialog owner -------------------------------------------------------

JSON = Headers((("Content-Type", "application/json; charset=UTF-8"),))


async def _report(raw: bytes, error: ExceptionType, message: str) -> None:
    return None


async def test_the_pipeline_stamps_the_first_part_of_an_event_response() -> None:
    """A response whose ResponseSource names the Recognize's messageId stamps that dialog's
    trace on its first part; downchannel parts (no messageId) and plain sources do not."""
    clock = Clock()
    dialogs = DialogManager(clock=clock)
    pipeline = DirectivePipeline(report=_report, dialogs=dialogs)
    dialog = dialogs.start("d", "m-1")
    downchannel = ResponseSource(1, 1, "downchannel")
    await pipeline.part_started(downchannel, JSON)
    await pipeline.part_started("not-a-response-source", JSON)
    assert dialog.trace.first_response_byte_at is None
    event = ResponseSource(1, 3, "event", "m-1")
    await pipeline.part_started(event, JSON)
    clock.now = 200.0
    await pipeline.part_started(event, JSON)
    assert dialog.trace.first_response_byte_at == 100.0
    await pipeline.aclose()


async def test_the_pipeline_routes_through_the_dialog_owner() -> None:
    """Directives of a dialog started on the owner run in its lane, are listed on the Dialog
    and stamped on its trace; a new dialog cancels what was queued (observer told)."""
    dialogs = DialogManager()
    seen: list[tuple[str, Disposition]] = []
    pipeline = DirectivePipeline(
        report=_report, dialogs=dialogs, observer=lambda d, disp: seen.append((d.name, disp))
    )
    release = asyncio.Event()

    async def speak(directive: Directive) -> None:
        await release.wait()

    async def expect(directive: Directive) -> None:
        return None

    pipeline.register("SpeechSynthesizer", "Speak", speak)
    pipeline.register("SpeechSynthesizer", "ExpectSpeech", expect)
    dialog = dialogs.start("d", "m")
    pipeline.dispatch(_directive("d"))
    pipeline.dispatch(_directive("d", "ExpectSpeech"))
    await asyncio.sleep(0.01)
    assert [d.name for d in dialog.directives] == ["Speak", "ExpectSpeech"]
    assert [name for name, _ in dialog.trace.directives] == ["SpeechSynthesizer.Speak"]
    dialogs.start("e")
    assert ("ExpectSpeech", Disposition.CANCELLED) in seen
    release.set()
    await asyncio.wait_for(dialog.wait_finished(), 1)
    await pipeline.aclose()


async def test_waiting_for_a_dialog_to_be_handled_has_a_deadline() -> None:
    """An agent holding the Dialog channel for the rest of a turn waits at most its timeout:
    a stalled lane answers False when it passes, a finished one True."""
    from avsclient.dialog import DialogManager

    dialogs = DialogManager()
    release = asyncio.Event()
    lane = asyncio.ensure_future(release.wait())
    dialogs.lane_started("d1", lane)  # type: ignore[arg-type]
    assert await dialogs.wait_handled("d1", timeout=0.05) is False
    release.set()
    assert await dialogs.wait_handled("d1", timeout=5) is True
    assert await dialogs.wait_handled("unknown", timeout=0) is True
