"""User activity: when the user last interacted with the device (no I/O).

SpeechRecognizer records activity (a Recognize starting or ending counts) and System's
ResetUserInactivity resets it; System reports the inactive time every hour (avs-protocol 5.3).
The client owns one and shares it, so neither agent holds the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["UserActivity"]


class UserActivity:
    """The time of the last user activity, on a monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Start counting inactivity from now.

        Args:
            clock: monotonic seconds.
        """
        self._clock = clock
        self._last = clock()

    def touch(self) -> None:
        """Record user activity now."""
        self._last = self._clock()

    @property
    def inactive_seconds(self) -> int:
        """Whole seconds since the last user activity."""
        return max(0, int(self._clock() - self._last))
