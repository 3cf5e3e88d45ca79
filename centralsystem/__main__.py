"""``python -m centralsystem [--host H] [--port P] ...``: the same as ``chargepoint csms``."""

import sys

from firmware.cli import main

sys.exit(main(["csms", *sys.argv[1:]]))
