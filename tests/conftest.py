"""Options shared by every suite."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--e2e",
        action="store_true",
        default=False,
        help="run the Kubernetes end-to-end scenarios against the real cluster of $KUBECONFIG "
        "(kind, k3d) instead of the project's API emulator",
    )
