"""Typed reads of directive payload fields, checked at the edge.

Every capability agent reads its directive's payload through these functions, so that a
field of the wrong type, out of range, or absent becomes a `DirectiveError`
(UNEXPECTED_INFORMATION_RECEIVED, reported to AVS with `System.ExceptionEncountered`) and
never a traceback in a handler::

    url = text(payload, "url", max_length=2048)
    timeout_ms = integer(payload, "timeoutInMilliseconds", low=0, high=MAX_TIMEOUT_MS)
    behavior = choice(payload, "playBehavior", ("REPLACE_ALL", "ENQUEUE"), default="ENQUEUE")

Each reader takes the enclosing mapping and a key; a missing key raises unless a `default`
is given (`None` is a valid default: `text(p, "label", default=None)`). The field's path in
the message names the key, so nested reads pass `where="audioItem.stream"` for context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, overload

from avsclient.exceptions import DirectiveError

__all__ = ["MISSING", "boolean", "choice", "integer", "obj", "seq", "text"]

_T = TypeVar("_T")
_D = TypeVar("_D")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""The default of every reader: the field is required."""

#: Longest string a payload field may carry unless the reader says otherwise.
DEFAULT_MAX_LENGTH = 64 * 1024


def _name(key: str, where: str) -> str:
    return f"{where}.{key}" if where else key


def _get(payload: Mapping[str, Any], key: str, where: str, default: Any) -> tuple[bool, Any]:
    """`(True, value)` for a present field, `(False, default)` for an absent or null one."""
    if not isinstance(payload, Mapping):
        raise DirectiveError(f"{where or 'payload'} must be an object, not {_show(payload)}")
    value = payload.get(key)
    if value is not None:
        return True, value
    if default is MISSING:
        raise DirectiveError(f"{_name(key, where)} is missing")
    return False, default


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**18:
        return f"an integer of {len(str(abs(value)))} digits"
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


@overload
def text(
    payload: Mapping[str, Any],
    key: str,
    *,
    max_length: int = ...,
    allow_empty: bool = ...,
    where: str = ...,
) -> str: ...
@overload
def text(
    payload: Mapping[str, Any],
    key: str,
    *,
    default: _D,
    max_length: int = ...,
    allow_empty: bool = ...,
    where: str = ...,
) -> str | _D: ...
def text(
    payload: Mapping[str, Any],
    key: str,
    *,
    default: Any = MISSING,
    max_length: int = DEFAULT_MAX_LENGTH,
    allow_empty: bool = False,
    where: str = "",
) -> Any:
    """A string of at most `max_length` characters, non-empty unless `allow_empty`."""
    present, value = _get(payload, key, where, default)
    if not present:
        return value
    if not isinstance(value, str):
        raise DirectiveError(f"{_name(key, where)} must be a string, not {_show(value)}")
    if not value and not allow_empty:
        raise DirectiveError(f"{_name(key, where)} must not be empty")
    if len(value) > max_length:
        raise DirectiveError(
            f"{_name(key, where)} is {len(value)} characters long, more than {max_length}"
        )
    return value


@overload
def integer(
    payload: Mapping[str, Any], key: str, *, low: int, high: int, where: str = ...
) -> int: ...
@overload
def integer(
    payload: Mapping[str, Any], key: str, *, low: int, high: int, default: _D, where: str = ...
) -> int | _D: ...
def integer(
    payload: Mapping[str, Any],
    key: str,
    *,
    low: int,
    high: int,
    default: Any = MISSING,
    where: str = "",
) -> Any:
    """An integer in `low..high` (inclusive). Booleans and floats are refused: JSON `true`
    is not 1, and `1.5` milliseconds is not a value AVS sends."""
    present, value = _get(payload, key, where, default)
    if not present:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise DirectiveError(f"{_name(key, where)} must be an integer, not {_show(value)}")
    if not low <= value <= high:
        raise DirectiveError(f"{_name(key, where)} {_show(value)} is outside {low}..{high}")
    return value


@overload
def boolean(payload: Mapping[str, Any], key: str, *, where: str = ...) -> bool: ...
@overload
def boolean(
    payload: Mapping[str, Any], key: str, *, default: _D, where: str = ...
) -> bool | _D: ...
def boolean(
    payload: Mapping[str, Any], key: str, *, default: Any = MISSING, where: str = ""
) -> Any:
    """`true` or `false`."""
    present, value = _get(payload, key, where, default)
    if not present:
        return value
    if not isinstance(value, bool):
        raise DirectiveError(f"{_name(key, where)} must be true or false, not {_show(value)}")
    return value


@overload
def choice(
    payload: Mapping[str, Any], key: str, allowed: Sequence[str], *, where: str = ...
) -> str: ...
@overload
def choice(
    payload: Mapping[str, Any],
    key: str,
    allowed: Sequence[str],
    *,
    default: _D,
    where: str = ...,
) -> str | _D: ...
def choice(
    payload: Mapping[str, Any],
    key: str,
    allowed: Sequence[str],
    *,
    default: Any = MISSING,
    where: str = "",
) -> Any:
    """One of the `allowed` strings."""
    present, value = _get(payload, key, where, default)
    if not present:
        return value
    if not isinstance(value, str) or value not in allowed:
        raise DirectiveError(
            f"{_name(key, where)} must be one of {', '.join(allowed)}, not {_show(value)}"
        )
    return value


@overload
def obj(payload: Mapping[str, Any], key: str, *, where: str = ...) -> dict[str, Any]: ...
@overload
def obj(
    payload: Mapping[str, Any], key: str, *, default: _D, where: str = ...
) -> dict[str, Any] | _D: ...
def obj(payload: Mapping[str, Any], key: str, *, default: Any = MISSING, where: str = "") -> Any:
    """A JSON object, to read further with `where=` naming its path."""
    present, value = _get(payload, key, where, default)
    if not present:
        return value
    if not isinstance(value, dict):
        raise DirectiveError(f"{_name(key, where)} must be an object, not {_show(value)}")
    return value


@overload
def seq(
    payload: Mapping[str, Any], key: str, *, max_items: int = ..., where: str = ...
) -> list[Any]: ...
@overload
def seq(
    payload: Mapping[str, Any], key: str, *, default: _D, max_items: int = ..., where: str = ...
) -> list[Any] | _D: ...
def seq(
    payload: Mapping[str, Any],
    key: str,
    *,
    default: Any = MISSING,
    max_items: int = 1024,
    where: str = "",
) -> Any:
    """A JSON array of at most `max_items` items (their types are the caller's to check)."""
    present, value = _get(payload, key, where, default)
    if not present:
        return value
    if not isinstance(value, list):
        raise DirectiveError(f"{_name(key, where)} must be an array, not {_show(value)}")
    if len(value) > max_items:
        raise DirectiveError(f"{_name(key, where)} has {len(value)} items, more than {max_items}")
    return value
