"""docs/state-diagram.md is generated from the state machine's rows and must be fresh."""

from __future__ import annotations

import re
from dataclasses import replace

from firmware import charging as m
from firmware.cli import charging_doc
from firmware.domain import ConnectorStatus as S
from tests.conftest import REPO

PAGE = REPO / "docs" / "state-diagram.md"
FIX = "run: python -m firmware.cli.charging_doc > docs/state-diagram.md"


def _mermaid(page: str) -> list[str]:
    block = page.split("```mermaid\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def test_the_state_diagram_page_is_fresh() -> None:
    assert PAGE.read_text() == charging_doc.render(), FIX


def test_a_changed_row_makes_the_page_stale() -> None:
    """What the freshness test compares: a new declared target is a new edge on the page."""
    table = {status: dict(rows) for status, rows in m.TRANSITIONS.items()}
    row = table[S.FINISHING][m.Plugged]
    table[S.FINISHING][m.Plugged] = replace(row, targets=row.targets | {S.PREPARING})
    changed = charging_doc.render(table)
    assert changed != PAGE.read_text()
    assert "    Finishing --> Preparing : Plugged" in _mermaid(changed)
    assert "    Finishing --> Preparing : Plugged" not in _mermaid(PAGE.read_text())


def test_every_edge_is_labelled_with_its_events() -> None:
    lines = _mermaid(PAGE.read_text())
    assert lines[:2] == ["stateDiagram-v2", "    [*] --> Available"]
    edge = re.compile(r"^    (\w+) --> (\w+) : (\w+(?:, \w+)*)$")
    drawn = set()
    for line in lines[2:]:
        found = edge.match(line)
        assert found, f"not an edge labelled with events: {line!r}"
        source, target = S(found[1]), S(found[2])
        for name in found[3].split(", "):
            row = next(r for e, r in m.TRANSITIONS[source].items() if e.__name__ == name)
            assert target in row.targets
            drawn.add((source, name, target))
    declared = {
        (status, event.__name__, target)
        for status, rows in m.TRANSITIONS.items()
        for event, row in rows.items()
        for target in row.targets
        if target is not status
    }
    assert drawn == declared
