"""Typed builders for smart-home endpoints, their capabilities and their property values.

Each builder checks its fields when it is made and renders the JSON the Alexa Discovery and
ChangeReport messages carry (avs-protocol.md 7.2; the Alexa.Discovery, Alexa.ChangeReport,
Alexa.CameraStreamController and Alexa.PowerController interface pages). No I/O.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DISPLAY_CATEGORIES",
    "CameraStreamConfiguration",
    "Endpoint",
    "EndpointCapability",
    "Property",
    "alexa_interface",
    "brightness",
    "brightness_controller",
    "camera_stream_controller",
    "check_endpoint_id",
    "connectivity",
    "contact_sensor",
    "detection_state",
    "endpoint_health",
    "motion_sensor",
    "power_controller",
    "power_state",
]

# Alexa.Discovery: endpointId is 1 to 256 characters of letters, digits and `_-=#;:?@&`.
_ENDPOINT_ID = re.compile(r"[A-Za-z0-9_\-=#;:?@&]{1,256}")
_INTERFACE = re.compile(r"Alexa(\.[A-Za-z][A-Za-z0-9]*)*")
_MAX_TEXT = 128  # friendlyName, description and manufacturerName (Alexa.Discovery)
_MAX_COOKIE_BYTES = 5000  # Alexa.Discovery: "cookie ... 5000 bytes or less"

DISPLAY_CATEGORIES = frozenset(
    {
        "ACTIVITY_TRIGGER",
        "CAMERA",
        "CONTACT_SENSOR",
        "DOOR",
        "DOORBELL",
        "FAN",
        "GARAGE_DOOR",
        "LIGHT",
        "MOTION_SENSOR",
        "OTHER",
        "SCENE_TRIGGER",
        "SECURITY_PANEL",
        "SMARTLOCK",
        "SMARTPLUG",
        "SPEAKER",
        "SWITCH",
        "TEMPERATURE_SENSOR",
        "THERMOSTAT",
        "TV",
    }
)

# Alexa.CameraStreamController's allowed values.
_STREAM_PROTOCOLS = frozenset({"RTSP", "HLS"})
_AUTHORIZATION_TYPES = frozenset({"BASIC", "DIGEST", "NONE"})
_VIDEO_CODECS = frozenset({"H264", "MPEG2", "MJPEG", "JPG"})
_AUDIO_CODECS = frozenset({"G711", "AAC", "NONE"})


def _check_text(name: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        raise ValueError(f"{name} must be 1 to {_MAX_TEXT} characters, got {value!r}")
    if not value.isprintable():
        raise ValueError(f"{name} must not contain control characters")


def check_endpoint_id(endpoint_id: str) -> str:
    """Return `endpoint_id` if Alexa accepts it.

    Raises:
        ValueError: it is empty, longer than 256 characters or uses other characters than
            letters, digits and `_-=#;:?@&`.
    """
    if not isinstance(endpoint_id, str) or not _ENDPOINT_ID.fullmatch(endpoint_id):
        raise ValueError(
            f"endpoint id {endpoint_id!r} must be 1 to 256 letters, digits or _-=#;:?@&"
        )
    return endpoint_id


def _json_value(name: str, value: Any) -> Any:
    """Check that `value` is plain, finite JSON (strict: no NaN, no non-string keys)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not plain JSON: {exc}") from None
    return value


# -- capabilities --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointCapability:
    """One capability (an Alexa interface) of an endpoint.

    The helpers below (`power_controller()`, `camera_stream_controller()`, ...) build the
    common ones; this class takes any other interface.

    Attributes:
        interface: the interface name, e.g. `Alexa.PowerController`.
        version: the interface version (`"3"`).
        supported: the property names the endpoint reports (`powerState`, ...).
        proactively_reported: the endpoint sends ChangeReports for these properties.
        retrievable: Alexa may ask for these properties' values.
        extra: further interface-specific keys, e.g. `cameraStreamConfigurations`.
    """

    interface: str
    version: str = "3"
    supported: tuple[str, ...] = ()
    proactively_reported: bool = False
    retrievable: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _INTERFACE.fullmatch(self.interface):
            raise ValueError(f"interface must look like 'Alexa.Name', got {self.interface!r}")
        if not self.version:
            raise ValueError("version must not be empty")
        if any(not isinstance(n, str) or not n for n in self.supported):
            raise ValueError("supported property names must be non-empty strings")
        reserved = {"type", "interface", "version", "properties"} & set(self.extra)
        if reserved:
            raise ValueError(f"extra must not set {sorted(reserved)}")
        _json_value(f"{self.interface} extra", dict(self.extra))

    def to_json(self) -> dict[str, Any]:
        """The capability object of a Discover.Response endpoint."""
        doc: dict[str, Any] = {
            "type": "AlexaInterface",
            "interface": self.interface,
            "version": self.version,
        }
        if self.supported:
            doc["properties"] = {
                "supported": [{"name": name} for name in self.supported],
                "proactivelyReported": self.proactively_reported,
                "retrievable": self.retrievable,
            }
        doc.update(self.extra)
        return doc


