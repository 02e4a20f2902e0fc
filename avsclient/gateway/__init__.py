"""Smart-home event gateway and Skill Messaging clients (avs-protocol.md sections 7 and 8).

`EventGatewayClient` sends `AddOrUpdateReport`, `DeleteReport` and `ChangeReport` for one user,
built from typed `Endpoint`, `EndpointCapability` and `Property` builders; `SkillMessagingClient`
queues messages for a skill. Both take tokens from `avsclient.auth` providers, follow the
gateway's error table (`avsclient.gateway.core`, sans-IO) and end every report or message with
exactly one result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avsclient import _lazy

if TYPE_CHECKING:
    from avsclient.gateway.builders import (
        DISPLAY_CATEGORIES,
        CameraStreamConfiguration,
        Endpoint,
        EndpointCapability,
        Property,
        alexa_interface,
        brightness,
        brightness_controller,
        camera_stream_controller,
        check_endpoint_id,
        connectivity,
        contact_sensor,
        detection_state,
        endpoint_health,
        motion_sensor,
        power_controller,
        power_state,
    )
    from avsclient.gateway.client import EventGatewayClient, ReportResult
    from avsclient.gateway.config import (
        EVENT_GATEWAY_HOSTS,
        GATEWAY_RETRY,
        SKILL_MESSAGING_HOSTS,
        GatewayConfig,
        GatewayRegion,
        ReportLimits,
        RetryPolicy,
        SkillMessagingConfig,
    )
    from avsclient.gateway.core import (
        BatchOutcome,
        Delivery,
        DeliveryFinished,
        DeliveryResult,
        GatewayRetryScheduled,
        ReportOutcome,
        RequestReady,
        TokenRefreshRequired,
        parse_error_body,
    )
    from avsclient.gateway.reports import (
        AddOrUpdateReport,
        Batch,
        Cause,
        ChangeReport,
        DeleteReport,
        Report,
        validate_event,
    )
    from avsclient.gateway.skill_messaging import MessageResult, SkillMessage, SkillMessagingClient
else:
    __getattr__, __dir__ = _lazy.exports(
        __name__,
        {
            "avsclient.gateway.builders": (
                "DISPLAY_CATEGORIES",
                "CameraStreamConfiguration",
                "EndpointCapability",
                "Endpoint",
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
            ),
            "avsclient.gateway.client": ("EventGatewayClient", "ReportResult"),
            "avsclient.gateway.config": (
                "EVENT_GATEWAY_HOSTS",
                "GATEWAY_RETRY",
                "SKILL_MESSAGING_HOSTS",
                "GatewayConfig",
                "GatewayRegion",
                "ReportLimits",
                "RetryPolicy",
                "SkillMessagingConfig",
            ),
            "avsclient.gateway.core": (
                "BatchOutcome",
                "Delivery",
                "DeliveryFinished",
                "DeliveryResult",
                "ReportOutcome",
                "RequestReady",
                "GatewayRetryScheduled",
                "TokenRefreshRequired",
                "parse_error_body",
            ),
            "avsclient.gateway.reports": (
                "AddOrUpdateReport",
                "Batch",
                "Cause",
                "ChangeReport",
                "DeleteReport",
                "Report",
                "validate_event",
            ),
            "avsclient.gateway.skill_messaging": (
                "MessageResult",
                "SkillMessage",
                "SkillMessagingClient",
            ),
        },
    )

__all__ = [
    "AddOrUpdateReport",
    "Batch",
    "BatchOutcome",
    "CameraStreamConfiguration",
    "Cause",
    "ChangeReport",
    "DISPLAY_CATEGORIES",
    "DeleteReport",
    "Delivery",
    "DeliveryFinished",
    "DeliveryResult",
    "EVENT_GATEWAY_HOSTS",
    "Endpoint",
    "EndpointCapability",
    "EventGatewayClient",
    "GATEWAY_RETRY",
    "GatewayConfig",
    "GatewayRegion",
    "GatewayRetryScheduled",
    "MessageResult",
    "Property",
    "Report",
    "ReportLimits",
    "ReportOutcome",
    "ReportResult",
    "RequestReady",
    "RetryPolicy",
    "SKILL_MESSAGING_HOSTS",
    "SkillMessage",
    "SkillMessagingClient",
    "SkillMessagingConfig",
    "TokenRefreshRequired",
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
    "parse_error_body",
    "power_controller",
    "power_state",
    "validate_event",
]
