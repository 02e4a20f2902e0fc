"""The persisted outbox: events that must reach AVS (alert lifecycle, settings changes), kept
in the device store until AVS accepted them (avs-protocol 16.4: the SDK's CertifiedSender).

Promises:

- stored before sending: `put()` returns once the event is committed to the store (or commits
  it inside the caller's `store.transaction()`, together with the state change it reports,
  so a crash keeps both or neither);
- sent in order, one at a time, by one task, once connected (the connection manager's
  `send_event` waits for the link);
- removed only when AVS answered 2xx; any other outcome is retried after a back-off
  (`OUTBOX_RETRY`, an `avsclient._retry.RetryPolicy`), except a 400 (BAD_REQUEST): AVS will
  never accept that document, so it is removed, logged and counted (`rejected`) instead of
  blocking every later event until it ages out;
- bounded in count and age by the store (`StoreConfig.outbox_max_events` / `_max_age`), the
  oldest dropped and counted (`dropped`);
- one delivery per messageId: the messageId is stored with the event and sent unchanged on
  every retry, after a reconnect or a restart, and an event is never stored twice. The one
  window left is a crash after AVS answered and before the removal committed (microseconds):
  then the event goes out again with the same messageId, which the receiver can recognise.

One outbox per store and per process: two senders over one table would send events twice.
Several agents share one `EventOutbox` (pass the same instance to each).
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from avsclient._retry import RetryPolicy
from avsclient.avs.exchange import message_id_of as exchange_message_id_of
from avsclient.avs.policy import EventOutcome
from avsclient.exceptions import DeviceStoreError

if TYPE_CHECKING:
    from avsclient.avs.manager import EventResult
    from avsclient.store import DeviceStore, JSONValue

__all__ = ["OUTBOX_RETRY", "EventOutbox", "OutboxSender"]

_log = logging.getLogger("avsclient.outbox")

#: Back-off between attempts of the event at the head of the outbox: short at first (the link
#: often just dropped), then up to a minute (AVS is down or refusing); jittered so a fleet of
#: devices coming back together does not arrive in step. It never gives up: age and count
#: bounds end an event that can never be delivered.
OUTBOX_RETRY = RetryPolicy(delays=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0), jitter=(0.8, 1.2))


class OutboxSender(Protocol):
    """What the outbox sends through: the connection manager's `send_event`."""

    async def send_event(self, event: Mapping[str, Any]) -> EventResult:
        """Send one event document; returns exactly one outcome, never raises for trouble."""
        ...


def message_id_of(document: Mapping[str, Any]) -> str:
    """`event.header.messageId` of an event document.

    Raises:
        ValueError: the document has no messageId.
    """
    message_id = exchange_message_id_of(document)
    if not message_id:
        raise ValueError("an outbox event needs event.header.messageId")
    return message_id


