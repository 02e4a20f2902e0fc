"""A device process for the SIGKILL test: `set STORE` stores a timer 1.5 s ahead (offline:
nothing is delivered) and waits to be killed; `run STORE` starts from the store, online, and
prints what it sent once the timer has rung."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from avsclient.avs.manager import EventOutcome

from .kit import RecordingSender, make_agent, set_alert


class WallClock:
    def __call__(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


async def main(mode: str, path: Path) -> None:
    sender = RecordingSender()
    if mode == "set":
        sender.fail = EventOutcome.NOT_CONNECTED
    agent, store, mixer = make_agent(path, WallClock(), sender)  # type: ignore[arg-type]
    agent.start()
    if mode == "set":
        await agent.handlers()["SetAlert"](set_alert("timer-1", time.time() + 1.5, loopCount=1))
        print("SET", flush=True)
        await asyncio.sleep(60)
        return
    await sender.wait_for("AlertStopped", timeout=20)
    started = agent.sound_started["timer-1"]
    print(json.dumps({"sent": sender.names(), "ids": sender.attempts, "started": started}))
    await agent.aclose()
    await mixer.aclose()
    store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
