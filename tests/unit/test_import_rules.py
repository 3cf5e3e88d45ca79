"""The layering of docs/architecture.md, enforced on every import statement of the product.

Every import counts: at module level, inside functions, and under ``if TYPE_CHECKING:``.  A
violation fails with the file, the line and the rule it breaks; an import cycle is shown as the
chain ``a -> b -> a``.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("firmware", "hal", "centralsystem")

# Third-party libraries and the only packages that may import them.
OWNERS = {
    "gpiozero": ("hal.gpio", "hal.sim"),  # hal.sim: only the mock pin factory
    "lgpio": ("hal.gpio",),
    "RPi": ("hal.gpio",),
    "pymodbus": ("hal.modbus",),
    "serial": ("hal.modbus", "hal.cardreader"),
    # The daemon's OCPP edge, and the bundled central system (not part of the daemon).
    "ocpp": ("firmware.ocpp", "centralsystem"),
    "websockets": ("firmware.ocpp", "centralsystem"),
    # The local web page, loaded only when [web] enabled = true (firmware.app imports
    # firmware.web inside a function): test_the_web_page_is_not_loaded_unless_enabled.
    "aiohttp": ("firmware.web",),
    "cryptography": (
        "firmware.certificates",
        "firmware.certificate_checks",
        "firmware.release.signing",
    ),
}
# firmware modules allowed to name a HAL backend (lazily, inside functions).
COMPOSITION_ROOTS = ("firmware.app", "firmware.app_keys", "firmware.app_devices")
HAL_CONTRACTS = ("hal.types", "hal.interfaces", "hal.config")
# The core: none of the I/O libraries of OWNERS.
CORE = (
    "firmware.charging",
    "firmware.charging_types",
    "firmware.charging_handlers",
    "firmware.charging_faults",
    "firmware.charging_shared",
    "firmware.charging_reservation",
    "firmware.pilot",
    "firmware.smart",
    "firmware.smart_limit",
    "firmware.config_keys",
    "firmware.metering",
    "firmware.domain",
    "firmware.redaction",
    "firmware.clock",
    "firmware.key_handles",
    "firmware.key_registry",
    "firmware.key_store",
    "firmware.site_limit",
    "firmware.grid_meter",
    "firmware.ports",
    "firmware.transactions",
    "firmware.profile_store",
    "firmware.local_list",
    "firmware.smart_charging",
    "firmware.smart_installed",
    "firmware.smart_allocation",
    "firmware.smart_composite",
)
# Pure: no I/O at all, not even the standard library's (what loading them loads is checked).
PURE = (
    "firmware.charging",
    "firmware.charging_types",
    "firmware.charging_handlers",
    "firmware.charging_faults",
    "firmware.charging_shared",
    "firmware.pilot",
    "firmware.smart",
    "firmware.smart_limit",
    "firmware.smart_composite",
    "firmware.domain",
    "firmware.metering",
    "firmware.redaction",
    "firmware.key_handles",
    "firmware.key_registry",
    "firmware.site_limit",
)
IO_MODULES = (
    "asyncio",
    "socket",
    "sqlite3",
    "ssl",
    "ocpp",
    "websockets",
    "gpiozero",
    "pymodbus",
    "serial",
    "cryptography",
    "firmware.storage",
    "firmware.ocpp",
    "firmware.connector",
    "firmware.connector_senses",
    "firmware.connector_timers",
    "firmware.app",
    "firmware.app_blocks",
    "firmware.app_devices",
    "firmware.app_keys",
)
# What the daemon never loads: the command line and the bench central system.
DAEMON = "firmware.app"
NOT_THE_DAEMON = ("firmware.cli", "centralsystem")

Edge = tuple[int, str, str | None]  # (line, the module named, the product module it loads)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the product under ``root``: dotted name -> file."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(path: Path, module: str, known: Iterable[str]) -> list[Edge]:
    """Every import statement of ``path`` (anywhere in it): the module named, and the product
    module it loads (``from firmware import app`` loads firmware.app), None for a library."""
    names = set(known)
    is_package = path.name == "__init__.py"

    def in_product(name: str) -> str | None:
        while name and name not in names:
            name = name.rpartition(".")[0]
        return name or None

    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Edge] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, in_product(a.name)) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = module.split(".")
                package = package[: len(package) - (node.level - (1 if is_package else 0))]
                base = ".".join([*package, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append((node.lineno, base, child if child in names else in_product(base)))
    return found


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _graph(root: Path) -> tuple[dict[str, Path], dict[str, list[Edge]]]:
    mods = modules(root)
    return mods, {m: _imports(p, m, mods) for m, p in mods.items()}


def _layer_violations(root: Path, mods: dict[str, Path], edges: dict[str, list[Edge]]) -> list[str]:
    problems = []
    for module, path in mods.items():
        rel = path.relative_to(root)
        for line, imported, _ in edges[module]:
            top = imported.split(".")[0]
            where = f"{rel}:{line} imports {imported}"
            if top in OWNERS and not _within(module, OWNERS[top]):
                problems.append(f"{where}: only {', '.join(OWNERS[top])} may import {top}")
            if module.startswith("hal") and top == "firmware":
                problems.append(f"{where}: hal never imports firmware")
            if (
                module.startswith("firmware")
                and top == "hal"
                and not _within(imported, HAL_CONTRACTS)
                and not _within(module, COMPOSITION_ROOTS)
            ):
                problems.append(
                    f"{where}: firmware uses only {', '.join(HAL_CONTRACTS)}; "
                    f"backends are named in firmware.app"
                )
            if _within(module, CORE) and top in OWNERS:
                problems.append(f"{where}: the core imports no I/O library")
            if (
                _within(module, HAL_CONTRACTS)
                and top == "hal"
                and not _within(imported, HAL_CONTRACTS)
            ):
                problems.append(f"{where}: contracts import nothing but contracts")
    return problems


def _reach_violations(root: Path, mods: dict[str, Path], edges: dict[str, list[Edge]]) -> list[str]:
    """What firmware.app loads, transitively (importing a.b.c also runs a and a.b), must not
    import the command line or the central system."""
    if DAEMON not in mods:
        return []
    came_from: dict[str, str | None] = {DAEMON: None}
    queue = deque([DAEMON])
    problems = []
    while queue:
        module = queue.popleft()
        for line, imported, target in edges[module]:
            if _within(imported, NOT_THE_DAEMON) or (target and _within(target, NOT_THE_DAEMON)):
                chain = [module]
                while (before := came_from[chain[-1]]) is not None:
                    chain.append(before)
                problems.append(
                    f"{mods[module].relative_to(root)}:{line} imports {imported}: nothing "
                    f"reachable from {DAEMON} imports {' or '.join(NOT_THE_DAEMON)} "
                    f"(reached by {' -> '.join(reversed(chain))})"
                )
                continue
            if target is None:
                continue
            parts = target.split(".")
            for loaded in (".".join(parts[:n]) for n in range(1, len(parts) + 1)):
                if loaded in mods and loaded not in came_from:
                    came_from[loaded] = module
                    queue.append(loaded)
    return problems


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """start -> ... -> start, fewest hops, inside one component."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v] & within):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if w not in came_from:
                came_from[w] = v
                queue.append(w)
    raise AssertionError(f"{start} is on no cycle")


