"""The README stays short, and every relative link in it and in docs/ points at a file and heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
REFERENCE = (
    "bring-your-own-data",
    "features",
    "data-quality",
    "versioning-and-training-sets",
    "experiments",
    "operations",
    "benchmarks",
)

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def links(path: Path) -> list[str]:
    """Targets of the Markdown links of a file, outside code blocks and code spans."""
    text = _CODE.sub("", _FENCE.sub("", path.read_text(encoding="utf-8")))
    return _LINK.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation but hyphens and spaces dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(h) for h in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8")))}


def test_readme_is_at_most_250_lines() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= 250, f"README.md has {lines} lines"


@pytest.mark.parametrize("source", [README, *DOCS], ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(source: Path) -> None:
    broken = []
    for target in links(source):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        file = (source.parent / file_part).resolve() if file_part else source
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.is_file() and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert not broken, f"{source.name}: " + "; ".join(broken)


def test_readme_links_every_reference_page() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README)}
    missing = [name for name in REFERENCE if (REPO / "docs" / f"{name}.md").resolve() not in linked]
    assert not missing, f"README.md does not link docs/{missing}"
