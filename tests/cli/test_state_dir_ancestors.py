"""The real ``crontask run`` refuses a state directory below a folder another user may change
(they could rename it away and put one of their own in its place, whose ``api-tasks`` crontask
reads at every pass and runs as its user), in one line, and accepts a volume's root (a mount
point, root's and 0777 as a Kubernetes emptyDir is) with a warning naming it. Every case of
the rule: ``tests/store/test_state_dir_ancestors.py``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_state_dir import refused, run

needs_unshare = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None, reason="mounts need root and unshare"
)


def test_the_reviews_scene_is_refused_in_one_line(tmp_path: Path) -> None:
    """`ww` is 0777: nobody could `mv ww/state ww/state.moved` and make a `ww/state/api-tasks`
    of their own, for crontask to run as root."""
    ww = tmp_path / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    err = refused(run("ww/state", "--allow-empty", cwd=tmp_path), 2, "refusing state directory")
    assert f"{ww}, on its path" in err
    assert not (ww / "state").exists()


@needs_unshare
@pytest.mark.parametrize("mount", ["tmpfs", "bind"])
def test_a_volume_root_anyone_may_write_is_accepted_with_a_warning(
    tmp_path: Path, mount: str
) -> None:
    """deploy/deployment.yaml: --state-dir /var/lib/crontask/state, where /var/lib/crontask is
    an emptyDir whose root is root's and 0777 (2777 with fsGroup). A bind mount is on the same
    device as its parent: only /proc/self/mountinfo tells it is one."""
    volume = tmp_path / "volume"
    volume.mkdir(mode=0o755)
    if mount == "tmpfs":
        how = f"mount -t tmpfs -o mode=2777 crontask-test {volume}"
    else:
        (tmp_path / "source").mkdir()
        (tmp_path / "source").chmod(0o777)
        how = f"mount --bind {tmp_path / 'source'} {volume}"
    (tmp_path / "tasks").mkdir()
    # A mount namespace of its own: the mount goes with the process.
    unshare = ["unshare", "-m", "--propagation", "private", "sh", "-ec", f'{how}; exec "$@"', "sh"]
    command = [sys.executable, "-m", "reconciler", "run", "tasks", "--listen", "off"]
    proc = subprocess.Popen(
        [*unshare, *command, "--allow-empty", "--state-dir", "volume/state"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if "crontask started" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0, "".join(lines)
    warnings = [line for line in lines if "level=warning" in line]
    assert len(warnings) == 1, lines  # once, not again for runs.db's folder
    assert "volume whose root others may write" in warnings[0]
    assert f"mount={volume}" in warnings[0]
