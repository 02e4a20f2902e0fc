"""`avsclient talk` and alerts: a timer set by AVS rings through talk's output, and the `a`
line (shown in the help line at a terminal) stops it with AlertStopped."""

from __future__ import annotations

import asyncio
import os
import pty
from pathlib import Path

from avsclient.simulator import AlertLedger, Simulator

from .test_talk import _run_talk, _token_file

UTTERANCE = Path(__file__).resolve().parents[2] / "avsclient" / "assets" / "utterance.wav"


async def test_the_a_line_stops_the_ringing_alert(tmp_path: Path) -> None:
    """At a terminal: the help line names the key; a timer rings (AlertStarted), `a` + Enter
    stops it (AlertStopped, said on the console); a second `a` finds nothing ringing."""
    master, slave = pty.openpty()
    try:
        async with Simulator() as sim:
            token_file = await _token_file(sim, tmp_path)
            run = asyncio.ensure_future(_run_talk(
                sim, "--token-file", str(token_file), "--output", str(tmp_path / "out.wav"),
                # a recording stands in for the microphone: no turn is taken, only keys
                "--input", str(UTTERANCE), stdin=slave))
            await sim.wait_for_event("System", "SynchronizeState", timeout=60)
            ledger = AlertLedger()
            message = ledger.set_timer(1.0)  # no loopCount: it would ring for an hour
            await sim.push_directive(message)
            await sim.wait_for_event("Alerts", "AlertStarted", timeout=30)
            os.write(master, b"a\n")
            stopped = await sim.wait_for_event("Alerts", "AlertStopped", timeout=30)
            os.write(master, b"a\n")
            await asyncio.sleep(0.5)
            os.write(master, b"\x04")  # Ctrl-D: end of input
            text = await run
    finally:
        os.close(master)
        os.close(slave)
    token = message["directive"]["payload"]["token"]
    assert stopped.payload["token"] == token
    assert ledger.problems(sim.events) == []
    assert "a stops a ringing alert, then Enter" in text
    assert f"alert {token}: started" in text
    assert "alert stopped" in text and "no alert is ringing" in text
    assert "Turn 1:" not in text  # the key started no voice turn
