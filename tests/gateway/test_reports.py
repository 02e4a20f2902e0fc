"""Builders, report batching and JSON validation (no network)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from avsclient.exceptions import LocalProtocolError
from avsclient.gateway import (
    AddOrUpdateReport,
    CameraStreamConfiguration,
    Cause,
    ChangeReport,
    DeleteReport,
    Endpoint,
    EndpointCapability,
    GatewayConfig,
    GatewayRegion,
    ReportLimits,
    brightness,
    brightness_controller,
    camera_stream_controller,
    connectivity,
    contact_sensor,
    detection_state,
    motion_sensor,
    power_controller,
    power_state,
    validate_event,
)

AT = dt.datetime(2024, 3, 1, 7, 30, 0, 120_000, tzinfo=dt.UTC)
TOKEN = "Atza|" + "t" * 400


def lamp(endpoint_id: str = "lamp-1") -> Endpoint:
    return Endpoint(
        endpoint_id=endpoint_id,
        friendly_name="Lamp",
        description="A lamp",
        manufacturer_name="Acme",
        display_categories=("LIGHT",),
        capabilities=(power_controller(), brightness_controller()),
    )


def test_change_report_matches_the_protocol_example() -> None:
    """The encoded ChangeReport has the shape of avs-protocol.md 7.2."""
    report = ChangeReport(endpoint_id="lamp-1", properties=(power_state(True, at=AT),))
    (batch,) = report.batches()
    doc = json.loads(batch.encode(TOKEN))
    assert doc == {
        "event": {
            "header": {
                "namespace": "Alexa",
                "name": "ChangeReport",
                "messageId": batch.message_id,
                "payloadVersion": "3",
            },
            "endpoint": {"scope": {"type": "BearerToken", "token": TOKEN}, "endpointId": "lamp-1"},
            "payload": {
                "change": {
                    "cause": {"type": "PHYSICAL_INTERACTION"},
                    "properties": [
                        {
                            "namespace": "Alexa.PowerController",
                            "name": "powerState",
                            "value": "ON",
                            "timeOfSample": "2024-03-01T07:30:00.12Z",
                            "uncertaintyInMilliseconds": 0,
                        }
                    ],
                }
            },
        },
        "context": {"properties": []},
    }
    assert TOKEN not in repr(batch)


def test_camera_endpoint_carries_its_rtsp_stream_configuration() -> None:
    """Endpoint.camera lists Alexa, CameraStreamController (RTSP) and EndpointHealth."""
    stream = CameraStreamConfiguration(
        resolutions=((1280, 720), (1920, 1080)),
        authorization_types=("BASIC", "DIGEST"),
        audio_codecs=("G711",),
    )
    cam = Endpoint.camera(
        "cam-1",
        "Front door",
        manufacturer_name="Acme",
        streams=(stream,),
        extra_capabilities=(motion_sensor(),),
    )
    doc = cam.to_json()
    assert doc["displayCategories"] == ["CAMERA"]
    caps = {c["interface"]: c for c in doc["capabilities"]}
    assert list(caps) == [
        "Alexa",
        "Alexa.CameraStreamController",
        "Alexa.EndpointHealth",
        "Alexa.MotionSensor",
    ]
    assert caps["Alexa.CameraStreamController"]["cameraStreamConfigurations"] == [
        {
            "protocols": ["RTSP"],
            "resolutions": [{"width": 1280, "height": 720}, {"width": 1920, "height": 1080}],
            "authorizationTypes": ["BASIC", "DIGEST"],
            "videoCodecs": ["H264"],
            "audioCodecs": ["G711"],
        }
    ]
    assert caps["Alexa.EndpointHealth"]["properties"] == {
        "supported": [{"name": "connectivity"}],
        "proactivelyReported": True,
        "retrievable": True,
    }


def test_the_alexa_interface_is_added_when_missing() -> None:
    """Every endpoint lists the Alexa interface first."""
    doc = lamp().to_json()
    assert doc["capabilities"][0] == {
        "type": "AlexaInterface",
        "interface": "Alexa",
        "version": "3",
    }
    assert lamp().capability_count == 3


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: lamp("bad id"), "endpoint id"),
        (lambda: lamp("x" * 257), "endpoint id"),
        (lambda: Endpoint.camera("c", "", manufacturer_name="Acme"), "friendly_name"),
        (lambda: Endpoint.camera("c", "n" * 129, manufacturer_name="Acme"), "friendly_name"),
        (
            lambda: Endpoint(
                endpoint_id="c",
                friendly_name="n",
                description="d",
                manufacturer_name="m",
                display_categories=("TOASTER",),
                capabilities=(power_controller(),),
            ),
            "display_categories",
        ),
        (
            lambda: Endpoint(
                endpoint_id="c",
                friendly_name="n",
                description="d",
                manufacturer_name="m",
                display_categories=("LIGHT",),
                capabilities=(power_controller(), power_controller()),
            ),
            "twice",
        ),
        (
            lambda: Endpoint(
                endpoint_id="c",
                friendly_name="n",
                description="d",
                manufacturer_name="m",
                display_categories=("LIGHT",),
                capabilities=(power_controller(),),
                cookie={"k": "v" * 6000},
            ),
            "5000",
        ),
        (lambda: CameraStreamConfiguration(protocols=("RTMP",)), "protocols"),
        (lambda: CameraStreamConfiguration(video_codecs=()), "video_codecs"),
        (lambda: CameraStreamConfiguration(resolutions=((0, 1080),)), "resolution"),
        (lambda: EndpointCapability(interface="Power"), "interface"),
        (lambda: EndpointCapability(interface="Alexa.X", extra={"version": "2"}), "extra"),
        (lambda: EndpointCapability(interface="Alexa.X", extra={"v": float("inf")}), "plain JSON"),
        (lambda: brightness(101), "brightness"),
        (lambda: power_state(True, at=dt.datetime(2024, 1, 1)), "timezone"),
        (lambda: detection_state(True, interface="Alexa.Light"), "interface"),
        (lambda: ChangeReport(endpoint_id="a", properties=()), "at least one"),
        (
            lambda: ChangeReport(
                endpoint_id="a", properties=(power_state(True),), context=(power_state(False),)
            ),
            "context",
        ),
        (lambda: AddOrUpdateReport(endpoints=(lamp(), lamp())), "twice"),
        (lambda: DeleteReport(endpoint_ids=()), "at least one"),
        (lambda: GatewayConfig(base_url="https://h/v3/events"), "base_url"),
        (lambda: GatewayConfig(timeout=0), "timeout"),
        (lambda: ReportLimits(max_body_bytes=100), "max_body_bytes"),
    ],
)
def test_builders_reject_what_alexa_would_reject(build: object, match: str) -> None:
    """Bad ids, names, categories, codecs, values and limits raise ValueError when built."""
    with pytest.raises(ValueError, match=match):
        build()  # type: ignore[operator]


def test_property_helpers_render_their_values() -> None:
    """Each helper names its interface and renders the documented value."""
    values = {
        (p.namespace, p.name): p.to_json()["value"]
        for p in (
            power_state(False, at=AT),
            brightness(40, at=AT),
            connectivity(False, at=AT),
            detection_state(True, at=AT),
            detection_state(False, interface="Alexa.ContactSensor", at=AT),
        )
    }
    assert values == {
        ("Alexa.PowerController", "powerState"): "OFF",
        ("Alexa.BrightnessController", "brightness"): 40,
        ("Alexa.EndpointHealth", "connectivity"): {"value": "UNREACHABLE"},
        ("Alexa.MotionSensor", "detectionState"): "DETECTED",
        ("Alexa.ContactSensor", "detectionState"): "NOT_DETECTED",
    }
    assert contact_sensor().supported == ("detectionState",)
    assert camera_stream_controller().extra["cameraStreamConfigurations"][0]["protocols"] == [
        "RTSP"
    ]


def test_batches_respect_the_endpoint_limit() -> None:
    """601 endpoints make batches of 300, 300 and 1, each with its own messageId."""
    batches = DeleteReport(endpoint_ids=tuple(f"e{i}" for i in range(601))).batches()
    assert [len(b.endpoint_ids) for b in batches] == [300, 300, 1]
    assert len({b.message_id for b in batches}) == 3


def test_batches_respect_the_byte_limit_with_room_for_any_token() -> None:
    """Every batch encodes within the limit even with a 4096-byte token."""
    limits = ReportLimits(max_body_bytes=20_000)
    report = AddOrUpdateReport(endpoints=tuple(lamp(f"lamp-{i}") for i in range(100)))
    batches = report.batches(limits)
    assert len(batches) > 1
    for batch in batches:
        assert len(batch.encode("Atza|" + "x" * 4091)) <= 20_000
    ids = [i for b in batches for i in b.endpoint_ids]
    assert ids == [f"lamp-{i}" for i in range(100)]


def test_an_endpoint_that_cannot_fit_is_refused_when_batching() -> None:
    """One endpoint larger than the byte limit raises ValueError before anything is sent."""
    big = Endpoint(
        endpoint_id="big",
        friendly_name="Big",
        description="d",
        manufacturer_name="m",
        display_categories=("OTHER",),
        capabilities=tuple(EndpointCapability(interface=f"Alexa.I{i}") for i in range(90)),
    )
    with pytest.raises(ValueError, match="cannot fit"):
        AddOrUpdateReport(endpoints=(big,)).batches(ReportLimits(max_body_bytes=8192))
    with pytest.raises(ValueError, match="capabilities"):
        AddOrUpdateReport(endpoints=(big,)).batches(ReportLimits(max_capabilities=10))


def test_split_halves_keep_order_and_change_reports_do_not_split() -> None:
    """Discovery batches halve; a ChangeReport batch returns None."""
    (batch,) = DeleteReport(endpoint_ids=("a", "b", "c")).batches()
    halves = batch.split()
    assert halves is not None
    assert [h.endpoint_ids for h in halves] == [("a",), ("b", "c")]
    assert halves[0].split() is None
    (change,) = ChangeReport(endpoint_id="a", properties=(power_state(True),)).batches()
    assert change.split() is None and not change.splittable


def test_validate_event_names_the_first_problem() -> None:
    """validate_event rejects malformed documents with a JSON path in the message."""
    (batch,) = AddOrUpdateReport(endpoints=(lamp(),)).batches()
    good = batch.document(TOKEN)
    validate_event(good)

    def broken(path: list[str | int], value: object) -> object:
        doc = json.loads(json.dumps(good))
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return doc

    endpoint = ["event", "payload", "endpoints", 0]
    cases = [
        (broken(["event", "header", "payloadVersion"], "2"), "payloadVersion"),
        (broken(["event", "header", "name"], "Discover"), "not a gateway report"),
        (broken(["event", "payload", "scope", "token"], ""), "scope.token"),
        (broken([*endpoint, "endpointId"], "a b"), "endpointId"),
        (broken([*endpoint, "capabilities"], []), "capabilities"),
        (broken([*endpoint, "capabilities", 0, "interface"], "Alexa.X"), "'Alexa' interface"),
        (broken([*endpoint, "friendlyName"], 3), "friendlyName"),
        (
            broken(
                ["event", "payload", "endpoints"], [good["event"]["payload"]["endpoints"][0]] * 2
            ),
            "twice",
        ),
        ({"event": []}, "event"),
        ({"event": {"header": {}}, "x": float("nan")}, "plain JSON"),
    ]
    for doc, match in cases:
        with pytest.raises(LocalProtocolError, match=match):
            validate_event(doc)
    with pytest.raises(LocalProtocolError, match="more than 300"):
        validate_event(broken(["event", "payload", "endpoints"], [{"endpointId": "a"}] * 301))
    (change,) = ChangeReport(
        endpoint_id="a", properties=(power_state(True),), cause=Cause.RULE_TRIGGER
    ).batches()
    doc = change.document(TOKEN)
    doc["event"]["payload"]["change"]["cause"]["type"] = "MAGIC"
    with pytest.raises(LocalProtocolError, match=r"cause\.type"):
        validate_event(doc)
    doc = change.document(TOKEN)
    del doc["event"]["payload"]["change"]["properties"][0]["value"]
    with pytest.raises(LocalProtocolError, match="value"):
        validate_event(doc)


def test_regional_event_gateway_hosts() -> None:
    """NA, EU and FE resolve to their documented hosts; base_url overrides them."""
    assert GatewayConfig().url == "https://api.amazonalexa.com"
    assert GatewayConfig(region=GatewayRegion.EU).url == "https://api.eu.amazonalexa.com"
    assert GatewayConfig(region=GatewayRegion.FE).url == "https://api.fe.amazonalexa.com"
    assert GatewayConfig(region=GatewayRegion.FE, base_url="https://127.0.0.1:8443").url == (
        "https://127.0.0.1:8443"
    )
