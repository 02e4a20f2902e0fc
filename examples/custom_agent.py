"""A capability agent of your own: a made-up `Acme.Lamp` interface next to the core agents.

    python examples/custom_agent.py --simulator

The lamp handles one directive (`SetColor`), answers with one event (`ColorChanged`) and
reports its color as context (`Acme.Lamp.LampState`), which goes out with SynchronizeState and
every Recognize. Real AVS knows no Acme.Lamp interface, so this example runs against the
in-process simulator, which plays AVS: it pushes the directive and shows what it received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import avsclient
from avsclient import AVSClient, ClientEvent, agents, audio
from avsclient.agents import payload
from avsclient.exceptions import AVSError
from avsclient.messages import ContextState, Directive, Event

COLORS = ("white", "red", "green", "blue")
UTTERANCE = Path(avsclient.__file__).parent / "assets" / "utterance.wav"


class LampAgent(agents.CapabilityAgent):
    """The Acme.Lamp interface: a lamp whose color AVS sets."""

    namespace = "Acme.Lamp"
    version = "1.0"

    def __init__(self, color: str = "white") -> None:
        super().__init__()
        self.color = color

    def capability(self) -> agents.Capability:
        return agents.Capability(self.namespace, self.version, {"colors": list(COLORS)})

    def handlers(self) -> dict[str, agents.DirectiveHandler]:
        return {"SetColor": self.on_set_color}

    def context_states(self) -> list[ContextState]:
        return [
            ContextState(namespace=self.namespace, name="LampState", payload={"color": self.color})
        ]

    async def on_set_color(self, directive: Directive) -> None:
        # Read payload fields through the checked readers: a missing, mistyped or unknown
        # color raises DirectiveError, AVS is told with ExceptionEncountered, nothing changes.
        color = payload.choice(directive.payload, "color", COLORS)
        self.color = color
        print(f"lamp: {color}", flush=True)
        event = Event.build(self.namespace, "ColorChanged", {"color": color})
        await self.messenger.post_event(event)


def show(event: ClientEvent) -> None:
    if isinstance(event, agents.DirectiveObserved) and event.disposition.name == "DISPATCHED":
        print(f"directive: {event.directive.namespace}.{event.directive.name}", flush=True)


def lamp_state(context: list[dict[str, object]]) -> str:
    for state in context:
        header = state["header"]
        if isinstance(header, dict) and header.get("namespace") == "Acme.Lamp":
            return json.dumps(state["payload"])
    return "missing"


async def run() -> None:
    from avsclient.simulator import Simulator, directive  # only --simulator needs it

    async with Simulator() as sim, AVSClient.for_simulator(sim, listener=show) as client:
        client.add_agent(LampAgent())  # the core agents are there by default
        print(
            "capabilities:",
            ", ".join(f"{c.interface} {c.version}" for c in client.capabilities()),
        )
        await client.wait_connected(timeout=30)
        sync = await sim.wait_for_event("System", "SynchronizeState")
        print("SynchronizeState context:", lamp_state(sync.context), flush=True)

        await sim.push_directive(directive("Acme.Lamp", "SetColor", {"color": "blue"}))
        changed = await sim.wait_for_event("Acme.Lamp", "ColorChanged", timeout=10)
        print("AVS received: Acme.Lamp.ColorChanged", json.dumps(changed.payload), flush=True)

        dialog = await client.recognize(audio.WavFileSource(str(UTTERANCE)))
        await dialog.wait_finished()
        recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize")
        print("Recognize context:", lamp_state(recognize.context), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", action="store_true", help="run against a local simulator")
    args = parser.parse_args(argv)
    if not args.simulator:
        parser.error("real AVS knows no Acme.Lamp interface: run it with --simulator")
    try:
        asyncio.run(run())
    except AVSError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C stops it cleanly: exit 0, as `avsclient talk` does
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
