"""`python -m avsclient` runs the command line."""

from __future__ import annotations

import sys

from avsclient.cli import main

sys.exit(main())
