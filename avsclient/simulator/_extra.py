"""The simulator's own dependencies come with the `simulator` extra: a clear error without it.

`pip install avsclient` installs what a device needs; the simulator also needs trustme (its
TLS certificates) and multipart (parsing the events it receives), which
`pip install 'avsclient[simulator]'` adds. The modules that use them import them like this:

```python
try:
    import trustme
except ImportError as exc:
    raise missing_extra("trustme") from exc
```
"""

from __future__ import annotations

__all__ = ["EXTRA", "missing_extra"]

EXTRA = "simulator"


def missing_extra(module: str) -> ImportError:
    """The error for a simulator dependency that is not installed: it names the extra."""
    return ImportError(
        f"the AVS simulator needs {module!r}, which is not installed: "
        f"pip install 'avsclient[{EXTRA}]'",
        name=module,
    )
