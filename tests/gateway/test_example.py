"""examples/smart_home_report.py runs against the simulator, as a script and imported."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "smart_home_report.py"
EXPECTED = [
    "AddOrUpdateReport: delivered in 1 batch(es)",
    "ChangeReport: delivered",
    "Skill message: delivered (HTTP 202, queued)",
    "DeleteReport: delivered",
    "The simulator received 4 request(s).",
]


def test_the_example_script_runs_against_the_simulator() -> None:
    """`python examples/smart_home_report.py --simulator` reports, messages and exits 0."""
    done = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLE), "--simulator"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == EXPECTED


def test_the_example_imports_and_refuses_to_run_without_tokens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Imported, its main() runs the simulator mode and rejects a missing --tokens."""
    spec = importlib.util.spec_from_file_location("smart_home_report", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--simulator"]) == 0
    assert capsys.readouterr().out.splitlines() == EXPECTED
    with pytest.raises(SystemExit) as info:
        module.main([])
    assert info.value.code == 2
