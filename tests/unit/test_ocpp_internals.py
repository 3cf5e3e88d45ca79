"""firmware.ocpp.connection is the one module that touches the ocpp library's internals; this
fails loudly, naming the private name, when the installed library no longer has one of them."""

from __future__ import annotations

import ast
from pathlib import Path

from ocpp.v16 import ChargePoint

from firmware.ocpp import connection
from firmware.ocpp.connection import LIBRARY_INTERNALS, missing_internals
from tests.conftest import REPO


def test_the_installed_ocpp_library_still_has_every_internal_we_use() -> None:
    missing = missing_internals()
    assert not missing, (
        f"the installed ocpp library's ChargePoint lacks {', '.join(missing)}, which "
        f"firmware/ocpp/connection.py relies on: adapt it to the new version"
    )


def test_the_check_names_what_a_changed_library_lost() -> None:
    class Renamed(ChargePoint):
        def __init__(self, id: str, connection: object) -> None:
            super().__init__(id, connection)
            del self._response_timeout  # as if a new version called it otherwise

    assert missing_internals(Renamed) == ["_response_timeout"]

    class NoSend:
        def __init__(self, *_: object) -> None:
            for name in LIBRARY_INTERNALS:
                if name != "_send":
                    setattr(self, name, None)

    assert missing_internals(NoSend) == ["_send"]


def test_no_other_module_touches_the_library_privately() -> None:
    """Every attribute with a leading underscore that firmware.ocpp reads off something of the
    library (a ChargePoint, its connection) is one of LIBRARY_INTERNALS, and only
    connection.py reads them."""
    for path in sorted((REPO / "firmware" / "ocpp").glob("*.py")):
        if path.name == "connection.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in LIBRARY_INTERNALS
                and node.attr.startswith("_")
            ):
                raise AssertionError(
                    f"{path.name}:{node.lineno} uses {node.attr}: only "
                    f"{Path(connection.__file__).name} may"
                )