def import_cycles(root: Path = REPO) -> list[list[str]]:
    """The strongly connected components of the import graph (more than one module each)."""
    _, edges = _graph(root)
    return _components(_module_graph(edges))


def _module_graph(edges: dict[str, list[Edge]]) -> dict[str, set[str]]:
    return {m: {t for _, _, t in found if t is not None and t != m} for m, found in edges.items()}


def _cycle_violations(root: Path, mods: dict[str, Path], edges: dict[str, list[Edge]]) -> list[str]:
    graph = _module_graph(edges)
    problems = []
    for component in _components(graph):
        chain = _shortest_cycle(graph, component[0], set(component))
        hops = []
        for a, b in pairwise(chain):
            line = min(n for n, _, t in edges[a] if t == b)
            hops.append(f"{mods[a].relative_to(root)}:{line}")
        problems.append(
            f"{hops[0]} imports {chain[1]}: import cycle {' -> '.join(chain)} "
            f"(imports at {', '.join(hops)}); no import cycle, TYPE_CHECKING imports counted: "
            f"two modules that need each other meet through a Protocol in firmware/ports.py"
        )
    return problems


def violations(root: Path = REPO) -> list[str]:
    """Every broken rule under ``root``, one line each: ``file:line imports name: rule``."""
    mods, edges = _graph(root)
    return (
        _layer_violations(root, mods, edges)
        + _reach_violations(root, mods, edges)
        + _cycle_violations(root, mods, edges)
    )


def test_product_code_keeps_the_import_rules() -> None:
    assert violations() == []


