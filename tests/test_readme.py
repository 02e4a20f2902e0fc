"""The README's code compiles and imports only names the package exports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_readme_has_python_examples() -> None:
    """The quickstart and the fixture example are there."""
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_compiles_and_its_imports_resolve(code: str) -> None:
    """Each block is valid Python (top-level await allowed) and its imports exist."""
    tree = compile(code, "README.md", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = __import__(node.module or "", fromlist=["_"])
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"


# Where each block runs as a user runs it (a marker of the block -> the test that runs it).
RUNNERS = {
    "from_login(sink=speaker)": "tests/audio/test_readme_library.py",
    "class LampAgent": "tests/audio/test_readme_library.py",
    "test_my_device_talks_to_avs": "tests/test_readme_project.py",
}


def test_every_python_block_is_run_by_a_test() -> None:
    """No README block is only compiled: each is run against the simulator by a test."""
    for code in BLOCKS:
        runners = [test for marker, test in RUNNERS.items() if marker in code]
        assert len(runners) == 1, f"no test runs this README block:\n{code}"
        assert marker_in_runner(code, runners[0])


def marker_in_runner(code: str, runner: str) -> bool:
    marker = next(m for m in RUNNERS if m in code)
    return marker in (ROOT / runner).read_text()


def test_readme_names_the_two_commands() -> None:
    """The contract: one command runs the demo, one runs the tests, and .ci/run runs it."""
    assert "```sh\nmake demo\n```" in README
    assert "```sh\nmake test\n```" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
