"""`python -m avsclient.simulator [--port N] [--h2c]`: the same as `avsclient simulate`."""

from __future__ import annotations

import argparse
import sys

from avsclient.simulator import cli

parser = argparse.ArgumentParser(
    prog="python -m avsclient.simulator", description="Run the local AVS simulator."
)
cli.add_arguments(parser)
sys.exit(cli.run(parser.parse_args()))
