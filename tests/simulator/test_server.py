"""The simulator's AVS endpoints over real TLS and h2c, driven by a raw h2 client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl

import pytest

from avsclient.simulator import ScriptedReply, Simulator, SimulatorConfig, directive, speech_asset
from tests.simulator.conftest import (
    FORM_DATA,
    audio_head,
    auth,
    boundary_of,
    closing,
    event_body,
    event_metadata,
    metadata_part,
    post_event,
    recognize,
)
from tests.simulator.rawclient import RawClient, parse_related

# -- ping and auth ---------------------------------------------------------------------------


async def test_ping_answers_204(client: RawClient, token: str) -> None:
    """GET /ping with a known token answers 204 with no body."""
    sid = client.request("GET", "/ping", auth(token))
    headers = await client.response(sid)
    assert headers[":status"] == "204"
    assert await client.body(sid) == b""


@pytest.mark.parametrize("path", ["/ping", "/v20160207/directives", "/v20160207/events"])
@pytest.mark.parametrize("authorization", [None, "Bearer unknown-token", "Basic abc"])
async def test_unknown_token_gets_403_with_avs_exception(
    client: RawClient, path: str, authorization: str | None
) -> None:
    """Every AVS endpoint answers 403 UNAUTHORIZED_REQUEST_EXCEPTION to a bad or missing token."""
    headers = {"content-type": FORM_DATA}
    if authorization is not None:
        headers["authorization"] = authorization
    method = "POST" if path.endswith("events") else "GET"
    sid = client.request(method, path, headers)
    response = await client.response(sid)
    assert response[":status"] == "403"
    assert response["content-type"] == "application/json"
    body = json.loads(await client.body(sid))
    assert body["header"]["namespace"] == "System"
    assert body["header"]["name"] == "Exception"
    assert body["payload"]["code"] == "UNAUTHORIZED_REQUEST_EXCEPTION"


async def test_removed_token_is_refused(sim: Simulator, client: RawClient) -> None:
    """A token removed with remove_token gets 403 afterwards."""
    token = sim.add_token("fixed-token")
    sid = client.request("GET", "/ping", auth(token))
    assert (await client.response(sid))[":status"] == "204"
    sim.remove_token(token)
    sid = client.request("GET", "/ping", auth(token))
    assert (await client.response(sid))[":status"] == "403"


async def test_unknown_path_and_wrong_method(client: RawClient, token: str) -> None:
    """Unknown paths answer 404 and wrong methods 405, both with the AVS exception body."""
    sid = client.request("GET", "/v20160207/nothing", auth(token))
    assert (await client.response(sid))[":status"] == "404"
    sid = client.request("GET", "/v20160207/events", auth(token))
    assert (await client.response(sid))[":status"] == "405"
    sid = client.request("POST", "/ping", auth(token))
    assert (await client.response(sid))[":status"] == "405"
    assert json.loads(await client.body(sid))["header"]["name"] == "Exception"


async def test_tls_without_h2_alpn_is_closed() -> None:
    """A TLS client that does not offer h2 in ALPN is disconnected."""
    async with Simulator() as sim:
        raw = await RawClient.connect(sim, alpn=["http/1.1"])
        async with asyncio.timeout(5):
            await raw.closed.wait()
        await raw.aclose()


async def test_simulator_refuses_non_loopback_hosts() -> None:
    """Only loopback addresses can be served."""
    with pytest.raises(ValueError, match="loopback"):
        Simulator(host="0.0.0.0")


async def test_ssl_context_and_ca_file_trust_the_server() -> None:
    """Both sim.ssl_context() and a context built from sim.ca_file verify the certificate."""
    async with Simulator() as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        assert sim.ca_file is not None
        assert sim.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        ctx = ssl.create_default_context(cafile=str(sim.ca_file))
        ctx.set_alpn_protocols(["h2"])
        _, writer = await asyncio.open_connection(sim.host, sim.port, ssl=ctx)
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        writer.close()
        # The server's SETTINGS may cross our close_notify: that shutdown error is expected.
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
        ca_file = sim.ca_file
    assert not ca_file.exists()


async def test_h2c_has_no_tls() -> None:
    """The h2c simulator serves http:// and has no CA."""
    async with Simulator(tls=False, host="::1") as sim:
        assert sim.url == f"http://[::1]:{sim.port}"
        assert sim.ca_file is None
        with pytest.raises(RuntimeError):
            sim.ssl_context()


