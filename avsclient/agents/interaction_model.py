"""InteractionModel 1.2: dialogs the cloud starts, and the cloud's "thinking" (avs-protocol 10).

- `NewDialogRequest` `{"dialogRequestId"}` makes that dialog current as it arrives, before the
  next directive is routed, so the directives of the new dialog that follow are not taken for
  stale ones; the old dialog's queued directives are dropped (through the dialog owner,
  `avsclient.dialog`).
- `RequestProcessingStarted` / `RequestProcessingCompleted` move the device in and out of
  THINKING: `thinking`, and `ProcessingStateChanged` for the application. With a
  dialogRequestId they run in their dialog's order (the directive pipeline's lanes), without
  one at once.
"""

from __future__ import annotations

import logging

from avsclient.agents import payload
from avsclient.agents.base import CapabilityAgent, DirectiveHandler, ImmediateHandler
from avsclient.agents.events import ProcessingStateChanged
from avsclient.messages import Directive

__all__ = ["InteractionModelAgent"]

_log = logging.getLogger("avsclient.agents")

# A dialogRequestId is a UUID; anything much longer is not one.
_MAX_DIALOG_ID = 256


class InteractionModelAgent(CapabilityAgent):
    """NewDialogRequest and the THINKING state of RequestProcessingStarted/Completed."""

    namespace = "InteractionModel"
    version = "1.2"  # avs-protocol 9.1: Discovery needs >= 1.2

    def __init__(self) -> None:
        super().__init__()
        #: True between RequestProcessingStarted and RequestProcessingCompleted.
        self.thinking = False
        #: The dialog the cloud is processing (the directive's dialogRequestId), or None.
        self.dialog_request_id: str | None = None

    def immediate_handlers(self) -> dict[str, ImmediateHandler]:
        return {"NewDialogRequest": self._on_new_dialog_request}

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {
            "RequestProcessingStarted": self._on_started,
            "RequestProcessingCompleted": self._on_completed,
        }

    def _on_new_dialog_request(self, directive: Directive) -> None:
        dialog = payload.text(directive.payload, "dialogRequestId", max_length=_MAX_DIALOG_ID)
        _log.info("AVS starts dialog %s", dialog)
        self.services.dialogs.start(dialog)

    async def _on_started(self, directive: Directive) -> None:
        self._set(True, directive.dialog_request_id)

    async def _on_completed(self, directive: Directive) -> None:
        self._set(False, directive.dialog_request_id)

    def _set(self, thinking: bool, dialog: str | None) -> None:
        changed = thinking != self.thinking
        self.thinking, self.dialog_request_id = thinking, dialog
        if changed:
            self.messenger.notify(
                ProcessingStateChanged(thinking=thinking, dialog_request_id=dialog)
            )

    def forget_account(self) -> None:
        self.thinking, self.dialog_request_id = False, None
