"""Importing avsclient is cheap: heavy dependencies load when the code that needs them runs.

Each check runs in a fresh interpreter, since this test process has long since imported
everything, and reads `sys.modules` after the import under test.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from avsclient import _lazy

# Third-party packages that cost real time to import (numpy alone is about 0.1 s here and
# seconds on a Raspberry Pi) or that only one part of the package needs.
HEAVY = ("numpy", "miniaudio", "sounddevice", "httpx", "trustme", "h2", "multipart")


def loaded_after(statement: str) -> set[str]:
    """Run `statement` in a fresh interpreter; return which of HEAVY it loaded."""
    code = (
        "import json, sys\n"
        f"{statement}\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("statement", "allowed"),
    [
        ("import avsclient", set()),
        ("import avsclient.multipart", set()),
        ("import avsclient.messages", set()),
        ("import avsclient.audio", set()),
        ("from avsclient.audio import AVS_FORMAT, AudioFormat", set()),
        ("import avsclient.auth", set()),
        ("from avsclient.auth import LWAConfig, TokenStore", set()),
        ("import avsclient.gateway", set()),
        ("from avsclient.gateway import Endpoint, GatewayConfig", set()),
        ("import avsclient.simulator", set()),
        ("import avsclient.cli", set()),
    ],
)
def test_import_loads_no_heavy_dependency(statement: str, allowed: set[str]) -> None:
    """The statement loads none of numpy, miniaudio, sounddevice, httpx, trustme, h2."""
    assert loaded_after(statement) <= allowed


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("from avsclient.audio import PcmConverter", {"numpy"}),
        ("from avsclient.audio import decode_mp3", {"miniaudio", "numpy"}),
        ("from avsclient.auth import LWAHttpClient", {"httpx"}),
        ("from avsclient import AVSClient", {"h2", "numpy", "miniaudio"}),
    ],
)
def test_a_name_loads_what_it_needs_when_used(statement: str, expected: set[str]) -> None:
    """Asking for a name imports its module and that module's dependencies, no sooner."""
    assert expected <= loaded_after(statement)


def test_lazy_names_are_the_defining_modules_objects() -> None:
    """A lazily exported name is the very object its submodule defines, cached on first use."""
    import avsclient
    import avsclient.audio
    from avsclient.audio.format import AudioFormat
    from avsclient.client import AVSClient

    assert avsclient.audio.AudioFormat is AudioFormat
    assert "AudioFormat" in vars(avsclient.audio)
    assert avsclient.AVSClient is AVSClient
    assert "AVSClient" in dir(avsclient)


def test_unknown_name_is_an_attribute_error() -> None:
    """A name that no submodule provides raises AttributeError, as for any module."""
    import avsclient.audio

    with pytest.raises(AttributeError, match="Nonesuch"):
        _ = avsclient.audio.Nonesuch  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from avsclient import Nonesuch  # type: ignore[attr-defined]  # noqa: F401


LAZY_PACKAGES = [
    "avsclient",
    "avsclient.audio",
    "avsclient.auth",
    "avsclient.gateway",
    "avsclient.simulator",
]


def _lazy_tables(name: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(what `if TYPE_CHECKING:` imports, what `_lazy.exports` serves), by module, read by ast."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    typed: dict[str, set[str]] = {}
    served: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                key = "." * stmt.level + (stmt.module or "")
                typed.setdefault(key, set()).update(a.name for a in stmt.names)
            for stmt in node.orelse:
                assert isinstance(stmt, ast.Assign)
                assert isinstance(stmt.value, ast.Call)
                table = ast.literal_eval(stmt.value.args[1])
                served = {key: set(value) for key, value in table.items()}
    return typed, served


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_type_checkers_see_the_names_the_package_serves(name: str) -> None:
    """The TYPE_CHECKING imports and the lazy table of a package list the same names."""
    typed, served = _lazy_tables(name)
    assert served
    assert typed == served


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_lazy_package_serves_every_public_name(name: str) -> None:
    """Each name in a lazy package's `__all__` resolves, and appears in `dir()`."""
    module = importlib.import_module(name)
    for attr in module.__all__:
        assert getattr(module, attr) is not None
        assert attr in dir(module)


def test_a_name_listed_twice_is_refused() -> None:
    """A lazy table that gives one name two homes is an error at import time."""
    with pytest.raises(ValueError, match="Framer"):
        _lazy.exports("pkg", {".a": ("Framer",), ".b": ("Framer", "Other")})