# -- downchannel -----------------------------------------------------------------------------


async def open_downchannel(client: RawClient, token: str) -> tuple[int, str]:
    sid = client.request("GET", "/v20160207/directives", auth(token))
    headers = await client.response(sid)
    assert headers[":status"] == "200"
    content_type = headers["content-type"]
    assert content_type.startswith("multipart/related; boundary=")
    assert content_type.endswith("; type=application/json")
    return sid, boundary_of(content_type)


async def test_downchannel_carries_pushed_directives_and_attachments(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """Pushed directives arrive as complete multipart/related parts on the open downchannel."""
    sid, boundary = await open_downchannel(client, token)
    await sim.wait_for_downchannel()
    assert sim.connected_downchannels == 1
    volume = directive("Speaker", "SetVolume", {"volume": 30})
    assert await sim.push_directive(volume) == 1
    body = await client.wait_data(sid, b"SetVolume")
    parts = parse_related(body, boundary)
    assert len(parts) == 1
    assert parts[0][0]["content-type"] == "application/json; charset=UTF-8"
    assert json.loads(parts[0][1]) == volume

    play = directive("AudioPlayer", "Play", {"audioItem": {"stream": {"url": "cid:song-1"}}})
    audio = bytes(range(256)) * 400
    await sim.push_directive(play, attachments={"song-1": audio})
    body = await client.wait_data(sid, audio[-64:] + b"\r\n--" + boundary.encode() + b"\r\n")
    parts = parse_related(body, boundary)
    assert [json.loads(p[1]) for p in parts[:2]] == [volume, play]
    assert parts[2][0]["content-id"] == "<song-1>"
    assert parts[2][0]["content-type"] == "application/octet-stream"
    assert parts[2][1] == audio
    assert not client.streams[sid].ended.done()  # the body never ends while connected


async def test_large_attachment_respects_a_small_client_window(sim: Simulator, token: str) -> None:
    """A 2 MiB attachment goes through a client that only opens a 64 KiB window at a time."""
    raw = await RawClient.connect(sim)
    try:
        import h2.settings

        raw.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65_535})
        raw.flush()
        sid, boundary = await open_downchannel(raw, token)
        payload = bytes(range(251)) * (2 * 1024 * 1024 // 251)
        push = asyncio.create_task(
            sim.push_directive(directive("Test", "Big"), {"big": payload}, timeout=20)
        )
        tail = payload[-100:] + b"\r\n--" + boundary.encode() + b"\r\n"
        body = await raw.wait_data(sid, tail, timeout=20)
        await push
        assert parse_related(body, boundary)[1][1] == payload
    finally:
        await raw.aclose()


async def test_only_one_downchannel_per_connection(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """A second downchannel on the same connection gets 400 INVALID_REQUEST_EXCEPTION."""
    await open_downchannel(client, token)
    sid = client.request("GET", "/v20160207/directives", auth(token))
    assert (await client.response(sid))[":status"] == "400"
    body = json.loads(await client.body(sid))
    assert body["payload"]["code"] == "INVALID_REQUEST_EXCEPTION"
    other = await RawClient.connect(sim)
    try:
        await open_downchannel(other, token)
        await sim.wait_for_downchannel(2)
        assert await sim.push_directive(directive("System", "ResetUserInactivity")) == 2
    finally:
        await other.aclose()


async def test_push_directive_times_out_without_downchannel(sim: Simulator) -> None:
    """push_directive waits for a downchannel and gives up after its timeout."""
    with pytest.raises(TimeoutError):
        await sim.push_directive(directive("Speaker", "SetMute", {"mute": True}), timeout=0.2)


async def test_closing_the_downchannel_unregisters_it(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """When the client resets its downchannel, the simulator counts it as gone."""
    sid, _ = await open_downchannel(client, token)
    await sim.wait_for_downchannel()
    import h2.errors

    client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    async with asyncio.timeout(5):
        while sim.connected_downchannels:
            await asyncio.sleep(0.01)


# -- events ----------------------------------------------------------------------------------


def directives_of(headers: dict[str, str], body: bytes) -> list[tuple[dict[str, str], bytes]]:
    assert headers[":status"] == "200"
    return parse_related(body, boundary_of(headers["content-type"]))


async def test_close_talk_recognize_gets_speak_with_mp3(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """CLOSE_TALK Recognize: Speak (same dialogRequestId) with the MP3 by cid, no StopCapture."""
    audio = bytes(range(200)) * 160
    headers, body = await post_event(client, token, event_body(recognize(), audio))
    parts = directives_of(headers, body)
    assert len(parts) == 2
    speak = json.loads(parts[0][1])["directive"]
    assert speak["header"]["namespace"] == "SpeechSynthesizer"
    assert speak["header"]["name"] == "Speak"
    assert speak["header"]["dialogRequestId"] == "dialog-1"
    assert speak["payload"]["format"] == "AUDIO_MPEG"
    cid = speak["payload"]["url"].removeprefix("cid:")
    assert parts[1][0]["content-id"] == f"<{cid}>"
    assert parts[1][1] == speech_asset("hello")
    assert body.endswith(b"--\r\n")
    event = await sim.wait_for_event("SpeechRecognizer", "Recognize")
    assert event.audio == audio
    assert event.dialog_request_id == "dialog-1"
    assert event.status == 200


@pytest.mark.parametrize("profile", ["NEAR_FIELD", "FAR_FIELD"])
async def test_far_field_recognize_gets_stop_capture_while_audio_flows(
    sim: Simulator, client: RawClient, token: str, profile: str
) -> None:
    """NEAR/FAR_FIELD: the response starts with StopCapture before the upload ends."""
    sim.script.recognize(stop_capture_after=3200, expect_speech=True)
    sid = client.request(
        "POST", "/v20160207/events", auth(token, **{"content-type": FORM_DATA}), end=False
    )
    await client.send(sid, metadata_part(recognize(profile, "d-far")) + audio_head())
    await client.send(sid, b"\x00" * 1600)
    await asyncio.sleep(0.05)
    assert not client.streams[sid].headers.done()  # not enough audio yet
    await client.send(sid, b"\x00" * 1600)
    headers = await client.response(sid)  # upload still open
    assert headers[":status"] == "200"
    await client.wait_data(sid, b"StopCapture")
    stop = parse_related(bytes(client.streams[sid].data), boundary_of(headers["content-type"]))
    assert json.loads(stop[0][1])["directive"]["header"]["name"] == "StopCapture"
    await client.send(sid, b"\x01" * 320 + closing(), end=True)
    parts = directives_of(headers, await client.body(sid))
    names = [
        json.loads(p[1])["directive"]["header"]["name"] for p in (parts[0], parts[1], parts[3])
    ]
    assert names == ["StopCapture", "Speak", "ExpectSpeech"]
    assert parts[2][1] == speech_asset("hello")
    expect = json.loads(parts[3][1])["directive"]
    assert expect["payload"]["timeoutInMilliseconds"] == 8000
    assert expect["header"]["dialogRequestId"] == "d-far"
    event = sim.events[-1]
    assert event.audio == b"\x00" * 3200 + b"\x01" * 320


async def test_stop_capture_can_be_disabled(sim: Simulator, client: RawClient, token: str) -> None:
    """stop_capture_after=None answers NEAR_FIELD like CLOSE_TALK."""
    sim.script.recognize(stop_capture_after=None, speech="follow_up")
    headers, body = await post_event(
        client, token, event_body(recognize("NEAR_FIELD"), b"a" * 64000)
    )
    parts = directives_of(headers, body)
    assert [json.loads(parts[0][1])["directive"]["header"]["name"]] == ["Speak"]
    assert parts[1][1] == speech_asset("follow_up")


async def test_recognize_handler_callable_sync_and_async(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """A callable (plain or async) decides the Recognize reply and sees the whole event."""
    seen = []

    def handler(event):  # type: ignore[no-untyped-def]
        seen.append(event)
        return ScriptedReply.of(
            directive("Speaker", "SetVolume", {"volume": 5}, dialog_request_id="x"),
            attachments={"extra": b"bytes"},
        )

    sim.script.recognize(handler)
    headers, body = await post_event(client, token, event_body(recognize(), b"pcm"))
    parts = directives_of(headers, body)
    assert json.loads(parts[0][1])["directive"]["payload"] == {"volume": 5}
    assert parts[1] == (
        {"content-type": "application/octet-stream", "content-id": "<extra>"},
        b"bytes",
    )
    assert seen[0].audio == b"pcm"

    async def async_handler(event):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return ScriptedReply(status=204)

    sim.script.recognize(async_handler)
    headers, body = await post_event(client, token, event_body(recognize(), b"pcm"))
    assert headers[":status"] == "204"


async def test_handler_returning_nothing_after_stop_capture_still_closes_the_body(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """A reply without directives after StopCapture ends with a skippable part and the close."""
    sim.script.recognize(lambda event: ScriptedReply(), stop_capture_after=0)
    headers, body = await post_event(client, token, event_body(recognize("NEAR_FIELD"), b"x"))
    parts = directives_of(headers, body)
    assert json.loads(parts[0][1])["directive"]["header"]["name"] == "StopCapture"
    assert parts[1] == ({"content-type": "text/plain"}, b"")
    assert body.endswith(b"--\r\n")


async def test_handler_failure_answers_500(sim: Simulator, client: RawClient, token: str) -> None:
    """A reply handler that raises makes the event answer 500 INTERNAL_SERVICE_EXCEPTION."""

    def broken(event):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    sim.script.recognize(broken)
    headers, body = await post_event(client, token, event_body(recognize(), b"pcm"))
    assert headers[":status"] == "500"
    assert json.loads(body)["payload"]["code"] == "INTERNAL_SERVICE_EXCEPTION"
    assert sim.events[-1].status == 500


async def test_synchronize_state_and_other_events_get_204_and_are_recorded(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """SynchronizeState and unscripted events answer 204; every field is recorded."""
    context = [
        {"header": {"namespace": "Speaker", "name": "VolumeState"}, "payload": {"volume": 40}}
    ]
    sync = event_metadata("System", "SynchronizeState", context=context)
    headers, body = await post_event(client, token, event_body(sync))
    assert (headers[":status"], body) == ("204", b"")
    started = event_metadata("SpeechSynthesizer", "SpeechStarted", {"token": "t1"})
    headers, _ = await post_event(client, token, event_body(started))
    assert headers[":status"] == "204"
    event = await sim.wait_for_event("SpeechSynthesizer", "SpeechStarted")
    assert event.message_id == started["event"]["header"]["messageId"]
    assert event.payload == {"token": "t1"}
    assert event.context == []
    assert event.json == started
    assert event.audio == b""
    assert event.http_headers["authorization"] == f"Bearer {token}"
    assert event.http_headers[":path"] == "/v20160207/events"
    assert event.stream_id > 0
    assert event.connection_id >= 1
    first = await sim.wait_for_event("System", "SynchronizeState")
    assert first.context == context
    assert [e.name for e in sim.events] == ["SynchronizeState", "SpeechStarted"]
    with pytest.raises(TimeoutError):
        await sim.wait_for_event("System", "SynchronizeState", nth=2, timeout=0.1)


async def test_scripted_reply_for_other_events(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """script.on answers an event with a fixed reply, a handler, or back to 204."""
    alert = directive("Alerts", "SetAlert", {"token": "a", "type": "TIMER"})
    sim.script.on("System", "SynchronizeState", ScriptedReply.of(alert))
    headers, body = await post_event(
        client, token, event_body(event_metadata("System", "SynchronizeState"))
    )
    assert json.loads(directives_of(headers, body)[0][1]) == alert
    sim.script.on("System", "SynchronizeState", lambda e: ScriptedReply(status=429))
    headers, body = await post_event(
        client, token, event_body(event_metadata("System", "SynchronizeState"))
    )
    assert headers[":status"] == "429"
    assert json.loads(body)["payload"]["code"] == "THROTTLING_EXCEPTION"
    sim.script.on("System", "SynchronizeState", None)
    headers, _ = await post_event(
        client, token, event_body(event_metadata("System", "SynchronizeState"))
    )
    assert headers[":status"] == "204"


async def test_extra_parts_are_recorded(sim: Simulator, client: RawClient, token: str) -> None:
    """Parts other than metadata and audio (wakewordEngineMetadata) are kept."""
    body = (
        metadata_part(recognize())
        + audio_head()
        + b"pcm"
        + b"\r\n--sim-test-boundary-4f7a9c\r\n"
        + b'Content-Disposition: form-data; name="wakewordEngineMetadata"\r\n'
        + b"Content-Type: application/json\r\n\r\n{}"
        + closing()
    )
    headers, _ = await post_event(client, token, body)
    assert headers[":status"] == "200"
    assert sim.events[-1].extra_parts == (("wakewordEngineMetadata", "application/json", b"{}"),)


MALFORMED = {
    "not multipart": ("application/json", event_body(event_metadata("A", "B"))),
    "no boundary": ("multipart/form-data", event_body(event_metadata("A", "B"))),
    "wrong boundary": ("multipart/form-data; boundary=other", event_body(event_metadata("A", "B"))),
    "bad json": (FORM_DATA, metadata_part({"x": 1})[:-3] + b"{{{" + closing()),
    "no event header": (FORM_DATA, event_body({"event": {"payload": {}}})),
    "empty name": (FORM_DATA, event_body(event_metadata("A", ""))),
    "audio first": (
        FORM_DATA,
        b'--sim-test-boundary-4f7a9c\r\nContent-Disposition: form-data; name="audio"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\nxx" + closing(),
    ),
    "metadata not json type": (
        FORM_DATA,
        metadata_part(event_metadata("A", "B")).replace(b"application/json", b"text/plain")
        + closing(),
    ),
    "truncated": (FORM_DATA, metadata_part(event_metadata("A", "B"))),
    "recognize without audio": (FORM_DATA, event_body(recognize())),
    "two audio parts": (
        FORM_DATA,
        metadata_part(recognize()) + audio_head() + b"a" + audio_head() + b"b" + closing(),
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_malformed_events_get_400(
    sim: Simulator, client: RawClient, token: str, case: str
) -> None:
    """Malformed uploads answer 400 INVALID_REQUEST_EXCEPTION and are not recorded."""
    content_type, body = MALFORMED[case]
    headers, response = await post_event(client, token, body, content_type)
    assert headers[":status"] == "400"
    assert json.loads(response)["payload"]["code"] == "INVALID_REQUEST_EXCEPTION"
    assert sim.events == []


async def test_audio_limit(token: str) -> None:
    """Audio beyond max_audio_bytes is refused with 400."""
    async with Simulator(tls=False, config=SimulatorConfig(max_audio_bytes=1000)) as sim:
        sim.add_token(token)
        raw = await RawClient.connect(sim)
        try:
            headers, body = await post_event(raw, token, event_body(recognize(), b"z" * 1001))
            assert headers[":status"] == "400"
            assert b"audio longer than 1000 bytes" in body
        finally:
            await raw.aclose()


def test_config_is_checked() -> None:
    """SimulatorConfig rejects values HTTP/2 does not allow."""
    with pytest.raises(ValueError, match="initial_window_size"):
        SimulatorConfig(initial_window_size=2**31)
    with pytest.raises(ValueError, match="max_frame_size"):
        SimulatorConfig(max_frame_size=1000)
    with pytest.raises(ValueError, match="max_concurrent_streams"):
        SimulatorConfig(max_concurrent_streams=0)


async def test_many_events_in_parallel_within_stream_limit(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """Eight events in flight at once (AVS allows 10 streams) are all answered."""
    bodies = [event_body(event_metadata("Test", f"E{i}")) for i in range(8)]
    results = await asyncio.gather(*(post_event(client, token, b) for b in bodies))
    assert [h[":status"] for h, _ in results] == ["204"] * 8
    assert sorted(e.name for e in sim.events) == sorted(f"E{i}" for i in range(8))
