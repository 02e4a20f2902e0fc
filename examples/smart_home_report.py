"""Tell Alexa about a camera, report a change, message the skill, then delete the camera.

    python examples/smart_home_report.py --simulator            # against a local simulator
    python examples/smart_home_report.py --client-id ID --client-secret SECRET \\
        --tokens user.json --user-id amzn1.ask.account.X --region EU

With real credentials, `user.json` is a token file holding the user's tokens from the skill's
AcceptGrant exchange (written by `TokenStore`); it is refreshed and rewritten as needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

from avsclient.auth import (
    ClientCredentialsTokenProvider,
    LWAConfig,
    LWAHttpClient,
    RefreshingTokenProvider,
    StoredTokens,
    TokenSet,
    TokenStore,
)
from avsclient.exceptions import AVSError
from avsclient.gateway import (
    AddOrUpdateReport,
    Cause,
    ChangeReport,
    DeleteReport,
    Endpoint,
    EventGatewayClient,
    GatewayConfig,
    GatewayRegion,
    SkillMessagingClient,
    SkillMessagingConfig,
    connectivity,
    detection_state,
    motion_sensor,
)


async def report(
    args: argparse.Namespace, lwa_url: str, ca_file: str | None, url: str | None
) -> None:
    lwa = LWAConfig(client_id=args.client_id, client_secret=args.client_secret, url=lwa_url)
    region = GatewayRegion[args.region]
    async with contextlib.AsyncExitStack() as stack:
        lwa_http = await stack.enter_async_context(LWAHttpClient(lwa_url, ca_file=ca_file))
        user_tokens = await stack.enter_async_context(
            RefreshingTokenProvider(lwa, store=TokenStore(args.tokens), http=lwa_http)
        )
        skill_tokens = await stack.enter_async_context(
            ClientCredentialsTokenProvider(lwa, http=lwa_http)
        )
        gateway = await stack.enter_async_context(
            EventGatewayClient(
                user_tokens, config=GatewayConfig(region=region, base_url=url, ca_file=ca_file)
            )
        )
        messaging = await stack.enter_async_context(
            SkillMessagingClient(
                skill_tokens,
                config=SkillMessagingConfig(region=region, base_url=url, ca_file=ca_file),
            )
        )
        camera = Endpoint.camera(
            "front-door-cam",
            "Front door",
            manufacturer_name="Acme",
            extra_capabilities=(motion_sensor(),),
        )
        result = await gateway.send(AddOrUpdateReport(endpoints=(camera,)))
        print(f"AddOrUpdateReport: {result.outcome.value} in {len(result.batches)} batch(es)")
        result = await gateway.send(
            ChangeReport(
                endpoint_id="front-door-cam",
                properties=(detection_state(True),),
                cause=Cause.PHYSICAL_INTERACTION,
                context=(connectivity(True),),
            )
        )
        print(f"ChangeReport: {result.outcome.value}")
        sent = await messaging.send(args.user_id, {"event": "motion", "camera": camera.endpoint_id})
        print(f"Skill message: {sent.outcome.value} (HTTP {sent.batches[-1].status}, queued)")
        result = await gateway.send(DeleteReport(endpoint_ids=("front-door-cam",)))
        print(f"DeleteReport: {result.outcome.value}")


async def with_simulator(args: argparse.Namespace) -> None:
    from avsclient.simulator import Simulator  # only the --simulator mode needs it

    with tempfile.TemporaryDirectory(prefix="smart-home-") as tmp:
        async with Simulator() as sim:
            sim.lwa.register_client(args.client_id, args.client_secret)
            args.tokens = str(Path(tmp) / "user.json")
            # As if the skill had exchanged an AcceptGrant code: an old access token and a
            # refresh token; the first report refreshes and rewrites the file.
            refresh = sim.lwa.issue_refresh_token(args.client_id)
            stale = TokenSet(access_token="Atza|old", refresh_token=refresh, expires_at=0.0)
            TokenStore(args.tokens).save(StoredTokens(client_id=args.client_id, tokens=stale))
            await report(args, sim.url, str(sim.ca_file), sim.url)
            print(f"The simulator received {len(sim.gateway.requests)} request(s).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", action="store_true", help="run against a local simulator")
    parser.add_argument("--client-id", default="amzn1.application-oa2-client.example")
    parser.add_argument("--client-secret", default="example-secret")
    parser.add_argument("--tokens", help="the user's token file")
    parser.add_argument("--user-id", default="amzn1.ask.account.EXAMPLE")
    parser.add_argument("--region", choices=[r.name for r in GatewayRegion], default="NA")
    args = parser.parse_args(argv)
    try:
        if args.simulator:
            asyncio.run(with_simulator(args))
        elif not args.tokens:
            parser.error("--tokens is required without --simulator")
        else:
            asyncio.run(report(args, "https://api.amazon.com", None, None))
    except AVSError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
