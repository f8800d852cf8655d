"""`python -m jobs.reference_docs [--check]`: write the registry lists into docs/ (or check they are current).

Each list sits between `<!-- NAME:start -->` and `<!-- NAME:end -->` in its page and is rendered from
its registry, so the docs name exactly the functions and check kinds the engine accepts.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _aggregations() -> str:
    from engine.features.functions import reference_table

    return reference_table()


def _check_kinds() -> str:
    from engine.config.check_kinds import reference_table

    return reference_table()


BLOCKS: dict[str, tuple[str, Callable[[], str]]] = {
    "aggregations": ("features.md", _aggregations),
    "check-kinds": ("data-quality.md", _check_kinds),
}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.DOTALL)


def rendered(name: str, text: str) -> str:
    """`text` with block `name` replaced by the registry's current list."""
    pattern = _pattern(name)
    if not pattern.search(text):
        raise ValueError(f"docs: no block {name} (<!-- {name}:start --> ... <!-- {name}:end -->)")
    table = BLOCKS[name][1]()
    return pattern.sub(lambda m: f"{m.group(1)}{table}\n{m.group(2)}", text)


def stale() -> list[str]:
    """The pages whose blocks differ from their registries."""
    return [
        f"{page} ({name})"
        for name, (page, _) in BLOCKS.items()
        if rendered(name, (DOCS / page).read_text()) != (DOCS / page).read_text()
    ]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        found = stale()
        for page in found:
            print(f"docs/{page} is not the registry's list; run scripts/reference-docs", file=sys.stderr)
        return 1 if found else 0
    for name, (page, _) in BLOCKS.items():
        path = DOCS / page
        path.write_text(rendered(name, path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