def alexa_interface() -> EndpointCapability:
    """The `Alexa` interface every endpoint must list (`Endpoint` adds it when missing)."""
    return EndpointCapability(interface="Alexa")


def power_controller(
    *, proactively_reported: bool = True, retrievable: bool = True
) -> EndpointCapability:
    """`Alexa.PowerController`: the endpoint turns on and off (`powerState`)."""
    return EndpointCapability(
        interface="Alexa.PowerController",
        supported=("powerState",),
        proactively_reported=proactively_reported,
        retrievable=retrievable,
    )


def brightness_controller(
    *, proactively_reported: bool = True, retrievable: bool = True
) -> EndpointCapability:
    """`Alexa.BrightnessController`: brightness in percent (`brightness`)."""
    return EndpointCapability(
        interface="Alexa.BrightnessController",
        supported=("brightness",),
        proactively_reported=proactively_reported,
        retrievable=retrievable,
    )


def endpoint_health(
    *, proactively_reported: bool = True, retrievable: bool = True
) -> EndpointCapability:
    """`Alexa.EndpointHealth`: whether the endpoint is reachable (`connectivity`)."""
    return EndpointCapability(
        interface="Alexa.EndpointHealth",
        supported=("connectivity",),
        proactively_reported=proactively_reported,
        retrievable=retrievable,
    )


def motion_sensor(
    *, proactively_reported: bool = True, retrievable: bool = True
) -> EndpointCapability:
    """`Alexa.MotionSensor`: motion detected or not (`detectionState`)."""
    return EndpointCapability(
        interface="Alexa.MotionSensor",
        supported=("detectionState",),
        proactively_reported=proactively_reported,
        retrievable=retrievable,
    )


def contact_sensor(
    *, proactively_reported: bool = True, retrievable: bool = True
) -> EndpointCapability:
    """`Alexa.ContactSensor`: contact open or closed (`detectionState`)."""
    return EndpointCapability(
        interface="Alexa.ContactSensor",
        supported=("detectionState",),
        proactively_reported=proactively_reported,
        retrievable=retrievable,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraStreamConfiguration:
    """One stream a camera offers (Alexa.CameraStreamController `cameraStreamConfigurations`).

    Attributes:
        protocols: `RTSP` (and/or `HLS`).
        resolutions: `(width, height)` pairs in pixels.
        authorization_types: `NONE`, `BASIC` and/or `DIGEST`.
        video_codecs: `H264`, `MPEG2`, `MJPEG` and/or `JPG`.
        audio_codecs: `G711`, `AAC` and/or `NONE`.
    """

    protocols: tuple[str, ...] = ("RTSP",)
    resolutions: tuple[tuple[int, int], ...] = ((1920, 1080),)
    authorization_types: tuple[str, ...] = ("NONE",)
    video_codecs: tuple[str, ...] = ("H264",)
    audio_codecs: tuple[str, ...] = ("AAC",)

    def __post_init__(self) -> None:
        for name, values, allowed in (
            ("protocols", self.protocols, _STREAM_PROTOCOLS),
            ("authorization_types", self.authorization_types, _AUTHORIZATION_TYPES),
            ("video_codecs", self.video_codecs, _VIDEO_CODECS),
            ("audio_codecs", self.audio_codecs, _AUDIO_CODECS),
        ):
            if not values or not set(values) <= allowed:
                raise ValueError(f"{name} must be a non-empty subset of {sorted(allowed)}")
        if not self.resolutions:
            raise ValueError("resolutions must not be empty")
        for res in self.resolutions:
            if (
                len(res) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) for v in res)
                or not (0 < res[0] <= 16384 and 0 < res[1] <= 16384)
            ):
                raise ValueError(f"a resolution is (width, height) in 1..16384 pixels, got {res!r}")

    def to_json(self) -> dict[str, Any]:
        """The configuration object."""
        return {
            "protocols": list(self.protocols),
            "resolutions": [{"width": w, "height": h} for w, h in self.resolutions],
            "authorizationTypes": list(self.authorization_types),
            "videoCodecs": list(self.video_codecs),
            "audioCodecs": list(self.audio_codecs),
        }


