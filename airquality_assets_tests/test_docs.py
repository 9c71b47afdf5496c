"""The docs stay reachable: every ``docs/*.md`` a docstring, comment or README names exists.

Content moved from the README into ``docs/`` by reader; code and configuration point there
by path. ``mkdocs build --strict`` checks the links inside ``docs/``; this checks the links
into it from everywhere else, the README's own relative links and anchors, and that the
README stays a short entry point.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 260

#: Folders that hold no project text (environments, generated output, data).
SKIPPED_DIRS = {".git", ".venv", ".data", ".dagster_home", "site", "__pycache__", "node_modules"}
SCANNED_SUFFIXES = {".py", ".md", ".sh", ".yml", ".yaml", ".toml"}
UNSUFFIXED_FILES = {"Dockerfile", "run"}

#: A docs page named by path, with an optional anchor: docs/operations.md#see-it-run
DOCS_REF = re.compile(r"(?<![\w/.-])(docs/[\w./-]+?\.md)(?:#([\w-]+))?")
#: A relative Markdown link target: [text](target) with no scheme.
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _project_files() -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(ROOT):
        here = Path(folder)
        # Pruned in place: never descend into environments, output, or docs/ itself.
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and here / d != ROOT / "docs"]
        for name in names:
            path = here / name
            if path == Path(__file__):
                continue
            if path.suffix in SCANNED_SUFFIXES or name in UNSUFFIXED_FILES:
                files.append(path)
    return files


def _slug(heading: str) -> str:
    """The anchor Python-Markdown's ``toc`` extension (MkDocs) gives a heading."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[\s-]+", "-", text).strip("-")


def _anchors(page: Path) -> set[str]:
    in_code = False
    anchors = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6}\s+(.*)", line)):
            anchors.add(_slug(match.group(1)))
    return anchors


def _docs_references() -> list[tuple[Path, str, str | None]]:
    found = []
    for path in _project_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in DOCS_REF.finditer(text):
            found.append((path, match.group(1), match.group(2)))
    return found


def test_the_code_and_readme_point_at_docs_pages() -> None:
    # The scan must see the references that exist, or the test below could not fail.
    referrers = {path.relative_to(ROOT).as_posix() for path, _, _ in _docs_references()}
    assert "README.md" in referrers
    assert "airquality_assets/defs/partitions.py" in referrers


def test_every_docs_page_named_outside_docs_exists() -> None:
    missing = [
        f"{path.relative_to(ROOT)}: {page}"
        for path, page, _ in _docs_references()
        if not (ROOT / page).is_file()
    ]
    assert missing == []


def test_every_anchor_into_docs_exists() -> None:
    broken = [
        f"{path.relative_to(ROOT)}: {page}#{anchor}"
        for path, page, anchor in _docs_references()
        if anchor and (ROOT / page).is_file() and anchor not in _anchors(ROOT / page)
    ]
    assert broken == []


def test_readme_relative_links_resolve() -> None:
    broken = []
    for target in MD_LINK.findall(README.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file_part = target.split("#", 1)[0]
        if not (ROOT / file_part).exists():
            broken.append(target)
    assert broken == []


def test_readme_is_a_short_entry_point() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"
    # The two commands CI and newcomers rely on stay in it, verbatim.
    assert any(line.startswith("bash scripts/demo.sh ") for line in lines)
    assert any(line.startswith("bash scripts/test.sh ") for line in lines)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        (
            "Scale (data half, replayed locations x 2014)",
            "scale-data-half-replayed-locations-x-2014",
        ),
        ("Does a retrain pay? Retrain benchmark", "does-a-retrain-pay-retrain-benchmark"),
        ("Planned layout of `defs/`", "planned-layout-of-defs"),
    ],
)
def test_slug_matches_mkdocs_anchors(heading: str, anchor: str) -> None:
    assert _slug(heading) == anchor
