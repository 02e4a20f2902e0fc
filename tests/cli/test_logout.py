"""The linked device's identity and its deregistration, as real processes against the simulator
over TLS: `avsclient login` records the product id and serial, `avsclient talk` sends the
Discovery report the simulator's validator (written from the reference) accepts, and
`avsclient logout` sends DeleteReport, clears the device store and deletes the token file."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
from pathlib import Path

from avsclient.auth import TokenStore
from avsclient.simulator import DEFAULT_CLIENT_ID, Simulator
from avsclient.store import DeviceStore
from tests.cli.test_login import run_login

ROOT = Path(__file__).resolve().parents[2]
UTTERANCE = ROOT / "avsclient" / "assets" / "utterance.wav"


async def _run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsclient", *argv,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "error", **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:  # pragma: no cover - only on a hang
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _talk(sim: Simulator, token_file: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["talk", "--endpoint", sim.url, "--lwa-url", sim.url, "--ca-file", str(sim.ca_file),
            "--token-file", str(token_file), "--once", "--input", str(UTTERANCE),
            "--output", str(tmp_path / "reply.wav"), *extra]


def _logout(sim: Simulator, token_file: Path, *extra: str) -> list[str]:
    return ["logout", "--endpoint", sim.url, "--lwa-url", sim.url, "--ca-file", str(sim.ca_file),
            "--token-file", str(token_file), *extra]


async def test_login_talk_logout_describe_then_deregister_the_linked_device(
    tmp_path: Path,
) -> None:
    """login -> talk -> logout: the report carries clientId::productId::serial with no flag
    beyond login's, the store lives next to the token file, and logout undoes it all."""
    endpoint_id = f"{DEFAULT_CLIENT_ID}::kitchen_speaker::SN-42"
    async with Simulator() as sim:
        sim.lwa.codepair_interval = 1
        token_file = tmp_path / "conf" / "tokens.json"
        code, out, err = await run_login(
            sim, "--client-id", DEFAULT_CLIENT_ID, "--product-id", "kitchen_speaker",
            "--serial", "SN-42", "--token-file", str(token_file),
        )
        assert code == 0, out + err
        assert "Device: product kitchen_speaker, serial SN-42" in out
        stored = TokenStore(token_file).load()
        assert stored is not None
        assert (stored.product_id, stored.device_serial_number) == ("kitchen_speaker", "SN-42")

        code, out, err = await _run(*_talk(sim, token_file, tmp_path))
        assert code == 0, out + err
        assert "Discovery accepted" in out
        [report] = sim.discovery.reports
        assert report.problems == ()
        [endpoint] = report.event.payload["endpoints"]
        assert endpoint["endpointId"] == endpoint_id
        assert endpoint["registration"] == {
            "productId": "kitchen_speaker", "deviceSerialNumber": "SN-42"
        }
        store_file = token_file.parent / "device.sqlite3"
        with DeviceStore.open(store_file) as store:
            assert store.get("Alexa.Discovery", "report") is not None  # accepted, remembered
            store.set("System", "timeZone", "Europe/Berlin")  # account data, as AVS set it
            store.set("Microphone", "gain", 3, device_only=True)

        code, out, err = await _run(*_logout(sim, token_file))
        assert code == 0, out + err
        assert f"Deregistering {endpoint_id}" in out
        assert f"AVS accepted the DeleteReport for {endpoint_id}." in out
        assert f"Token file {token_file} deleted." in out
        assert "Logged out. Link this device again with `avsclient login`." in out
        assert sim.discovery.deleted == [endpoint_id]
        [delete] = [e for e in sim.events if e.name == "DeleteReport"]
        assert delete.payload["scope"]["type"] == "BearerToken"
        assert not token_file.exists()
        with DeviceStore.open(store_file) as store:
            assert store.get("Alexa.Discovery", "report") is None
            assert store.get("System", "timeZone") is None
            assert store.get("Microphone", "gain") == 3  # the device's own, kept

        # Logged out: nothing more to do, and talk says to link first.
        code, out, err = await _run(*_logout(sim, token_file))
        assert code == 4, out + err
        assert "not linked" in out
        code, out, err = await _run(*_talk(sim, token_file, tmp_path))
        assert code == 2
        assert "run `avsclient login` first" in out


async def test_environment_overrides_the_recorded_identity(tmp_path: Path) -> None:
    """$AVSCLIENT_PRODUCT_ID / $AVSCLIENT_SERIAL replace what login recorded; a serial that
    cannot be part of an endpoint id is a usage error before anything connects."""
    async with Simulator() as sim:
        token_file = sim.write_token_file(tmp_path / "tokens.json")
        env = {"AVSCLIENT_PRODUCT_ID": "other_product", "AVSCLIENT_SERIAL": "SN-7"}
        code, out, err = await _run(*_talk(sim, token_file, tmp_path), env=env)
        assert code == 0, out + err
        [report] = sim.discovery.valid_reports
        assert report.payload["endpoints"][0]["endpointId"] == (
            f"{DEFAULT_CLIENT_ID}::other_product::SN-7"
        )
        code, out, err = await _run(*_logout(sim, token_file, "--serial", "bad::serial"))
        assert code == 2, out + err
        assert "without '::'" in err
        assert token_file.exists() and not sim.discovery.deleted


async def test_logout_when_avs_cannot_be_reached_clears_locally_and_says_so(
    tmp_path: Path,
) -> None:
    """AVS offline: exit 3, the data and tokens are gone locally, and the user is told to
    remove the device in the Alexa app. --local-only does the same on purpose: exit 0."""
    async with Simulator() as sim:
        token_file = sim.write_token_file(tmp_path / "tokens.json")
        sim.faults.go_offline()
        code, out, err = await _run(*_logout(sim, token_file, "--connect-timeout", "2"))
        assert code == 3, out + err
        assert "AVS was not told (could not connect to" in out
        assert "remove the device in the Alexa app" in out
        assert not token_file.exists()
        assert not sim.discovery.deleted

        token_file = sim.write_token_file(tmp_path / "tokens.json")
        sim.faults.go_online()
        code, out, err = await _run(*_logout(sim, token_file, "--local-only"))
        assert code == 0, out + err
        assert "--local-only" in out and "Deregistering" not in out
        assert not token_file.exists()
        assert not sim.discovery.deleted
        assert sim.open_connections == 0 and not sim.events


async def test_logout_against_avsclient_simulate(tmp_path: Path) -> None:
    """`avsclient simulate` in its own process, and the `avsclient logout` line it prints, as
    pasted: deregistered, exit 0."""
    token_file = tmp_path / "tokens.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsclient", "simulate", "--token-file", str(token_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not lines or not lines[-1].startswith("Press Ctrl-C"):
                line = await proc.stdout.readline()
                assert line, "simulate ended early"
                lines.append(line.decode().strip())
        heading = lines.index(
            "Deregister it (DeleteReport, device store cleared, token file deleted):"
        )
        argv = shlex.split(lines[heading + 1])
        assert argv[:2] == ["avsclient", "logout"] and str(token_file) in argv
        code, out, err = await _run(*argv[1:])
        assert code == 0, out + err
        assert f"AVS accepted the DeleteReport for {DEFAULT_CLIENT_ID}::sim_device::0001." in out
        assert not token_file.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