def camera_stream_controller(*configurations: CameraStreamConfiguration) -> EndpointCapability:
    """`Alexa.CameraStreamController` with the given stream configurations (default: one RTSP
    1080p H.264/AAC stream without authorization)."""
    configs = configurations or (CameraStreamConfiguration(),)
    return EndpointCapability(
        interface="Alexa.CameraStreamController",
        extra={"cameraStreamConfigurations": [c.to_json() for c in configs]},
    )


# -- endpoints -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One device as Alexa discovers it (a Discover.Response endpoint object).

    Attributes:
        endpoint_id: the device's id, 1 to 256 of letters, digits and `_-=#;:?@&`.
        friendly_name: the name users say, at most 128 characters.
        description: shown in the Alexa app, at most 128 characters.
        manufacturer_name: at most 128 characters.
        display_categories: how the Alexa app shows it, from `DISPLAY_CATEGORIES`.
        capabilities: its interfaces; `Alexa` is added first when missing.
        cookie: string keys and values handed back in directives (at most 5000 bytes).
        additional_attributes: optional `additionalAttributes` (manufacturer, model, ...).
    """

    endpoint_id: str
    friendly_name: str
    description: str
    manufacturer_name: str
    display_categories: tuple[str, ...]
    capabilities: tuple[EndpointCapability, ...]
    cookie: Mapping[str, str] = field(default_factory=dict)
    additional_attributes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_endpoint_id(self.endpoint_id)
        _check_text("friendly_name", self.friendly_name)
        _check_text("description", self.description)
        _check_text("manufacturer_name", self.manufacturer_name)
        if not self.display_categories or not set(self.display_categories) <= DISPLAY_CATEGORIES:
            raise ValueError(
                f"display_categories must be a non-empty subset of {sorted(DISPLAY_CATEGORIES)}"
            )
        if not self.capabilities or not all(
            isinstance(c, EndpointCapability) for c in self.capabilities
        ):
            raise ValueError("capabilities must be a non-empty tuple of Capability")
        interfaces = [c.interface for c in self.capabilities]
        if len(set(interfaces)) != len(interfaces):
            raise ValueError(f"an interface is listed twice in {interfaces}")
        for name, mapping in (
            ("cookie", self.cookie),
            ("additional_attributes", self.additional_attributes),
        ):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
                raise ValueError(f"{name} keys and values must be strings")
        if len(json.dumps(dict(self.cookie)).encode()) > _MAX_COOKIE_BYTES:
            raise ValueError(f"cookie must encode to at most {_MAX_COOKIE_BYTES} bytes")

    @classmethod
    def camera(
        cls,
        endpoint_id: str,
        friendly_name: str,
        *,
        manufacturer_name: str,
        description: str = "Camera",
        streams: Sequence[CameraStreamConfiguration] = (),
        extra_capabilities: Sequence[EndpointCapability] = (),
    ) -> Endpoint:
        """A camera: Alexa, Alexa.CameraStreamController (RTSP by default), EndpointHealth.

        Args:
            endpoint_id: the camera's id.
            friendly_name: the name users say.
            manufacturer_name: the maker.
            description: the app's description.
            streams: the stream configurations (default: one RTSP 1080p H.264 stream).
            extra_capabilities: more interfaces (e.g. `power_controller()`).
        """
        return cls(
            endpoint_id=endpoint_id,
            friendly_name=friendly_name,
            description=description,
            manufacturer_name=manufacturer_name,
            display_categories=("CAMERA",),
            capabilities=(
                alexa_interface(),
                camera_stream_controller(*streams),
                endpoint_health(),
                *extra_capabilities,
            ),
        )

    @property
    def capability_count(self) -> int:
        """How many capabilities `to_json()` lists (the `Alexa` interface included)."""
        has_alexa = any(c.interface == "Alexa" for c in self.capabilities)
        return len(self.capabilities) + (0 if has_alexa else 1)

    def to_json(self) -> dict[str, Any]:
        """The endpoint object of an AddOrUpdateReport (same shape as in Discover.Response)."""
        caps = list(self.capabilities)
        if not any(c.interface == "Alexa" for c in caps):
            caps.insert(0, alexa_interface())
        doc: dict[str, Any] = {
            "endpointId": self.endpoint_id,
            "manufacturerName": self.manufacturer_name,
            "description": self.description,
            "friendlyName": self.friendly_name,
            "displayCategories": list(self.display_categories),
            "cookie": dict(self.cookie),
            "capabilities": [c.to_json() for c in caps],
        }
        if self.additional_attributes:
            doc["additionalAttributes"] = dict(self.additional_attributes)
        return doc


# -- property values -----------------------------------------------------------------------


def _utc_text(moment: _dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("time_of_sample must be timezone-aware")
    utc = moment.astimezone(_dt.UTC)
    # Alexa's examples use ISO 8601 UTC with two fractional digits: 2017-02-03T16:20:50.52Z
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 10_000:02d}Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class Property:
    """One property value in a ChangeReport (changed, or unchanged in its context).

    Attributes:
        namespace: the interface, e.g. `Alexa.PowerController`.
        name: the property, e.g. `powerState`.
        value: its JSON value.
        time_of_sample: when it was read (timezone-aware).
        uncertainty_ms: how stale it may be, in milliseconds.
    """

    namespace: str
    name: str
    value: Any
    time_of_sample: _dt.datetime
    uncertainty_ms: int = 0

    def __post_init__(self) -> None:
        if not _INTERFACE.fullmatch(self.namespace):
            raise ValueError(f"namespace must look like 'Alexa.Name', got {self.namespace!r}")
        if not self.name:
            raise ValueError("name must not be empty")
        _json_value(f"{self.namespace}.{self.name} value", self.value)
        _utc_text(self.time_of_sample)
        if isinstance(self.uncertainty_ms, bool) or not 0 <= self.uncertainty_ms <= 2**31:
            raise ValueError("uncertainty_ms must be an int >= 0")

    def to_json(self) -> dict[str, Any]:
        """The property object."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "value": self.value,
            "timeOfSample": _utc_text(self.time_of_sample),
            "uncertaintyInMilliseconds": self.uncertainty_ms,
        }


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def power_state(on: bool, *, at: _dt.datetime | None = None, uncertainty_ms: int = 0) -> Property:
    """`Alexa.PowerController.powerState`: `ON` or `OFF`."""
    return Property(
        namespace="Alexa.PowerController",
        name="powerState",
        value="ON" if on else "OFF",
        time_of_sample=at or _now(),
        uncertainty_ms=uncertainty_ms,
    )


