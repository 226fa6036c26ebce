"""The versions the image installs: every distribution crontask needs at run time (its
dependencies, and theirs), pinned at the version installed here, where the suites test them.

``deploy/constraints.txt`` is this module's output (``make constraints`` writes it again);
``make`` installs the test environment with it and the image's builder resolves with it, so the
image ships what CI tested, and building it twice gives the same packages."""

from __future__ import annotations

import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "crontask-reconciler"
HEADER = """\
# The versions of crontask's run-time dependencies (and theirs), as tested: `make` installs
# the test environment with these, and deploy/Dockerfile builds the image with them. Written by
# `make constraints` (python -m tests.deploy.constraints) from the environment it runs in."""


def closure(project: str = PROJECT) -> dict[str, str]:
    """Each distribution ``project`` needs at run time, by canonical name: its version here."""
    found: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(project, frozenset())]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in done:
            continue
        done.add((canonicalize_name(name), extras))
        dist = metadata.distribution(name)
        found[canonicalize_name(name)] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            wanted = req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in {"", *extras}
            )
            if wanted:
                todo.append((req.name, frozenset(req.extras)))
    found.pop(canonicalize_name(project))
    return found


def render(pins: dict[str, str]) -> str:
    return HEADER + "\n" + "".join(f"{name}=={pins[name]}\n" for name in sorted(pins))


if __name__ == "__main__":
    sys.stdout.write(render(closure()))
