"""InteractionModel 1.2 against the simulator over TLS: NewDialogRequest makes its dialog
current at once and drops the old dialog's queued directives; RequestProcessingStarted and
Completed drive the THINKING state."""

from __future__ import annotations

import asyncio

from avsclient.agents import (
    CapabilityAgent,
    ClientEvent,
    DirectiveHandler,
    DirectiveObserved,
    ProcessingStateChanged,
)
from avsclient.dialog import Disposition
from avsclient.messages import Directive
from avsclient.simulator import Simulator, directive

from .conftest import ClientFactory


class Hold(CapabilityAgent):
    """Acme.Hold.Wait blocks its dialog's lane until released; Acme.Hold.Note records."""

    namespace = "Acme.Hold"
    version = "1.0"

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()
        self.notes: list[str] = []

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {"Wait": self._wait, "Note": self._note}

    async def _wait(self, d: Directive) -> None:
        self.waiting.set()
        await self.release.wait()

    async def _note(self, d: Directive) -> None:
        self.notes.append(str(d.payload["text"]))


def _dispositions(events: list[ClientEvent], name: str) -> list[Disposition]:
    return [
        e.disposition
        for e in events
        if isinstance(e, DirectiveObserved) and e.directive.name == name
    ]


async def test_new_dialog_request_drops_the_old_dialogs_queue(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """Dialog A holds its lane with a queued Note; NewDialogRequest(B) cancels A's Note at
    once, and B's directives, sent right after it, are not taken for stale ones."""
    events: list[ClientEvent] = []
    hold = Hold()
    client = make_client(listener=events.append)
    client.add_agent(hold)
    async with client:
        await client.wait_connected(10)
        client.dialogs.start("dialog-A")
        await sim.push_directive(directive("Acme.Hold", "Wait", dialog_request_id="dialog-A"))
        await hold.waiting.wait()
        note_a = directive("Acme.Hold", "Note", {"text": "A"}, dialog_request_id="dialog-A")
        await sim.push_directive(note_a)
        await sim.push_directive(
            directive("InteractionModel", "NewDialogRequest", {"dialogRequestId": "dialog-B"})
        )
        note_b = directive("Acme.Hold", "Note", {"text": "B"}, dialog_request_id="dialog-B")
        await sim.push_directive(note_b)
        async with asyncio.timeout(5):
            while hold.notes != ["B"]:
                await asyncio.sleep(0.01)
        assert client.dialogs.current == "dialog-B"
        hold.release.set()
        await asyncio.sleep(0.05)
    assert hold.notes == ["B"]
    assert Disposition.CANCELLED in _dispositions(events, "Note")
    assert _dispositions(events, "NewDialogRequest") == [
        Disposition.RECEIVED,
        Disposition.DISPATCHED,
    ]
    assert Disposition.STALE not in _dispositions(events, "Note")


async def test_new_dialog_request_without_an_id_is_reported(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """A NewDialogRequest without dialogRequestId: UNEXPECTED_INFORMATION_RECEIVED, and the
    current dialog stays."""
    client = make_client()
    async with client:
        await client.wait_connected(10)
        client.dialogs.start("dialog-A")
        await sim.push_directive(directive("InteractionModel", "NewDialogRequest", {}))
        report = await sim.wait_for_event("System", "ExceptionEncountered")
        assert client.dialogs.current == "dialog-A"
    assert report.payload["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"


async def test_request_processing_drives_the_thinking_state(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """RequestProcessingStarted enters THINKING, Completed leaves it; both observable."""
    events: list[ClientEvent] = []
    client = make_client(listener=events.append)
    async with client:
        await client.wait_connected(10)
        await sim.push_directive(
            directive("InteractionModel", "NewDialogRequest", {"dialogRequestId": "routine-1"})
        )
        started = directive(
            "InteractionModel", "RequestProcessingStarted", dialog_request_id="routine-1"
        )
        await sim.push_directive(started)
        async with asyncio.timeout(5):
            while not client.interaction_model.thinking:
                await asyncio.sleep(0.01)
        await sim.push_directive(directive("InteractionModel", "RequestProcessingCompleted"))
        async with asyncio.timeout(5):
            while client.interaction_model.thinking:
                await asyncio.sleep(0.01)
        await sim.push_directive(directive("InteractionModel", "Unknown"))
        report = await sim.wait_for_event("System", "ExceptionEncountered")
    changes = [e for e in events if isinstance(e, ProcessingStateChanged)]
    assert [(e.thinking, e.dialog_request_id) for e in changes] == [
        (True, "routine-1"),
        (False, None),
    ]
    assert report.payload["error"]["type"] == "UNSUPPORTED_OPERATION"
