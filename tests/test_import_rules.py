"""The layering of docs/architecture.md, enforced on every import statement of the product.

A violation fails with the file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Third-party libraries and the only packages that may import them.
OWNERS = {
    "gpiozero": ("hal.gpio", "hal.sim"),  # hal.sim: only the mock pin factory
    "lgpio": ("hal.gpio",),
    "RPi": ("hal.gpio",),
    "pymodbus": ("hal.modbus",),
    "serial": ("hal.modbus", "hal.cardreader"),
    "ocpp": ("firmware.ocpp",),
    "websockets": ("firmware.ocpp",),
    "cryptography": ("firmware.certificates",),
}
# firmware modules allowed to name a HAL backend (lazily, inside functions).
COMPOSITION_ROOTS = ("firmware.app",)
HAL_CONTRACTS = ("hal.types", "hal.interfaces", "hal.config")
# The pure core: no I/O libraries at all.
CORE = ("firmware.charging", "firmware.config_keys", "firmware.metering", "firmware.domain",
        "firmware.ports", "firmware.transactions")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for package in ("firmware", "hal"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out.append((".".join(parts), path))
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def violations() -> list[str]:
    problems = []
    for module, path in _modules():
        rel = path.relative_to(REPO)
        for line, imported in _imports(path):
            top = imported.split(".")[0]
            where = f"{rel}:{line} imports {imported}"
            if top in OWNERS and not _within(module, OWNERS[top]):
                problems.append(f"{where}: only {', '.join(OWNERS[top])} may import {top}")
            if module.startswith("hal") and top == "firmware":
                problems.append(f"{where}: hal never imports firmware")
            if (module.startswith("firmware") and top == "hal"
                    and not _within(imported, HAL_CONTRACTS)
                    and not _within(module, COMPOSITION_ROOTS)):
                problems.append(f"{where}: firmware uses only {', '.join(HAL_CONTRACTS)}; "
                                f"backends are named in firmware.app")
            if _within(module, CORE) and top in OWNERS:
                problems.append(f"{where}: the core imports no I/O library")
            if _within(module, HAL_CONTRACTS) and top == "hal" and not _within(imported,
                                                                              HAL_CONTRACTS):
                problems.append(f"{where}: contracts import nothing but contracts")
    return problems


def test_product_code_keeps_the_import_rules() -> None:
    assert violations() == []


def test_backends_are_imported_lazily_in_the_composition_root() -> None:
    """firmware.app may name backends, but only inside functions, so importing it loads none."""
    tree = ast.parse((REPO / "firmware" / "app.py").read_text())
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in top_level:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
        for name in names:
            assert not (name or "").startswith(("hal.gpio", "hal.modbus", "hal.sim",
                                                "hal.assembly", "firmware.ocpp")), name


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import gpiozero\nfrom pymodbus.client import X\n")
    assert [name for _, name in _imports(bad)] == ["gpiozero", "pymodbus.client"]
    assert not _within("firmware.charging", OWNERS["gpiozero"])
