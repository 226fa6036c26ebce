"""What counting a JSON body's values before the JSON reader costs, over bodies of escapes.

    python bench/body_count_bench.py [--sizes 256,1024,2048] [--repeats 5]

Every write to the HTTP API (a task, a plan) counts the ``[``, ``{``, ``,`` and ``:`` outside
strings before ``json.loads`` builds anything (``api.jsonbody``: a body of more than 30 000
values is refused first). The body here is the worst for that count: strings of escaped quotes,
backslashes and control characters. The table compares the pattern of the first version
(``\\\\.`` removed, then the strings) with ``jsonbody._most_values`` (two ``str.replace``) and
with ``json.loads`` of the same body, each the best of ``--repeats`` runs, and checks that both
counts agree. This is the measurement behind that change; it is not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable

from reconciler.api.jsonbody import _most_values

# The first version's count (reconciler/api/jsonbody.py), as it was.
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_QUOTED = re.compile(r'"[^"]*"')


def _before(text: str) -> int:
    bare = _QUOTED.sub("", _ESCAPE.sub("", text))
    return 1 + sum(bare.count(mark) for mark in "[{,:")


def _best(count: Callable[[str], object], text: str, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        out = count(text)
        best = min(best, time.perf_counter() - began)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,1024,2048", help="body sizes in KiB")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print("| body | the first pattern | two replaces now | json.loads | same count |")
    print("|---|---|---|---|---|")
    for kib in (int(s) for s in args.sizes.split(",")):
        item = 'a"\\\n\u0001' * 50  # written as \" \\ \n \u0001: escapes throughout
        body = json.dumps({"spec": {"x": [item] * (kib * 1024 // len(json.dumps(item)))}})
        old_s, old = _best(_before, body, args.repeats)
        new_s, new = _best(_most_values, body, args.repeats)
        read_s, _ = _best(json.loads, body, args.repeats)
        print(
            f"| {len(body) // 1024:,} KiB | {old_s * 1000:,.1f} ms | {new_s * 1000:,.1f} ms "
            f"| {read_s * 1000:,.1f} ms | {old == new} |"
        )


if __name__ == "__main__":
    main()
