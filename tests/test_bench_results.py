"""bench/RESULTS.md carries bench/ANALYSIS.md as its last section (``bench/run.py`` appends it
at each run). The analysis is kept by hand in ANALYSIS.md; an edit made to RESULTS.md alone is
lost at the next run, and one made to ANALYSIS.md alone is not in the results people read: the
two had drifted apart by a paragraph each way."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_results_end_with_the_analysis_as_kept() -> None:
    analysis = (BENCH / "ANALYSIS.md").read_text()
    results = (BENCH / "RESULTS.md").read_text()
    assert results.endswith("\n" + analysis)
