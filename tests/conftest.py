"""Test configuration shared by every test package."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# CI gets a fixed, moderate budget; a developer can ask for more with HYPOTHESIS_PROFILE=thorough.
# These machines are shared: generation speed is not something the tests judge.
_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=200, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("dev", max_examples=100, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("thorough", max_examples=5000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True)
def _private_config_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets its own user config directory, so that clients opening the default device
    store (next to the default token file) never touch the real one nor share state."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
