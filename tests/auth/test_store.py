"""The token file: atomic 0600 writes, clear errors, and the last good token never lost."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from avsclient.auth.lwa import TokenSet
from avsclient.auth.store import StoredTokens, TokenStore, default_token_path
from avsclient.exceptions import TokenStoreError
from tests.helpers import require_executable


def record(n: int = 0, client_id: str = "cid") -> StoredTokens:
    return StoredTokens(
        client_id=client_id,
        tokens=TokenSet(
            access_token=f"Atza|{n}-" + "a" * 400,
            refresh_token=f"Atzr|{n}-" + "r" * 100,
            expires_at=1_700_000_000.0 + n,
        ),
    )


def test_round_trip(tmp_path: Path) -> None:
    """What is saved loads back unchanged."""
    store = TokenStore(tmp_path / "tokens.json")
    assert store.load() is None
    store.save(record(1))
    assert store.load() == record(1)
    assert "Atza" not in repr(store)


def test_default_path_is_in_the_user_config_dir() -> None:
    """Without a path the file lives in platformdirs' config dir for avsclient."""
    path = default_token_path()
    assert path.name == "tokens.json"
    assert "avsclient" in path.parts
    assert TokenStore().path == path


def test_file_is_0600_and_directory_0700_whatever_the_umask(tmp_path: Path) -> None:
    """The file is created 0600 (never wider) even under a permissive umask."""
    old = os.umask(0)
    try:
        store = TokenStore(tmp_path / "new" / "dir" / "tokens.json")
        store.save(record())
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    store.save(record(2))  # replacing keeps the mode
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_temp_file_is_never_world_readable(tmp_path: Path) -> None:
    """Every file that appears in the directory while saving is already 0600."""
    store = TokenStore(tmp_path / "tokens.json")
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for entry in os.scandir(tmp_path):
                with contextlib.suppress(FileNotFoundError):
                    seen.append(stat.S_IMODE(entry.stat().st_mode))

    old = os.umask(0)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for n in range(200):
            store.save(record(n))
    finally:
        stop.set()
        watcher.join()
        os.umask(old)
    assert seen
    assert set(seen) == {0o600}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b'{"version": 1, "client_id": "cid", "access_token": "Atza|x", "refr',
        b"[]",
        b'{"version": 99}',
        b'{"version": 1, "client_id": "cid", "expires_at": 1}',
        b'{"version": 1, "client_id": "cid", "access_token": "A", "expires_at": "soon"}',
        b"\xff\xfe garbage",
    ],
)
def test_corrupt_or_partial_file_is_a_clear_error_and_kept(tmp_path: Path, content: bytes) -> None:
    """A corrupt or truncated file raises TokenStoreError and is left byte for byte."""
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    store = TokenStore(path)
    with pytest.raises(TokenStoreError, match=str(path)):
        store.load()
    assert path.read_bytes() == content


def test_truncated_real_file_at_every_length(tmp_path: Path) -> None:
    """Every strict prefix of a real token file is rejected, never half-loaded."""
    good = tmp_path / "good.json"
    TokenStore(good).save(record())
    data = good.read_bytes().rstrip()
    partial = tmp_path / "partial.json"
    for cut in range(len(data)):
        partial.write_bytes(data[:cut])
        with pytest.raises(TokenStoreError):
            TokenStore(partial).load()


def test_oversized_file_is_rejected(tmp_path: Path) -> None:
    """A huge file is not read into memory."""
    path = tmp_path / "tokens.json"
    path.write_bytes(b" " * (65 * 1024))
    with pytest.raises(TokenStoreError, match="larger"):
        TokenStore(path).load()


