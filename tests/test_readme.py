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


def test_readme_names_the_two_commands() -> None:
    """The contract: one command runs the demo, one runs the tests, and .ci/run runs it."""
    assert "```sh\nmake demo\n```" in README
    assert "```sh\nmake test\n```" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