def brightness(
    percent: int, *, at: _dt.datetime | None = None, uncertainty_ms: int = 0
) -> Property:
    """`Alexa.BrightnessController.brightness`: 0 to 100."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValueError("brightness must be an int from 0 to 100")
    return Property(
        namespace="Alexa.BrightnessController",
        name="brightness",
        value=percent,
        time_of_sample=at or _now(),
        uncertainty_ms=uncertainty_ms,
    )


def connectivity(
    reachable: bool, *, at: _dt.datetime | None = None, uncertainty_ms: int = 0
) -> Property:
    """`Alexa.EndpointHealth.connectivity`: `{"value": "OK"}` or `{"value": "UNREACHABLE"}`."""
    return Property(
        namespace="Alexa.EndpointHealth",
        name="connectivity",
        value={"value": "OK" if reachable else "UNREACHABLE"},
        time_of_sample=at or _now(),
        uncertainty_ms=uncertainty_ms,
    )


def detection_state(
    detected: bool,
    *,
    interface: str = "Alexa.MotionSensor",
    at: _dt.datetime | None = None,
    uncertainty_ms: int = 0,
) -> Property:
    """`detectionState` of `Alexa.MotionSensor` or `Alexa.ContactSensor`."""
    if interface not in ("Alexa.MotionSensor", "Alexa.ContactSensor"):
        raise ValueError("interface must be Alexa.MotionSensor or Alexa.ContactSensor")
    return Property(
        namespace=interface,
        name="detectionState",
        value="DETECTED" if detected else "NOT_DETECTED",
        time_of_sample=at or _now(),
        uncertainty_ms=uncertainty_ms,
    )