def test_the_daemon_reaches_neither_the_command_line_nor_the_central_system() -> None:
    mods, edges = _graph(REPO)
    assert _reach_violations(REPO, mods, edges) == []
    # and the check does look: the command line itself reaches the central system.
    graph = _module_graph(edges)
    assert "centralsystem.console" in graph["firmware.cli"]


def test_backends_are_imported_lazily_in_the_composition_root() -> None:
    """firmware.app and its parts may name backends, but only inside functions, so importing them
    loads none."""
    for root in COMPOSITION_ROOTS:
        tree = ast.parse((REPO / (root.replace(".", "/") + ".py")).read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in top_level:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                assert not (name or "").startswith(
                    ("hal.gpio", "hal.modbus", "hal.sim", "hal.assembly", "firmware.ocpp")
                ), f"{root}: {name}"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_names_file_line_and_rule_in_a_violating_tree(tmp_path: Path) -> None:
    """The real checker on a small product tree that breaks each kind of rule once."""
    _write(
        tmp_path,
        {
            "firmware/__init__.py": "",
            "firmware/app.py": "def run() -> None:\n    from firmware import charger\n",
            # charger -> meter -> charger, the way back only for the type checker
            "firmware/charger.py": "import asyncio\n\nfrom firmware.meter import Meter\n",
            "firmware/meter.py": (
                "from typing import TYPE_CHECKING\n\nimport websockets\n\n"
                "if TYPE_CHECKING:\n    from firmware.charger import Charger\n\n\n"
                "def show() -> None:\n    from firmware.cli import doctor\n"
            ),
            "firmware/cli/__init__.py": "",
            "firmware/cli/doctor.py": "from centralsystem import server\n",
            "hal/__init__.py": "",
            "hal/types.py": "",
            "centralsystem/__init__.py": "",
            "centralsystem/server.py": "import ocpp\nimport websockets\n",
        },
    )
    assert violations(tmp_path) == [
        (
            "firmware/meter.py:3 imports websockets: only firmware.ocpp, centralsystem may import "
            "websockets"
        ),
        (
            "firmware/meter.py:10 imports firmware.cli: nothing reachable from firmware.app "
            "imports firmware.cli or centralsystem (reached by firmware.app -> firmware.charger -> "
            "firmware.meter)"
        ),
        (
            "firmware/charger.py:3 imports firmware.meter: import cycle firmware.charger -> "
            "firmware.meter -> firmware.charger (imports at firmware/charger.py:3, "
            "firmware/meter.py:6); no import cycle, TYPE_CHECKING imports counted: two modules "
            "that need each other meet through a Protocol in firmware/ports.py"
        ),
    ]
    # A longer cycle, through a function-level import, is shown as its shortest chain.
    _write(
        tmp_path,
        {
            "firmware/charger.py": "from firmware.meter import Meter\n",
            "firmware/meter.py": "from firmware import power\n",
            "firmware/power.py": "def f() -> None:\n    import firmware.charger\n",
        },
    )
    cycles = [v for v in violations(tmp_path) if "import cycle" in v]
    assert cycles == [
        (
            "firmware/charger.py:1 imports firmware.meter: import cycle firmware.charger -> "
            "firmware.meter -> firmware.power -> firmware.charger (imports at "
            "firmware/charger.py:1, firmware/meter.py:1, firmware/power.py:2); no import cycle, "
            "TYPE_CHECKING imports counted: two modules that need each other meet through a "
            "Protocol in firmware/ports.py"
        )
    ]


def test_the_pure_modules_load_no_io_at_all() -> None:
    """CORE imports none of the third-party I/O libraries; PURE goes further: loading it (in a
    fresh process) loads no asyncio, socket, sqlite3 or ssl either, nor the daemon's I/O
    modules, so the state machine, the pilot layer, the metering, the redaction and the key
    registry are tested and reasoned about without any I/O."""
    import subprocess
    import sys

    code = (
        f"import sys; import {', '.join(PURE)}; "
        f"print(' '.join(m for m in {IO_MODULES!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split()
    assert loaded == []


def test_the_web_page_is_not_loaded_unless_enabled() -> None:
    """A charger without ``[web] enabled`` pays nothing for the page: loading the daemon (and
    reading a configuration file) loads neither aiohttp nor the web server."""
    import subprocess
    import sys

    code = (
        "import sys; import firmware.app, firmware.settings_load; "
        "from firmware.settings import example_path; "
        "firmware.settings_load.load(example_path('bench')); "
        "print(' '.join(m for m in ('aiohttp', 'firmware.web.server') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split()
    assert loaded == []
