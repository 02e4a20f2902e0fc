"""The simulator's media server is one object from construction on: routes added before the
simulator starts are served, over the simulator's own CA."""

from __future__ import annotations

import ssl

import httpx

from avsclient.simulator import Simulator


async def test_a_route_added_before_start_is_served_with_the_simulators_ca() -> None:
    sim = Simulator()
    media = sim.media
    url_path = "/early.mp3"
    media.add(url_path, b"ID3early")
    async with sim:
        assert sim.media is media
        assert sim.ca_file is not None
        trust = ssl.create_default_context(cafile=sim.ca_file)
        async with httpx.AsyncClient(verify=trust) as http:
            response = await http.get(media.url(url_path))
    assert response.status_code == 200 and response.content == b"ID3early"
