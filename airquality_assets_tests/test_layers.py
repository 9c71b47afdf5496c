"""The package's layers, read from the imports: the pure packages never import the Dagster
wiring or the programs, no import runs back up the flow, and packages form no cycle.

Layers (a unit may import only units listed before it, or itself):
kernel modules (columns, bounds, aqi, clock, ...) and ``data`` -> ``sources`` ->
``transforms`` -> ``storage`` -> ``ml`` -> ``monitoring`` / ``serving`` -> ``settings`` ->
``deployment`` (the production instance's classes) -> ``defs`` -> ``definitions`` ->
``programs``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import airquality_assets

PACKAGE_DIR = Path(airquality_assets.__file__).parent
KERNEL = {
    "__init__",
    "columns",
    "bounds",
    "aqi",
    "clock",
    "envconfig",
    "markdown",
    "quality",
    "schemas",
    "data",
}
ORDER = [
    "sources",
    "transforms",
    "storage",
    "ml",
    "monitoring",
    "serving",
    "settings",
    "deployment",
    "catalog",
    "defs",
    "definitions",
    "programs",
]
#: Units on one level: neither may import the other.
SIBLINGS = {frozenset({"monitoring", "serving"})}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _rank(unit: str) -> int:
    return -1 if unit in KERNEL else ORDER.index(unit)


@cache
def import_edges() -> dict[str, set[tuple[str, str]]]:
    """unit -> {(importing file, imported unit)} over every module of the package."""
    edges: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in PACKAGE_DIR.rglob("*.py"):
        relative = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
        unit = _unit(".".join(relative.parts))
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "airquality_assets":
                    names = [f"airquality_assets.{a.name}" for a in node.names]
                else:
                    names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("airquality_assets.") and _unit(name) != unit:
                    edges[unit].add((str(relative), _unit(name)))
    return edges


def test_every_unit_has_a_layer() -> None:
    units = {_unit(f"airquality_assets.{p.stem}") for p in PACKAGE_DIR.glob("*.py")}
    units |= {p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")}
    assert units <= KERNEL | set(ORDER), f"give these a layer: {units - KERNEL - set(ORDER)}"


def test_no_import_runs_back_up_and_siblings_stay_apart() -> None:
    upward = sorted(
        f"{path} imports {target}"
        for unit, targets in import_edges().items()
        for path, target in targets
        if _rank(target) > _rank(unit)
        or frozenset({unit, target}) in SIBLINGS
        or (unit in KERNEL and target in KERNEL and _kernel_cycle(unit, target))
    )
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def _kernel_cycle(unit: str, target: str) -> bool:
    back = import_edges().get(target, set())
    return any(t == unit for _, t in back)


def test_pure_packages_never_import_the_wiring_or_the_programs() -> None:
    pure = {"sources", "transforms", "ml", "monitoring", "serving", "storage", *KERNEL}
    wiring = {"defs", "definitions", "programs", "catalog"}
    offending = sorted(
        f"{path} imports {target}"
        for unit, targets in import_edges().items()
        if unit in pure
        for path, target in targets
        if target in wiring
    )
    assert not offending, "\n".join(offending)
