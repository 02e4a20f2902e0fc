"""The persisted outbox on a real SQLite store file: stored before sending, sent in order,
removed only on 2xx, retried with back-off, bounded (oldest dropped and counted), and one
delivery per messageId across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avsclient._retry import RetryPolicy
from avsclient.avs.manager import EventOutcome
from avsclient.avs.responses import EventResult
from avsclient.messages import Event
from avsclient.outbox import EventOutbox
from avsclient.store import DeviceStore, StoreConfig

from .kit import RecordingSender

FAST = RetryPolicy(delays=(0.01, 0.02))


def doc(n: int) -> dict[str, object]:
    return Event.build("Alerts", "AlertStarted", {"token": f"t{n}"}).to_json()


async def test_events_are_stored_first_and_sent_in_order(tmp_path: Path) -> None:
    """put() commits before anything is sent; the sender delivers them oldest first and the
    store is empty afterwards."""
    store = DeviceStore.open(tmp_path / "d.sqlite3")
    outbox = EventOutbox(store, retry=FAST)
    docs = [doc(n) for n in range(5)]
    for d in docs:
        outbox.put(d)
    with DeviceStore.open(tmp_path / "d.sqlite3") as other:  # another reader sees them
        assert len(other.outbox_pending()) == 5
    sender = RecordingSender()
    outbox.start(sender)
    await outbox.flush(5)
    assert sender.accepted == docs
    assert outbox.pending() == 0 and outbox.delivered == 5
    await outbox.aclose()
    store.close()


async def test_failures_are_retried_with_back_off_and_removed_only_on_2xx(
    tmp_path: Path,
) -> None:
    """While AVS answers 503 the head stays stored and is tried again (same messageId); a
    later 2xx removes it and the next one follows."""
    store = DeviceStore.open(tmp_path / "d.sqlite3")
    outbox = EventOutbox(store, retry=FAST, random=lambda: 0.5)
    first, second = doc(1), doc(2)
    outbox.put(first)
    outbox.put(second)
    sender = RecordingSender()
    sender.fail = EventOutcome.REFUSED
    outbox.start(sender)
    async with asyncio.timeout(5):
        while len(sender.attempts) < 4:
            await asyncio.sleep(0.005)
    mid = first["event"]["header"]["messageId"]  # type: ignore[index]
    assert set(sender.attempts) == {mid}  # only the head, never out of order
    assert outbox.pending() == 2 and outbox.failed_attempts >= 3
    sender.fail = None
    await outbox.flush(5)
    assert sender.accepted == [first, second]
    await outbox.aclose()
    store.close()


async def test_a_document_avs_refuses_as_malformed_is_dropped_not_retried(
    tmp_path: Path,
) -> None:
    """A 400 will never turn into a 2xx: the refused event is removed and counted once, and
    the events behind it are delivered instead of waiting for it to age out."""

    class RefusingSender(RecordingSender):
        def __init__(self, refuse: str) -> None:
            super().__init__()
            self.refuse = refuse

        async def send_event(self, event, *, audio=None):  # type: ignore[no-untyped-def]
            if event["event"]["header"]["messageId"] == self.refuse:
                self.attempts.append(self.refuse)
                return EventResult(
                    outcome=EventOutcome.BAD_REQUEST, status=400, message_id=self.refuse
                )
            return await super().send_event(event, audio=audio)

    store = DeviceStore.open(tmp_path / "d.sqlite3")
    outbox = EventOutbox(store, retry=FAST)
    bad, good = doc(1), doc(2)
    outbox.put(bad)
    outbox.put(good)
    sender = RefusingSender(bad["event"]["header"]["messageId"])  # type: ignore[index]
    outbox.start(sender)
    await outbox.flush(5)
    assert sender.accepted == [good]
    assert sender.attempts.count(sender.refuse) == 1
    assert outbox.rejected == 1 and outbox.failed_attempts == 0 and outbox.pending() == 0
    await outbox.aclose()
    store.close()


async def test_the_outbox_is_bounded_and_counts_what_it_drops(tmp_path: Path) -> None:
    """Beyond outbox_max_events the oldest go, counted in `dropped`; the newest are sent."""
    store = DeviceStore.open(tmp_path / "d.sqlite3", config=StoreConfig(outbox_max_events=3))
    outbox = EventOutbox(store)
    docs = [doc(n) for n in range(5)]
    for d in docs:
        outbox.put(d)
    assert outbox.dropped == 2
    sender = RecordingSender()
    outbox.start(sender)
    await outbox.flush(5)
    assert sender.accepted == docs[2:]
    await outbox.aclose()
    store.close()


async def test_a_restart_sends_what_was_left_once(tmp_path: Path) -> None:
    """Events left when the process stopped go out after a restart, each messageId once;
    putting the same messageId twice stores it once."""
    path = tmp_path / "d.sqlite3"
    store = DeviceStore.open(path)
    outbox = EventOutbox(store)
    docs = [doc(n) for n in range(3)]
    for d in docs:
        assert outbox.put(d)
    assert not outbox.put(docs[0])
    store.close()

    store = DeviceStore.open(path)
    outbox = EventOutbox(store)
    sender = RecordingSender()
    outbox.start(sender)
    await outbox.flush(5)
    await outbox.aclose()
    store.close()
    store = DeviceStore.open(path)
    again = EventOutbox(store)
    later = RecordingSender()
    again.start(later)
    await asyncio.sleep(0.05)
    await again.aclose()
    store.close()
    ids = [d["event"]["header"]["messageId"] for d in sender.accepted + later.accepted]
    assert len(ids) == len(set(ids)) == 3


async def test_a_closed_manager_ends_the_sender_and_keeps_the_event(tmp_path: Path) -> None:
    """CANCELED (the client closes) stops sending; the event stays for the next start."""
    store = DeviceStore.open(tmp_path / "d.sqlite3")
    outbox = EventOutbox(store)
    outbox.put(doc(1))
    sender = RecordingSender()
    sender.fail = EventOutcome.CANCELED
    outbox.start(sender)
    async with asyncio.timeout(5):
        while outbox.running:
            await asyncio.sleep(0.005)
    assert outbox.pending() == 1
    store.close()


def test_an_event_needs_a_message_id(tmp_path: Path) -> None:
    with (
        DeviceStore.open(tmp_path / "d.sqlite3") as store,
        pytest.raises(ValueError, match="messageId"),
    ):
        EventOutbox(store).put({"event": {"header": {}}})


async def test_a_wake_during_a_failing_attempt_skips_the_back_off(tmp_path: Path) -> None:
    """wake() while an attempt is under way (the link returned as it failed): the next try
    follows at once instead of after the back-off."""
    store = DeviceStore.open(tmp_path / "d.sqlite3")
    outbox = EventOutbox(store, retry=RetryPolicy(delays=(120.0,)))
    outbox.put(doc(1))
    attempt = asyncio.Event()
    release = asyncio.Event()

    class Sender(RecordingSender):
        async def send_event(self, event: object, *, audio: object = None) -> EventResult:
            if not self.attempts:
                self.attempts.append("first")
                attempt.set()
                await release.wait()
                return EventResult(outcome=EventOutcome.NOT_CONNECTED, message_id="x")
            return await super().send_event(event, audio=audio)  # type: ignore[arg-type]

    sender = Sender()
    outbox.start(sender)
    await asyncio.wait_for(attempt.wait(), 5)
    outbox.wake()
    release.set()
    await outbox.flush(2)  # far less than the two-minute back-off
    assert outbox.failed_attempts == 1 and outbox.delivered == 1
    await outbox.aclose()
    store.close()
