"""Each section the README sends its reader to (``see *Run history*``) is there: a heading of
that name, or a paragraph or list item that starts with it in bold."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_section_the_readme_points_to_is_there() -> None:
    text = README.read_text(encoding="utf-8")
    headings = {h.strip() for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    leads = {b.strip().rstrip(":.") for b in re.findall(r"\*\*([^*]+)\*\*", text)}
    pointed = re.findall(r"\b(?:see|See) \*([A-Z][^*]+)\*", text)
    assert len(pointed) > 10, "the scan no longer finds the README's cross-references"
    missing = sorted({" ".join(p.split()) for p in pointed} - headings - leads)
    assert not missing, f"the README points to sections it does not have: {missing}"
