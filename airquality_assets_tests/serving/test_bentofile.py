"""The bento carries only the files ``bento/bentofile.yaml`` includes: every project module
the service imports when it loads must be among them, or the built bento fails to start
although the build (which imports from the repository) succeeded."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "airquality_assets"


def _included() -> set[Path]:
    spec = yaml.safe_load((ROOT / "bento" / "bentofile.yaml").read_text(encoding="utf-8"))
    return {path for pattern in spec["include"] for path in ROOT.glob(pattern)}


def _load_time_imports(path: Path) -> set[str]:
    """Project modules imported at module level (what runs when ``path`` is imported);
    imports inside functions run only when those are called."""
    found: set[str] = set()
    pending = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.If | ast.Try):
            pending.extend(node.body + node.orelse)
            pending.extend(getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                pending.extend(handler.body)
    return {name for name in found if name.split(".")[0] == PACKAGE}


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None  # a name imported from a module, not a module


def _parents(path: Path) -> set[Path]:
    """The ``__init__.py`` files Python runs before ``path``'s module."""
    found = set()
    for parent in path.relative_to(ROOT).parents:
        init = ROOT / parent / "__init__.py"
        if parent.parts and parent.parts[0] == PACKAGE and init.is_file():
            found.add(init)
    return found


def test_the_service_imports_only_included_files() -> None:
    included = _included()
    needed: set[Path] = set()
    pending = [ROOT / "bento" / "service.py"]
    while pending:
        path = pending.pop()
        if path in needed:
            continue
        needed.add(path)
        pending.extend(_parents(path))
        for module in _load_time_imports(path):
            found = _module_file(module)
            if found is not None:
                pending.append(found)
    missing = sorted(str(p.relative_to(ROOT)) for p in needed - included)
    assert not missing, f"bento/bentofile.yaml does not include {missing}"
