"""Lazy imports of optional audio engines, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from typing import Any

from avsclient.exceptions import AudioError

__all__ = ["import_engine"]


def import_engine(module: str, extra: str) -> Any:
    """Import an optional engine module, or raise AudioError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise AudioError(f"{module} is missing ({exc}): pip install 'avsclient[{extra}]'") from exc
