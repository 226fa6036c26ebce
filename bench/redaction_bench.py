"""What hiding URL credentials in git's error lines costs, over a hostile line.

    python bench/redaction_bench.py [--sizes 8,16,32,64] [--repeats 3]

An ssh server's stderr reaches git's unchanged, and every line of it goes through the git
source's ``Redactor`` with the GIL held. The line here is the worst a server can send: ``fatal:``
then ``http://`` over and over, no ``@`` anywhere. The table compares the pattern crontask used
until 0.20.0 (``@`` required: from each ``http://`` it searched on to the end of the line, then
failed, so the time grew with the square of the line) with ``gitsaid.Redactor`` (one pass: the
``@`` part optional, replaced only when found), each the best of ``--repeats`` runs, and checks
that both give the same text for lines they both finish. This is the measurement behind the
0.21.0 fix of the redactor; it is not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

from reconciler.sources.gitsaid import Redactor

# The pattern of 0.20.0 and before (reconciler/sources/gitrepo.py), as it was.
_BEFORE = re.compile(r"(?i)(https?://)[^\s@]*@(?:[^\s/@]*@)*")


def _before(text: str) -> str:
    return _BEFORE.sub(r"\1***@", text)


def _best(redact: Callable[[str], str], text: str, repeats: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeats):
        began = time.perf_counter()
        out = redact(text)
        best = min(best, time.perf_counter() - began)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="8,16,32,64", help="line sizes in KiB")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    now = Redactor()
    print("| line | 0.20.0's pattern | Redactor now | same text |")
    print("|---|---|---|---|")
    for kib in (int(s) for s in args.sizes.split(",")):
        line = "fatal: " + "http://" * (kib * 1024 // 7)
        old_s, old = _best(_before, line, args.repeats)
        new_s, new = _best(now, line, args.repeats)
        print(f"| {kib} KiB | {old_s * 1000:,.1f} ms | {new_s * 1000:,.2f} ms | {old == new} |")


if __name__ == "__main__":
    main()
