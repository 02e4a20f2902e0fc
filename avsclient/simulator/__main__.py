"""`python -m avsclient.simulator [--port N] [--h2c]`: the same as `avsclient simulate`.

A program entry point like `avsclient/__main__.py`: it stands with the command line above the
simulator (the command's code lives in `avsclient.cli.simulate`).
"""

from __future__ import annotations

import argparse
import sys

from avsclient.cli import simulate

parser = argparse.ArgumentParser(
    prog="python -m avsclient.simulator", description="Run the local AVS simulator."
)
simulate.add_arguments(parser)
sys.exit(simulate.run(parser.parse_args()))
