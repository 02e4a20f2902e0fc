"""Test configuration shared by every test package."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI gets a fixed, moderate budget; a developer can ask for more with HYPOTHESIS_PROFILE=thorough.
# These machines are shared: generation speed is not something the tests judge.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=200, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("dev", max_examples=100, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("thorough", max_examples=5000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
