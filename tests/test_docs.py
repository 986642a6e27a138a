"""The Python examples in the README and docs run as written (on the default DuckDB file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/repository.md"]


def _examples() -> list[tuple[str, int, str]]:
    found = []
    for name in DOCS:
        text = (REPO / name).read_text()
        for i, match in enumerate(re.finditer(r"```python\n(.*?)```", text, re.S)):
            found.append((name, i, match.group(1)))
    return found


@pytest.mark.parametrize(("doc", "index", "code"), _examples(), ids=lambda v: str(v)[:20])
def test_example_runs(doc: str, index: int, code: str, isolated_home: Path) -> None:
    exec(compile(code, f"{doc} example {index}", "exec"), {})
    assert (isolated_home / "healthsim.duckdb").is_file()
