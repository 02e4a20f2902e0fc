"""Fixtures for the simulator tests: a simulator in both flavours, a token and a raw client."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from avsclient.simulator import Simulator
from tests.simulator.rawclient import RawClient

BOUNDARY = "sim-test-boundary-4f7a9c"


@pytest.fixture(params=["tls", "h2c"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """A started simulator, once over TLS and once over h2c."""
    async with Simulator(tls=request.param == "tls") as simulator:
        yield simulator


@pytest.fixture
def token(sim: Simulator) -> str:
    return sim.add_token()


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[RawClient]:
    raw = await RawClient.connect(sim)
    yield raw
    await raw.aclose()


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **extra}


def event_metadata(
    namespace: str,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    dialog_request_id: str | None = None,
    context: list[Any] | None = None,
) -> dict[str, Any]:
    header: dict[str, Any] = {"namespace": namespace, "name": name, "messageId": str(uuid.uuid4())}
    if dialog_request_id is not None:
        header["dialogRequestId"] = dialog_request_id
    document: dict[str, Any] = {"event": {"header": header, "payload": payload or {}}}
    if context is not None:
        document["context"] = context
    return document


def metadata_part(document: dict[str, Any], boundary: str = BOUNDARY) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="metadata"\r\n'
        "Content-Type: application/json; charset=UTF-8\r\n\r\n"
    ).encode() + json.dumps(document).encode()


def audio_head(boundary: str = BOUNDARY) -> bytes:
    return (
        f"\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="audio"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def closing(boundary: str = BOUNDARY) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()


def event_body(document: dict[str, Any], audio: bytes | None = None) -> bytes:
    body = metadata_part(document)
    if audio is not None:
        body += audio_head() + audio
    return body + closing()


FORM_DATA = f"multipart/form-data; boundary={BOUNDARY}"


def recognize(profile: str = "CLOSE_TALK", dialog: str = "dialog-1") -> dict[str, Any]:
    return event_metadata(
        "SpeechRecognizer",
        "Recognize",
        {"profile": profile, "format": "AUDIO_L16_RATE_16000_CHANNELS_1"},
        dialog_request_id=dialog,
        context=[],
    )


async def post_event(
    client: RawClient, token: str, body: bytes, content_type: str = FORM_DATA
) -> tuple[dict[str, str], bytes]:
    sid = client.request(
        "POST", "/v20160207/events", auth(token, **{"content-type": content_type}), end=False
    )
    await client.send(sid, body, end=True)
    headers = await client.response(sid)
    return headers, await client.body(sid)


def boundary_of(content_type: str) -> str:
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    return params["boundary"].strip('"')
