"""Defect 5: inactivity-only timeouts can be stalled for ever.

A Speak whose `cid:` attachment never arrives must end (not PLAYING) within a deadline, and
a Recognize response kept alive by a byte every half second must still end within the
event timeout: progress that never completes is not progress.
"""

from __future__ import annotations

import asyncio
import time

from avsclient.attachments import AttachmentLimits

from .kit import hostile_client, hostile_config, speech_activity, tone, wait_until
from .server import HostileServer

#: The attachment wait's and the event's deadline in these tests.
DEADLINE = 2.0
#: Scheduling slack on top of a deadline.
SLACK = 2.0


async def test_speak_whose_attachment_never_arrives_ends(server: HostileServer) -> None:
    """The downchannel stays open but the attachment never comes: the Speak ends within its
    deadline, the device is no longer PLAYING, and AVS hears how it ended."""
    config = hostile_config(server, event_timeout=DEADLINE)
    limits = AttachmentLimits(ttl=DEADLINE)
    async with hostile_client(server, config, attachment_limits=limits) as client:
        await client.wait_connected(5)
        await server.push_speak_without_attachment("lost")
        await server.wait_for_event("SpeechSynthesizer", "SpeechStarted", timeout=5)
        assert speech_activity(client) == "PLAYING"
        ended = await wait_until(lambda: speech_activity(client) != "PLAYING", DEADLINE + SLACK)
        outcomes = [
            e.name
            for e in server.events
            if e.name in ("ExceptionEncountered", "SpeechFinished", "SpeechInterrupted")
        ]
    assert ended, f"still PLAYING {DEADLINE + SLACK} s after a Speak without its attachment"
    assert outcomes, "AVS was not told how the Speak ended"


async def test_trickling_recognize_response_ends_within_the_event_timeout(
    server: HostileServer,
) -> None:
    """A Recognize answered 200 and then one byte every 0.5 s (never a whole part): the
    dialog's result comes within event_timeout (+ slack), and it is not a success."""
    server.behaviour.trickle_interval = 0.5
    config = hostile_config(server, event_timeout=DEADLINE)
    async with hostile_client(server, config) as client:
        await client.wait_connected(5)
        started = time.monotonic()
        recognizing = asyncio.create_task(client.recognize(tone(0.3), profile="CLOSE_TALK"))
        done, _ = await asyncio.wait({recognizing}, timeout=DEADLINE + SLACK + 1.0)
        elapsed = time.monotonic() - started
        if not done:
            recognizing.cancel()
            await asyncio.gather(recognizing, return_exceptions=True)
    assert done, f"recognize() had no result {elapsed:.1f} s after it started"
    dialog = recognizing.result()
    assert dialog.result is not None
    assert not dialog.result.outcome.name.startswith("SUCCESS")
    assert elapsed <= DEADLINE + SLACK
