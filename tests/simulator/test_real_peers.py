"""Real HTTP/2 peers against the simulator: curl (built with nghttp2) over TLS and h2c."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from avsclient.simulator import Simulator, directive, speech_asset
from tests.helpers import require_executable, system_part_missing
from tests.simulator.conftest import boundary_of, recognize
from tests.simulator.rawclient import parse_related

pytestmark = pytest.mark.system


def curl_with_http2() -> str:
    curl = require_executable("curl")
    version = subprocess.run([curl, "-V"], capture_output=True, text=True, check=True).stdout
    if "HTTP2" not in version.split("Features:", 1)[-1]:
        system_part_missing("curl built with HTTP/2 (nghttp2)")
    return curl


def curl_args(sim: Simulator, token: str) -> list[str]:
    args = ["-sS", "--max-time", "20", "-H", f"Authorization: Bearer {token}"]
    if sim.tls:
        assert sim.ca_file is not None
        return [*args, "--http2", "--cacert", str(sim.ca_file)]
    return [*args, "--http2-prior-knowledge"]


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])
async def test_curl_posts_recognize_as_form_data_and_gets_speak(tmp_path: Path, tls: bool) -> None:
    """curl -F uploads metadata + audio; the simulator records both and answers Speak + MP3."""
    curl = curl_with_http2()
    audio = bytes(range(256)) * 256  # 64 KiB, enough for StopCapture on NEAR_FIELD
    (tmp_path / "event.json").write_text(json.dumps(recognize("NEAR_FIELD", "curl-dialog")))
    (tmp_path / "audio.raw").write_bytes(audio)
    async with Simulator(tls=tls) as sim:
        token = sim.add_token()
        proc = await asyncio.create_subprocess_exec(
            curl,
            *curl_args(sim, token),
            "-F",
            "metadata=<event.json;type=application/json",
            "-F",
            "audio=@audio.raw;type=application/octet-stream",
            "-D",
            "headers.txt",
            "-o",
            "body.bin",
            f"{sim.url}/v20160207/events",
            cwd=tmp_path,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr.decode()
        event = await sim.wait_for_event("SpeechRecognizer", "Recognize")
    assert event.audio == audio
    assert event.dialog_request_id == "curl-dialog"
    assert event.http_headers["content-type"].startswith("multipart/form-data; boundary=")
    head = (tmp_path / "headers.txt").read_text().lower()
    assert head.startswith("http/2 200")
    content_type = next(
        line.split(":", 1)[1].strip()
        for line in head.splitlines()
        if line.startswith("content-type")
    )
    parts = parse_related((tmp_path / "body.bin").read_bytes(), boundary_of(content_type))
    names = [json.loads(p[1])["directive"]["header"]["name"] for p in parts[:2]]
    assert names == ["StopCapture", "Speak"]
    speak = json.loads(parts[1][1])["directive"]
    assert speak["header"]["dialogRequestId"] == "curl-dialog"
    assert parts[2][0]["content-id"] == "<" + speak["payload"]["url"].removeprefix("cid:") + ">"
    assert parts[2][1] == speech_asset("hello")


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])
async def test_curl_holds_a_downchannel_while_a_directive_is_pushed(tls: bool) -> None:
    """curl -N keeps GET /directives open and prints a directive pushed meanwhile."""
    curl = curl_with_http2()
    async with Simulator(tls=tls) as sim:
        token = sim.add_token()
        proc = await asyncio.create_subprocess_exec(
            curl,
            *curl_args(sim, token),
            "-N",
            f"{sim.url}/v20160207/directives",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await sim.wait_for_downchannel(timeout=15)
            message = directive("Alerts", "SetAlert", {"token": "curl-alert", "type": "TIMER"})
            assert await sim.push_directive(message) == 1
            assert proc.stdout is not None
            output = await asyncio.wait_for(proc.stdout.readuntil(b'"curl-alert"'), 15)
            assert b'"name":"SetAlert"' in output
            assert proc.returncode is None  # curl is still connected
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.communicate()
