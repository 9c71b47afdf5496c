"""What the asset catalog shows beside the data: owners, tags, code versions, source links.

Pure functions over the package's source files and a git remote URL; ``definitions.py``
applies them to every asset at load, so assets added later get them too.

* Owners and tags follow the asset's group (who answers for it, which stage it is).
* An asset's code version is a hash of the source of its defining module and of every
  module of this package that module imports, transitively: editing the cleaning rules
  marks the frames "code version changed" in the UI, editing the model does not.
* Code references point at the line that defines the asset; with a GitHub or GitLab remote
  they become links to that file at the checked-out commit.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path

PACKAGE = "airquality_assets"
PACKAGE_DIR = Path(__file__).resolve().parent

#: The asset groups, one per stage: jobs select by them, owners and tags follow from them.
INGESTION_GROUP = "ingestion"
FRAMES_GROUP = "frames"
MODEL_GROUP = "model"
SERVING_GROUP = "serving"
OPERATIONS_GROUP = "operations"

#: group -> owners (Dagster shows them on the asset and filters the catalog by them).
OWNERS_BY_GROUP: Mapping[str, tuple[str, ...]] = {
    INGESTION_GROUP: ("team:data-engineering",),
    FRAMES_GROUP: ("team:data-engineering",),
    MODEL_GROUP: ("team:ml",),
    SERVING_GROUP: ("team:ml",),
    OPERATIONS_GROUP: ("team:ml",),
}
DEFAULT_OWNERS = ("team:data-engineering",)

#: group -> the ``stage`` tag; every asset also carries ``domain: air-quality``.
STAGE_BY_GROUP: Mapping[str, str] = {
    INGESTION_GROUP: "raw",
    FRAMES_GROUP: "clean",
    MODEL_GROUP: "model",
    SERVING_GROUP: "serving",
    OPERATIONS_GROUP: "operations",
}


def catalog_tags(group: str | None) -> dict[str, str]:
    """User tags of an asset in ``group``."""
    return {"domain": "air-quality", "stage": STAGE_BY_GROUP.get(group or "", "other")}


def owners(group: str | None) -> list[str]:
    return list(OWNERS_BY_GROUP.get(group or "", DEFAULT_OWNERS))


@cache
def module_path(module: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """``airquality_assets.defs.data.frames`` -> its file under ``package_dir`` (None: not ours).

    Cached: the closures ask for the same few modules over and over (1,758 look-ups a load)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(file_path: str | Path, package_dir: Path = PACKAGE_DIR) -> str | None:
    """The inverse of :func:`module_path`: a file of this package -> its dotted name."""
    try:
        relative = Path(file_path).resolve().relative_to(package_dir)
    except ValueError:
        return None
    parts = [PACKAGE, *relative.with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path) -> frozenset[str]:
    """Every ``airquality_assets...`` module ``path`` imports, at top level or inside functions."""
    return _imports_in_source(path.read_text(encoding="utf-8"))


#: An import statement that names this package, at any indentation (lazy imports included),
#: parenthesised over several lines or not. Parsing only these, not the whole module, keeps a
#: definitions load from compiling every module's syntax tree (seconds on a loaded machine).
_PACKAGE_IMPORT = re.compile(
    rf"^[ \t]*(?:from[ \t]+{PACKAGE}[\w.]*[ \t]+import[ \t]+(?:\([^)]*\)|[^\n]*)"
    rf"|import[ \t]+[^\n]*\b{PACKAGE}\b[^\n]*)",
    re.MULTILINE,
)


@cache
def _imports_in_source(source: str) -> frozenset[str]:
    """Cached by the source text: every asset's closure shares most modules, so each is read
    once per load, not once per closure; an edited file is new text and is read again. A
    line of prose that merely looks like an import (in a docstring) is not Python and is
    skipped; one that is valid Python can only add a module to the hash, never drop one."""
    found: set[str] = set()
    for match in _PACKAGE_IMPORT.finditer(source):
        try:
            statement = ast.parse(match.group(0).strip()).body[0]
        except (SyntaxError, IndexError):
            continue
        if isinstance(statement, ast.Import):
            found.update(alias.name for alias in statement.names)
        elif isinstance(statement, ast.ImportFrom) and statement.module:
            found.add(statement.module)
            # ``from airquality_assets import schemas`` imports a module, not a name
            found.update(f"{statement.module}.{alias.name}" for alias in statement.names)
    return frozenset(name for name in found if name.split(".")[0] == PACKAGE)


def module_closure(module: str, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Files of ``module`` and of the package modules it imports, transitively, sorted."""
    seen: set[Path] = set()
    pending = [module]
    while pending:
        path = module_path(pending.pop(), package_dir)
        if path is None or path in seen:
            continue
        seen.add(path)
        pending.extend(_imported_modules(path))
    return sorted(seen)


@cache
def code_version(module: str, package_dir: Path = PACKAGE_DIR) -> str:
    """12 hex digits of a SHA-256 over the relative paths and bytes of ``module_closure``."""
    digest = hashlib.sha256()
    for path in module_closure(module, package_dir):
        digest.update(path.relative_to(package_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*)$")


def browsable_git_url(remote: str) -> str | None:
    """A GitHub/GitLab remote as its https page (``git@github.com:o/r.git`` ->
    ``https://github.com/o/r``); None for other hosts and local paths (nothing to link to)."""
    remote = remote.strip()
    if remote.startswith(("https://", "http://", "ssh://")):
        without_scheme = remote.split("://", 1)[1].split("@")[-1]
        host, _, path = without_scheme.partition("/")
        host = host.split(":")[0]
    else:
        match = _SCP_LIKE.match(remote)
        if match is None:
            return None
        host, path = match["host"], match["path"]
    path = path.removesuffix("/").removesuffix(".git")
    if not path or not any(name in host for name in ("github", "gitlab")):
        return None
    return f"https://{host}/{path}"
