"""Options shared by every suite."""

from __future__ import annotations

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
