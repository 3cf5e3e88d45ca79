"""``chargepoint web password``: the ``[web] password_hash`` line for a password (scrypt,
``firmware.web.auth.hash_password``).  The password is read twice from the terminal, or once
from standard input with ``--stdin`` (a provisioning script); it is never printed."""

from __future__ import annotations

import getpass
import sys

from firmware.web.auth import hash_password


def password(from_stdin: bool) -> int:
    """Print ``password_hash = "..."``; 1 with a one-line reason when the password is refused."""
    if from_stdin:
        entered = sys.stdin.readline().rstrip("\r\n")
    else:
        entered = getpass.getpass("web page password: ")
        if getpass.getpass("the same again: ") != entered:
            print("chargepoint web password: the two passwords differ", file=sys.stderr)
            return 1
    try:
        line = hash_password(entered)
    except ValueError as exc:
        print(f"chargepoint web password: {exc}", file=sys.stderr)
        return 1
    print("# [web] in the configuration file (docs/web.md):", file=sys.stderr)
    print(f'password_hash = "{line}"')
    return 0
