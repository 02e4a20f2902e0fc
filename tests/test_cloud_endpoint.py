"""`check_cloud_endpoint`: the one check of every endpoint URL AVS sends (System.SetEndpoint,
Alexa.ApiGateway.SetGateway) before anything stores or uses it."""

from __future__ import annotations

import pytest

from avsclient.config import (
    AMAZON_ENDPOINT_HOSTS,
    MAX_CLOUD_ENDPOINT,
    ClientConfig,
    Region,
    check_cloud_endpoint,
)
from avsclient.exceptions import DirectiveError, EndpointRejected


def test_the_default_hosts_are_the_gateways_of_every_region() -> None:
    """By default AVS may move a device to the current and legacy gateway hosts of the
    reference's region table, and nowhere else."""
    assert ClientConfig().endpoint_hosts == AMAZON_ENDPOINT_HOSTS
    assert set(AMAZON_ENDPOINT_HOSTS) == {
        "alexa.na.gateway.devices.a2z.com",
        "alexa.eu.gateway.devices.a2z.com",
        "alexa.fe.gateway.devices.a2z.com",
        "avs-alexa-na.amazon.com",
        "avs-alexa-eu.amazon.com",
        "avs-alexa-fe.amazon.com",
    }
    config = ClientConfig()
    for region in Region:
        assert config.check_cloud_endpoint(region.host) == region.host
        assert config.check_cloud_endpoint(region.legacy_host + "/") == region.legacy_host
    assert (
        config.check_cloud_endpoint("https://Alexa.NA.Gateway.Devices.A2Z.com:443")
        == "https://Alexa.NA.Gateway.Devices.A2Z.com:443"
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://alexa.na.gateway.devices.a2z.com", "must be https"),
        ("HTTP://alexa.na.gateway.devices.a2z.com", "must be https"),
        ("h2c://alexa.na.gateway.devices.a2z.com", "must be https"),
        ("//alexa.na.gateway.devices.a2z.com", "must be https"),
        ("alexa.na.gateway.devices.a2z.com", "must be https"),
        ("https://avs.attacker.invalid", "not one the configuration allows"),
        ("https://alexa.na.gateway.devices.a2z.com.attacker.invalid", "not one the"),
        ("https://evil-alexa.na.gateway.devices.a2z.com", "not one the"),
        ("https://alexa.na.gateway.devices.a2z.com.", "not one the"),  # trailing dot
        ("https://127.0.0.1:8443", "not one the"),
        ("https://alexa.na.gateway.devices.a2z.com@avs.attacker.invalid", "user name"),
        ("https://alexa.na.gateway.devices.a2z.com\\@avs.attacker.invalid", "user name"),
        ("https://user:pw@alexa.na.gateway.devices.a2z.com", "user name"),
        ("https://alexa.na.gateway.devices.a2z.com/v20160207", "without a path"),
        ("https://alexa.na.gateway.devices.a2z.com?x=1", "without a path"),
        ("https://alexa.na.gateway.devices.a2z.com?", "without a path"),
        ("https://alexa.na.gateway.devices.a2z.com#top", "without a path"),
        ("https://alexa.na.gateway.devices.a2z.com:notaport", "bad port"),
        ("https://alexa.na.gateway.devices.a2z.com:0", "bad port"),
        ("https://alexa.na.gateway.devices.a2z.com:65536", "bad port"),
        ("https://", "needs a host"),
        ("https://:443", "needs a host"),
        (" https://alexa.na.gateway.devices.a2z.com", "visible ASCII"),
        ("https://alexa.na.gateway.devices.a2z.com\n", "visible ASCII"),
        ("https://alexa.na.gate\tway.devices.a2z.com", "visible ASCII"),
        ("https://аlexa.na.gateway.devices.a2z.com", "visible ASCII"),  # Cyrillic a
        ("", "visible ASCII"),
        ("https://" + "a" * MAX_CLOUD_ENDPOINT, "at most"),
    ],
)
def test_refused_urls(url: str, why: str) -> None:
    """Each rule refuses with a message saying which one; the error reaches AVS as
    UNEXPECTED_INFORMATION_RECEIVED (a DirectiveError) and is a ValueError for callers."""
    with pytest.raises(EndpointRejected, match=why) as info:
        ClientConfig().check_cloud_endpoint(url)
    assert isinstance(info.value, DirectiveError) and isinstance(info.value, ValueError)
    assert info.value.error_type == "UNEXPECTED_INFORMATION_RECEIVED"
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("value", [None, 42, 4.5, True, ["https://x"], {"host": 1}])
def test_a_non_string_is_refused(value: object) -> None:
    with pytest.raises(EndpointRejected, match="must be a string"):
        check_cloud_endpoint(value, AMAZON_ENDPOINT_HOSTS)


def test_configured_hosts_replace_the_default() -> None:
    """A test or simulator setup names its own hosts (case-insensitively); a leading dot
    allows the hosts below a domain, not the domain itself."""
    config = ClientConfig(endpoint="http://127.0.0.1:9", endpoint_hosts=("127.0.0.1", "LocalHost"))
    assert config.endpoint_hosts == ("127.0.0.1", "localhost")
    assert config.check_cloud_endpoint("https://localhost:8443") == "https://localhost:8443"
    assert check_cloud_endpoint("https://[::1]:8443", ("::1",)) == "https://[::1]:8443"
    with pytest.raises(EndpointRejected):
        config.check_cloud_endpoint("https://alexa.na.gateway.devices.a2z.com")
    with pytest.raises(EndpointRejected, match="https"):
        config.check_cloud_endpoint("http://127.0.0.1:9")  # the configured one, but cleartext
    domain = (".gateway.devices.a2z.com",)
    assert check_cloud_endpoint("https://alexa.in.gateway.devices.a2z.com", domain)
    with pytest.raises(EndpointRejected):
        check_cloud_endpoint("https://gateway.devices.a2z.com", domain)
    with pytest.raises(EndpointRejected):
        check_cloud_endpoint("https://xgateway.devices.a2z.com", domain)


def test_the_endpoint_hosts_setting_is_checked() -> None:
    for bad in ("alexa.na.gateway.devices.a2z.com", ("",), ("a b",), (".",), (42,)):
        with pytest.raises(ValueError, match="endpoint_hosts"):
            ClientConfig(endpoint_hosts=bad)  # type: ignore[arg-type]
    assert ClientConfig(endpoint_hosts=()).endpoint_hosts == ()
    with pytest.raises(EndpointRejected):
        ClientConfig(endpoint_hosts=()).check_cloud_endpoint(Region.NA.host)
