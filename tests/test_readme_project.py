"""The README's pytest example, as a user meets it: pasted into a new project outside this
repository, with its own configuration (pytest-asyncio in its default strict mode, warnings as
errors), against avsclient installed from this checkout the way pip installs it (not editable).

The throwaway project's virtual environment takes avsclient's dependencies from the running
environment (a path entry, not a copy) and installs the package itself with `pip install
--no-deps`, so no download is needed and the installed copy, not the checkout, is imported.
"""

from __future__ import annotations

import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
FIXTURE_EXAMPLE = next(b for b in BLOCKS if "def test_" in b)

_NOT_SHIPPED = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def _run(argv: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done


def test_the_readme_fixture_example_runs_in_a_new_project(tmp_path: Path) -> None:
    assert not tmp_path.is_relative_to(ROOT)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
    ).stdout.strip()
    # The running environment's packages (avsclient's dependencies, pip) as a plain path
    # entry: its own .pth files (the editable install of the checkout) are not processed.
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "avsclient_test_deps.pth").write_text("\n".join(deps) + "\n")
    source = tmp_path / "avsclient-src"
    shutil.copytree(ROOT, source, ignore=_NOT_SHIPPED)
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", source], tmp_path)

    project = tmp_path / "my-device"
    (project / "tests").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "my-device"\nversion = "0.1"\n\n'
        "[tool.pytest.ini_options]\n"
        'filterwarnings = ["error"]\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
    )
    (project / "tests" / "test_device.py").write_text(FIXTURE_EXAMPLE)
    extra = _run(
        [python, "-c", "import importlib.metadata as m; print(m.requires('avsclient'))"], project
    ).stdout
    for needed in ("pytest-asyncio", "trustme", "multipart"):  # what `avsclient[pytest]` adds
        assert re.search(rf"'{needed}[^']*extra == \"pytest\"'", extra), extra
    where = _run([python, "-c", "import avsclient; print(avsclient.__file__)"], project)
    assert where.stdout.startswith(str(venv)), where.stdout  # the installed copy
    done = _run([python, "-m", "pytest", "-p", "no:cacheprovider", "-v"], project)
    assert "test_my_device_talks_to_avs PASSED" in done.stdout, done.stdout
    assert f"rootdir: {project}" in done.stdout  # its own configuration, not this repository's