def test_unwritable_directory_keeps_the_good_file(tmp_path: Path) -> None:
    """A directory that cannot be created gives TokenStoreError and no stray files."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(TokenStoreError, match="directory"):
        TokenStore(blocker / "tokens.json").save(record())


def test_read_only_directory(tmp_path: Path) -> None:
    """A read-only directory gives TokenStoreError, the old file survives, no temp file stays.

    Root ignores permission bits, so as root (CI) the save runs in a child process without
    CAP_DAC_OVERRIDE (util-linux `setpriv`), to which they apply again.
    """
    directory = tmp_path / "config"
    directory.mkdir()
    store = TokenStore(directory / "tokens.json")
    store.save(record(1))
    before = store.path.read_bytes()
    directory.chmod(0o555)
    try:
        if os.geteuid() != 0:
            with pytest.raises(TokenStoreError):
                store.save(record(2))
        else:
            setpriv = require_executable("setpriv")
            script = textwrap.dedent(
                f"""
                from avsclient.auth.lwa import TokenSet
                from avsclient.auth.store import StoredTokens, TokenStore
                from avsclient.exceptions import TokenStoreError
                tokens = TokenSet(access_token="Atza|2", refresh_token="Atzr|2", expires_at=2.0)
                try:
                    TokenStore({str(store.path)!r}).save(StoredTokens(client_id="c", tokens=tokens))
                except TokenStoreError as exc:
                    print("TokenStoreError:", exc)
                """
            )
            done = subprocess.run(
                [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable,
                 "-c", script],
                capture_output=True, text=True, timeout=60, check=False,
            )
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith("TokenStoreError:"), done.stdout
    finally:
        directory.chmod(0o700)
    assert store.path.read_bytes() == before
    assert store.load() == record(1)
    assert [p.name for p in directory.iterdir()] == ["tokens.json"]


def test_failed_write_never_replaces_the_good_file(tmp_path: Path) -> None:
    """A write that fails half-way (file size limit: a real EFBIG) keeps the old file."""
    store = TokenStore(tmp_path / "tokens.json")
    store.save(record(1))
    before = store.path.read_bytes()
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from avsclient.auth.lwa import TokenSet
        from avsclient.auth.store import StoredTokens, TokenStore
        from avsclient.exceptions import TokenStoreError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
        big = StoredTokens(client_id="cid", tokens=TokenSet(
            access_token="Atza|" + "b" * 3000, refresh_token="Atzr|new", expires_at=1.0))
        try:
            TokenStore({str(store.path)!r}).save(big)
        except TokenStoreError as exc:
            print("TokenStoreError:", exc)
            sys.exit(0)
        sys.exit(1)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "previous file was kept" in done.stdout
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]


def test_concurrent_writes_leave_one_complete_file(tmp_path: Path) -> None:
    """Threads saving at once leave exactly one complete version and no temp files."""
    store = TokenStore(tmp_path / "tokens.json")
    errors: list[BaseException] = []

    def writer(base: int) -> None:
        try:
            for n in range(base, base + 50):
                store.save(record(n))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    loaded = store.load()
    assert loaded is not None
    n = int(loaded.tokens.access_token.split("|")[1].split("-")[0])
    assert loaded == record(n)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]


def test_concurrent_processes_never_see_a_partial_file(tmp_path: Path) -> None:
    """A reader in another process always finds a complete file while a writer replaces it."""
    store = TokenStore(tmp_path / "tokens.json")
    store.save(record(0))
    script = textwrap.dedent(
        f"""
        from avsclient.auth.store import TokenStore
        store = TokenStore({str(store.path)!r})
        for _ in range(300):
            assert store.load() is not None
        print("ok")
        """
    )
    reader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for n in range(300):
            store.save(record(n))
    finally:
        out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0
    assert out.strip() == "ok"


def test_group_readable_file_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Loading a file others can read logs a warning naming the path (not the tokens)."""
    store = TokenStore(tmp_path / "tokens.json")
    store.save(record())
    store.path.chmod(0o644)
    with caplog.at_level("WARNING", logger="avsclient.auth"):
        assert store.load() == record()
    assert "chmod 600" in caplog.text
    assert "Atza" not in caplog.text


def test_delete(tmp_path: Path) -> None:
    """delete removes the file and reports whether there was one."""
    store = TokenStore(tmp_path / "tokens.json")
    assert store.delete() is False
    store.save(record())
    assert store.delete() is True
    assert store.load() is None


def test_saved_json_is_documented_shape(tmp_path: Path) -> None:
    """The file is plain JSON with a version field (for tools and humans)."""
    store = TokenStore(tmp_path / "tokens.json")
    store.save(record())
    doc = json.loads(store.path.read_text())
    assert doc["version"] == 1
    assert doc["client_id"] == "cid"
    assert set(doc) == {
        "version",
        "client_id",
        "access_token",
        "refresh_token",
        "token_type",
        "expires_at",
        "scope",
    }


def test_the_device_identity_is_an_optional_part_of_format_1(tmp_path: Path) -> None:
    """`avsclient login` records product id and serial; a file without them (written before)
    still loads, and names what is missing when a device identity is asked of it."""
    store = TokenStore(tmp_path / "tokens.json")
    store.save(replace(record(), product_id="speaker", device_serial_number="SN-1"))
    doc = json.loads(store.path.read_text())
    assert doc["version"] == 1
    assert (doc["product_id"], doc["device_serial_number"]) == ("speaker", "SN-1")
    loaded = store.load()
    assert loaded is not None
    assert loaded.device().endpoint_id == "cid::speaker::SN-1"
    assert loaded.device(serial="SN-2").endpoint_id == "cid::speaker::SN-2"
    store.save(record())
    older = store.load()
    assert older is not None
    assert older.product_id is None
    with pytest.raises(ValueError, match="product id and serial number is unknown"):
        older.device()
    assert older.device(product_id="p", serial="s").endpoint_id == "cid::p::s"
    with pytest.raises(ValueError, match="without '::'"):
        older.device(product_id="p", serial="a::b")
