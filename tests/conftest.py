"""Options shared by every suite."""

from __future__ import annotations

import compileall
import py_compile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests assert behaviour, never speed: Hypothesis's per-example deadline and its
# "too slow" health check are timings, and on a loaded machine they fail tests that are right.
settings.register_profile("crontask", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("crontask")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--e2e",
        action="store_true",
        default=False,
        help="run the Kubernetes end-to-end scenarios against the real cluster of $KUBECONFIG "
        "(kind, k3d) instead of the project's API emulator",
    )


def pytest_configure(config: pytest.Config) -> None:
    """The package's bytecode, written once before any test starts a crontask.

    Many tests start ``crontask`` as a real process (``python -m reconciler``). Where
    ``PYTHONDONTWRITEBYTECODE`` is set (the image sets it, and so do the machines this suite
    has run on), no process writes the bytecode of a fresh checkout, and each one compiled the
    modules it imports again (the whole package is 0.6 s of CPU). ``compileall`` writes it
    whatever that says; an interpreter takes it only while it matches its source (its hash), so
    a module edited since is compiled again as before. Once, in the process that starts the
    xdist workers (or runs the tests itself)."""
    if not hasattr(config, "workerinput"):
        compileall.compile_dir(
            Path(__file__).parents[1] / "reconciler",
            quiet=2,
            # Checked against the source's hash, not its mtime (whole seconds) and size: a
            # module edited within the second of its compiling would run stale. Forced, as
            # compileall takes a file of the same mtime for up to date (0.45 s of CPU a run).
            force=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
