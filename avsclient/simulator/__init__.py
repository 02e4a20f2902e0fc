"""A local Alexa Voice Service: an HTTP/2 server speaking AVS v20160207 and Login with Amazon.

```python
from avsclient.simulator import Simulator

async with Simulator() as sim:           # TLS; Simulator(tls=False) serves h2c
    token = sim.add_token()
    ...                                  # point a client at sim.url, trusting sim.ca_file
    event = await sim.wait_for_event("SpeechRecognizer", "Recognize")
```

Nothing else in avsclient imports this package (except the `avsclient simulate` command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avsclient import _lazy

if TYPE_CHECKING:
    from avsclient.simulator.alerts import AlertLedger
    from avsclient.simulator.config import SimulatorConfig
    from avsclient.simulator.discovery import DiscoveryService, report_problems
    from avsclient.simulator.faults import Faults
    from avsclient.simulator.gateway import GatewayReply, GatewayRequest, GatewayService
    from avsclient.simulator.lwa import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        CodePairState,
        IssuedCode,
        LWAResponse,
        LWAService,
    )
    from avsclient.simulator.media import MediaRoute, MediaServer
    from avsclient.simulator.playback import check_playback, play_reply
    from avsclient.simulator.scenarios import (
        ReceivedEvent,
        Script,
        ScriptedReply,
        WakeWordCheck,
        check_wake_word,
        directive,
        speech_asset,
        speech_asset_names,
        speech_asset_text,
    )
    from avsclient.simulator.scripted import SCRIPTED, scripted_directive
    from avsclient.simulator.server import Simulator
else:
    __getattr__, __dir__ = _lazy.exports(
        __name__,
        {
            "avsclient.simulator.alerts": ("AlertLedger",),
            "avsclient.simulator.config": ("SimulatorConfig",),
            "avsclient.simulator.discovery": ("DiscoveryService", "report_problems"),
            "avsclient.simulator.faults": ("Faults",),
            "avsclient.simulator.gateway": ("GatewayReply", "GatewayRequest", "GatewayService"),
            "avsclient.simulator.lwa": (
                "DEFAULT_CLIENT_ID",
                "DEFAULT_CLIENT_SECRET",
                "IssuedCode",
                "CodePairState",
                "LWAResponse",
                "LWAService",
            ),
            "avsclient.simulator.media": ("MediaRoute", "MediaServer"),
            "avsclient.simulator.playback": ("check_playback", "play_reply"),
            "avsclient.simulator.scenarios": (
                "ReceivedEvent",
                "ScriptedReply",
                "Script",
                "WakeWordCheck",
                "check_wake_word",
                "directive",
                "speech_asset",
                "speech_asset_names",
                "speech_asset_text",
            ),
            "avsclient.simulator.scripted": ("SCRIPTED", "scripted_directive"),
            "avsclient.simulator.server": ("Simulator",),
        },
    )

__all__ = [
    "AlertLedger",
    "CodePairState",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DiscoveryService",
    "Faults",
    "GatewayReply",
    "GatewayRequest",
    "GatewayService",
    "IssuedCode",
    "LWAResponse",
    "LWAService",
    "MediaRoute",
    "MediaServer",
    "ReceivedEvent",
    "SCRIPTED",
    "Script",
    "ScriptedReply",
    "Simulator",
    "SimulatorConfig",
    "WakeWordCheck",
    "check_playback",
    "check_wake_word",
    "directive",
    "play_reply",
    "report_problems",
    "scripted_directive",
    "speech_asset",
    "speech_asset_names",
    "speech_asset_text",
]
