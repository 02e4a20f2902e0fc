"""Lazy re-exports for package `__init__` files (PEP 562 module `__getattr__`).

A package lists its public names and the submodule defining each; a name's submodule is
imported on first access, so that importing the package costs only the package itself:

```python
if TYPE_CHECKING:  # the names, for type checkers and readers
    from .sources import Microphone
else:
    __getattr__, __dir__ = _lazy.exports(__name__, {".sources": ("Microphone",)})
```

`from package import Microphone` and `package.Microphone` work as with an eager import; the
value is then stored in the package, so later lookups cost nothing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping

__all__ = ["exports"]


def exports(
    package: str, names: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return the `__getattr__` and `__dir__` of `package` for lazily imported names.

    Args:
        package: the package's `__name__`.
        names: submodule (absolute, or relative to `package` with a leading dot) -> the
            names it provides.

    Returns:
        The pair to assign to the package's `__getattr__` and `__dir__`.

    Raises:
        ValueError: a name is listed under two submodules.
    """
    where: dict[str, str] = {}
    for module, provided in names.items():
        for name in provided:
            if name in where:
                raise ValueError(f"{package}: {name} is listed under {where[name]} and {module}")
            where[name] = module

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
