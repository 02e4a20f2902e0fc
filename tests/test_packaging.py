"""What pip users get: a clean build, a complete sdist with its license, metadata that
`twine check` accepts, and lower bounds that constraints/minimum.txt pins (and `make
test-minimum` tests)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    for extra in ("simulator", "pytest"):
        lines += cfg["options.extras_require"][extra].splitlines()
    return [Requirement(line) for line in lines if line.strip()]


def _pins() -> dict[str, Version]:
    """The pins that apply on the oldest supported Python (3.11), whose bounds setup.cfg
    declares; lines marked for newer Pythons pin what installs there."""
    pins = {}
    for line in (ROOT / "constraints" / "minimum.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"python_version": "3.11"}):
                (spec,) = req.specifier
                pins[req.name.lower()] = Version(spec.version)
    return pins


def test_every_lower_bound_is_pinned_in_the_minimum_constraints() -> None:
    """Each declared `>=` bound is exactly the version `make test-minimum` installs."""
    pins = _pins()
    for req in _declared():
        lower = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert lower, f"{req} has no lower bound"
        assert pins.get(req.name.lower()) == lower[0], f"{req}: pin {pins.get(req.name.lower())}"
        if req.name.lower() in ("h2", "httpx", "multipart"):  # 0.x or fast-moving: bounded
            assert any(s.operator == "<" for s in req.specifier), req


def test_minimum_step_is_part_of_make_test() -> None:
    make = (ROOT / "Makefile").read_text()
    assert "-c constraints/minimum.txt" in make
    assert next(line for line in make.splitlines() if line.startswith("test:")).endswith(
        "test-minimum"
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`python -m build` of a copy of the checkout (the checkout itself stays untouched)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv*", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
            ".hypothesis", "reply.wav",
        ),
    )
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return work / "dist", done.stdout + done.stderr


def test_the_build_is_clean(built: tuple[Path, str]) -> None:
    """No setuptools warnings about the package layout or data (the bytecode notes of the
    build front end aside)."""
    _, log = built
    assert "WARNING" not in log, log
    assert "absent from the `packages` configuration" not in log
    assert "no files found matching" not in log


def test_twine_accepts_the_metadata(built: tuple[Path, str]) -> None:
    dist, _ = built
    files = sorted(str(p) for p in dist.iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


def test_the_sdist_is_the_whole_project_and_its_tests_run(
    built: tuple[Path, str], tmp_path: Path
) -> None:
    """Every tracked file is in the sdist (LICENSE included); its own tests run from it."""
    dist, _ = built
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        tar.extractall(tmp_path, filter="data")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if tracked.returncode == 0:
        expected = set(tracked.stdout.split())
    else:  # not a git checkout: the files a checkout has
        expected = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")}
    expected |= {"LICENSE", "constraints/minimum.txt", "MANIFEST.in"}
    missing = sorted(f for f in expected - names if not f.startswith("tests/fuzz/corpus"))
    assert not missing, missing
    unpacked = next(tmp_path.iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "tests/test_layers.py", "tests/test_exports.py", "tests/test_readme.py"],
        cwd=unpacked, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rootdir: {unpacked}" in done.stdout


def test_the_wheel_carries_the_license_and_the_assets(built: tuple[Path, str]) -> None:
    dist, _ = built
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "avsclient/assets/utterance.wav" in names
    assert "avsclient/simulator/assets/hello.mp3" in names
    assert not any(n.startswith("tests/") for n in names)
