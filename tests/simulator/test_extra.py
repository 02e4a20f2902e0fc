"""Without the `simulator` extra, the simulator says which extra to install; the rest works."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_without(module: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter where importing `module` fails as if not installed."""
    blocker = f"import sys\nsys.modules[{module!r}] = None\n"
    return subprocess.run(
        [sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("missing", ["trustme", "multipart"])
def test_simulator_without_its_dependency_names_the_extra(missing: str) -> None:
    """from avsclient.simulator import Simulator raises ImportError naming the extra."""
    code = (
        "try:\n"
        "    from avsclient.simulator import Simulator\n"
        "except ImportError as exc:\n"
        "    print(exc.name)\n"
        "    print(exc)\n"
    )
    done = run_without(missing, code)
    assert done.returncode == 0, done.stderr
    name, message = done.stdout.splitlines()
    assert name == missing
    assert f"'{missing}'" in message
    assert "pip install 'avsclient[simulator]'" in message


@pytest.mark.parametrize("missing", ["trustme", "multipart"])
def test_package_and_pytest_plugin_import_without_the_extra(missing: str) -> None:
    """The package, the simulator package and the pytest plugin import without the extra."""
    code = "import avsclient.cli, avsclient.simulator, avsclient.simulator.pytest_plugin\n"
    done = run_without(missing, code)
    assert done.returncode == 0, done.stderr


def test_simulate_command_without_the_extra_is_a_one_line_error() -> None:
    """`avsclient simulate` exits 1 with one line naming the extra, not a traceback."""
    code = "from avsclient.cli import main\nsys.exit(main(['simulate', '--h2c']))\n"
    done = run_without("trustme", code)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "avsclient simulate: the AVS simulator needs 'trustme', which is not installed: "
        "pip install 'avsclient[simulator]'"
    ]