class EventOutbox:
    """Sends the store's outbox to AVS, oldest first, until each event got a 2xx.

    `put()` may be called before `start()` (and after `aclose()`): the event is stored and
    goes out once a sender runs.
    """

    def __init__(
        self,
        store: DeviceStore,
        *,
        retry: RetryPolicy = OUTBOX_RETRY,
        random: Callable[[], float] = _random.random,
        on_sent: Callable[[Mapping[str, Any], EventResult], None] | None = None,
    ) -> None:
        """Create an outbox over `store`'s outbox table.

        Args:
            store: the device store (its outbox table holds the events).
            retry: the back-off between failed attempts.
            random: the jitter's random source.
            on_sent: called with each event and its result after every attempt.
        """
        self.store = store
        self.retry = retry
        self._random = random
        self._on_sent = on_sent
        self._sender: OutboxSender | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._idle = False  # waiting for events (not backing off)
        self._emptied: asyncio.Event | None = None
        self._failures = 0
        self._woken = False  # wake() was called since the current attempt began
        #: Events delivered (2xx) by this instance.
        self.delivered = 0
        #: Attempts that did not get a 2xx.
        self.failed_attempts = 0
        #: Events AVS refused as malformed (BAD_REQUEST), removed without another try.
        self.rejected = 0

    @property
    def dropped(self) -> int:
        """Events dropped for age or count (the store's count)."""
        return self.store.outbox_dropped

    @property
    def running(self) -> bool:
        """True while the sender task runs."""
        return self._task is not None and not self._task.done()

    def pending(self) -> int:
        """Events waiting."""
        return len(self.store.outbox_pending())

    # -- input -------------------------------------------------------------------------------

    def put(self, document: Mapping[str, JSONValue]) -> bool:
        """Store an event document (`{"event": {...}}`) for delivery; call it inside
        `store.transaction()` to commit it with the state change it reports.

        Returns:
            True if stored, False if an event with its messageId is already waiting.

        Raises:
            ValueError: the document has no messageId or is not JSON.
            DeviceStoreError: the store could not be written (nothing was stored).
        """
        stored = self.store.outbox_append(message_id_of(document), document)
        if self._idle and self._wakeup is not None:
            self._wakeup.set()  # a back-off is not cut short by new events, only by wake()
        return stored

    def wake(self) -> None:
        """Try now (the connection is back): cuts a back-off short, or skips the next one when
        an attempt is under way (it may fail just before the link returns)."""
        self._woken = True
        if self._wakeup is not None:
            self._wakeup.set()

    # -- the sender --------------------------------------------------------------------------

    def start(self, sender: OutboxSender) -> None:
        """Start sending through `sender` (has `send_event(document)`); a second call with a
        running sender does nothing."""
        if self.running:
            return
        self._sender = sender
        self._wakeup = asyncio.Event()
        self._emptied = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event outbox")

    async def aclose(self) -> None:
        """Stop sending; waiting events stay stored for the next start."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def flush(self, timeout: float) -> None:
        """Wait until the outbox is empty.

        Raises:
            TimeoutError: events still wait after `timeout` seconds.
        """
        async with asyncio.timeout(timeout):
            while self.store.outbox_pending(1):
                if self._emptied is None:
                    raise TimeoutError  # no sender: it cannot empty
                self._emptied.clear()
                await self._emptied.wait()

    async def _run(self) -> None:
        assert self._wakeup is not None
        assert self._emptied is not None
        assert self._sender is not None
        while True:
            try:
                head = self.store.outbox_pending(1)
            except DeviceStoreError as exc:
                _log.error("outbox: cannot read the store: %s", exc)
                await self._back_off()
                continue
            if not head:
                self._emptied.set()
                self._wakeup.clear()
                self._idle = True
                try:
                    await self._wakeup.wait()
                finally:
                    self._idle = False
                continue
            entry = head[0]
            self._woken = False
            result = await self._sender.send_event(entry.event)
            if self._on_sent is not None:
                try:
                    self._on_sent(entry.event, result)
                except Exception:
                    _log.exception("outbox observer failed")
            if result.ok:
                self._failures = 0
                self.delivered += 1
                try:
                    self.store.outbox_remove(entry.message_id)
                except DeviceStoreError as exc:  # it will go out again, same messageId
                    _log.error("outbox: cannot remove delivered %s: %s", entry.message_id, exc)
                    await self._back_off()
                continue
            if result.outcome is EventOutcome.CANCELED:
                return  # the connection manager is closed: so is the client
            if result.outcome is EventOutcome.BAD_REQUEST:
                self.rejected += 1
                _log.error(
                    "outbox: AVS refused %s as malformed (%s); dropped",
                    entry.message_id,
                    result.error,
                )
                try:
                    self.store.outbox_remove(entry.message_id)
                except DeviceStoreError as exc:
                    _log.error("outbox: cannot remove refused %s: %s", entry.message_id, exc)
                    await self._back_off()
                continue
            self.failed_attempts += 1
            _log.info(
                "outbox: %s not accepted (%s); retrying", entry.message_id, result.outcome.name
            )
            await self._back_off()

    async def _back_off(self) -> None:
        assert self._wakeup is not None
        self._failures += 1
        if self._woken:  # woken during the attempt: the link may be back already
            self._woken = False
            return
        delay = self.retry.next_delay(self._failures, self._random)
        self._wakeup.clear()
        try:
            async with asyncio.timeout(delay):
                await self._wakeup.wait()
        except TimeoutError:
            pass
