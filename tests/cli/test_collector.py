"""`crontask run`'s use of the cyclic collector: rare collections while start-up builds the
long-lived state, then that state frozen and the usual thresholds back. Checked in a fresh
interpreter: freezing and thresholds are process-wide and must not leak into the test run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import gc, json
    from reconciler.cli.collector import start_up_collector

    usual = gc.get_threshold()
    with start_up_collector() as started:
        during = gc.get_threshold()
        frozen_at_start = gc.get_freeze_count()
        built = [[i] for i in range(5000)]  # what the first pass builds
        started()
        after = gc.get_threshold()
        frozen = gc.get_freeze_count() - frozen_at_start
    try:
        with start_up_collector():
            raise RuntimeError("serve failed before start-up ended")
    except RuntimeError:
        pass
    print(json.dumps({
        "usual": usual, "during": during, "after": after, "frozen": frozen,
        "after_failure": gc.get_threshold(),
    }))
    """
)


def test_start_up_collects_rarely_then_freezes_what_it_built() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["during"][0] > 10 * seen["usual"][0]
    assert seen["after"] == seen["usual"]
    assert seen["frozen"] >= 5000  # what start-up built is out of later collections' way
    assert seen["after_failure"] == seen["usual"]


def test_loading_a_folder_collects_rarely_and_restores_the_thresholds() -> None:
    probe = textwrap.dedent(
        """
        import gc, json
        from reconciler.cli.collector import rare_collections

        usual = gc.get_threshold()
        try:
            with rare_collections():
                during = gc.get_threshold()
                raise ValueError("a folder that fails to load")
        except ValueError:
            pass
        print(json.dumps({"usual": usual, "during": during, "after": gc.get_threshold()}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["during"][0] > 10 * seen["usual"][0]
    assert seen["during"][1:] == seen["usual"][1:]
    assert seen["after"] == seen["usual"]
