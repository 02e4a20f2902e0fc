"""Shared test helpers."""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["in_ci", "require_executable", "system_part_missing"]


def in_ci() -> bool:
    """True when running under CI, where every system part must be present."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def system_part_missing(what: str) -> None:
    """Skip the test on a laptop that lacks a system part; fail it in CI, never skip silently."""
    message = f"{what} is not available (make test installs it when run as root)"
    if in_ci():
        pytest.fail(f"CI is set but {message}")
    pytest.skip(message)


def require_executable(name: str) -> str:
    """Return the path of an executable, or skip (fail under CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        system_part_missing(f"the executable {name!r}")
        raise AssertionError("unreachable")  # pragma: no cover
    return path
