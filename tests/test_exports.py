"""Every package's `__all__` is sorted, complete and importable."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import avsclient

# Packages whose import needs optional system parts are still importable: imports are lazy.
PACKAGES = [
    *sorted(
        name
        for _, name, is_pkg in pkgutil.walk_packages(avsclient.__path__, "avsclient.")
        if is_pkg
    ),
    "avsclient",
    "avsclient.exceptions",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_complete_and_importable(name: str) -> None:
    """`__all__` lists public names in sorted order, each defined in the module."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", name).startswith("avsclient")
        and attr not in ("annotations", "TYPE_CHECKING")
    }
    missing = public - set(exported)
    assert not missing, f"{name} defines public names not in __all__: {sorted(missing)}"
