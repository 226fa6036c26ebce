"""``read_secret_file`` (the auth file and the files it names, ``--notifications``,
``--git-token-file``, the webhook secret, an http task's header files) refuses a file that
anyone may write, or in a folder anyone may write, as ``statedir`` refuses such a state
directory: they could otherwise make themselves an admin token and run commands as
crontask's user. A file or folder another user owns or another group may write, and a file
others may only read, are read with one warning. Kubernetes Secret mounts (root's links
``..data/...``, 0644 or 0444) pass. Tests run as root: "another user" is a file chowned to
nobody, and "crontask's user is not root" is a child process that drops to nobody's uid
(``seteuid``)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.secretfile import read_secret_file

NOBODY = 65534
OTHER = 4242  # a uid and a gid that are neither root's, nobody's nor ours
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def secret(folder: Path, mode: int, name: str = "secret") -> Path:
    path = folder / name
    path.write_bytes(b"s3cret-value-of-enough-bytes-for-hmac!!")
    path.chmod(mode)
    return path


def refused(path: Path) -> str:
    with pytest.raises(ValueError, match="not read") as err:
        read_secret_file(path)
    return str(err.value)


def test_a_file_others_may_write_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = secret(tmp_path, 0o666)
    said = refused(path)
    assert "anyone may write it (mode 0666)" in said
    assert "chmod go-w" in said


@as_root
def test_a_group_other_than_ours_that_may_write_it_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not refused: a file written under a umask of 002 (the owner's own group may write it),
    bind-mounted into a container, or a Kubernetes Secret with a group-writable defaultMode,
    worked before; only a file anyone may write is refused."""
    caplog.set_level(logging.WARNING, logger="crontask")
    path = secret(tmp_path, 0o660)
    os.chown(path, -1, OTHER)
    assert read_secret_file(path).startswith(b"s3cret")
    (said,) = [r for r in caplog.records if "another user may change" in r.getMessage()]
    assert said.fields["why"] == "group or others may write it (mode 0660)"  # type: ignore[attr-defined]
    caplog.clear()
    other = secret(tmp_path, 0o660, "ours")
    os.chown(other, -1, os.getegid())  # a pod's fsGroup, a host user's own group
    assert read_secret_file(other).startswith(b"s3cret")
    assert not [r for r in caplog.records if "another user may change" in r.getMessage()]


@as_root
def test_a_file_or_folder_of_another_user_is_read_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not refused: crontask was given the file, and its owner is often the admin who gave it
    (a file bind-mounted from the host into a container runs as another uid). Said once."""
    caplog.set_level(logging.WARNING, logger="crontask")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    path = secret(theirs, 0o600)
    os.chown(path, NOBODY, NOBODY)
    os.chown(theirs, OTHER, OTHER)
    for _ in range(3):
        assert read_secret_file(path).startswith(b"s3cret")
    (said,) = [r for r in caplog.records if "another user may change" in r.getMessage()]
    fields = said.fields  # type: ignore[attr-defined]
    assert (
        fields["why"]
        == f"{theirs}, on its path, is owned by uid {OTHER}; it is owned by uid {NOBODY}"
    )
    assert "root's or this user's" in said.getMessage()


def test_a_folder_on_its_path_others_may_write_is_refused(tmp_path: Path) -> None:
    """Whoever may write the folder could put a link to a file whose bytes they know (a
    world-readable root file for a ``jwt.secretFile``) in the secret's place."""
    ww = tmp_path / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    said = refused(secret(ww, 0o600))
    assert f"{ww}, on its path" in said


def test_a_link_to_a_file_in_a_folder_others_may_write_is_refused(tmp_path: Path) -> None:
    ww = tmp_path / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    target = secret(ww, 0o600)
    (tmp_path / "safe").mkdir(mode=0o700)
    (tmp_path / "safe" / "secret").symlink_to(target)
    assert f"{ww}, on its path" in refused(tmp_path / "safe" / "secret")


def test_a_file_others_may_read_is_read_with_one_warning(
    shared_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = secret(shared_folder, 0o644)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # the auth file is read again every second
            assert read_secret_file(path).startswith(b"s3cret")
    said = [r for r in caplog.records if "others may read" in r.getMessage()]
    assert len(said) == 1, caplog.records
    assert getattr(said[0], "fields", {})["path"] == str(path)


def test_a_file_others_cannot_reach_or_read_is_read_without_a_word(
    tmp_path: Path, shared_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 0644 file in a 0700 folder (pytest's own, a home) is no one else's to read."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with caplog.at_level(logging.WARNING):
        assert read_secret_file(secret(private, 0o644)).startswith(b"s3cret")
        assert read_secret_file(secret(shared_folder, 0o600)).startswith(b"s3cret")
        assert read_secret_file(secret(shared_folder, 0o644, "key.pub"), public=True)
    assert caplog.records == []


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A root folder in /tmp that nobody may search (pytest's own are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="crontask-secret-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=True)


def read_as_nobody(path: Path) -> str:
    """``read_secret_file(path)`` in a child whose effective uid is nobody's: what it read, or
    ``refused: <why>``."""
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from reconciler.secretfile import read_secret_file\n"
        f"os.setegid({NOBODY}); os.seteuid({NOBODY})\n"
        "try:\n"
        "    print(read_secret_file(Path(sys.argv[1])).decode())\n"
        "except ValueError as err:\n"
        "    print('refused:', err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@as_root
def test_a_kubernetes_secret_mount_passes_for_a_user_that_is_not_root(shared_folder: Path) -> None:
    """kubelet's layout: ``auth.yaml -> ..data/auth.yaml``, ``..data -> ..2026_12_04...``,
    all root's; the files 0644 (the default) or 0444; the volume's root sticky."""
    volume = shared_folder / "etc-crontask"
    version = volume / "..2026_12_04_18_00_00.1"
    version.mkdir(parents=True)
    volume.chmod(0o1777)
    version.chmod(0o755)
    (volume / "..data").symlink_to(version.name)
    for name, mode in (("auth.yaml", 0o644), ("jwt-secret", 0o444)):
        (version / name).write_text(f"{name}-bytes")
        (version / name).chmod(mode)
        (volume / name).symlink_to(Path("..data") / name)
        assert read_as_nobody(volume / name) == f"{name}-bytes"


@as_root
def test_for_a_user_that_is_not_root_root_and_it_may_own_the_file_no_one_else(
    shared_folder: Path,
) -> None:
    root_s = secret(shared_folder, 0o644, "root's")
    own = secret(shared_folder, 0o600, "own")
    os.chown(own, NOBODY, NOBODY)
    theirs = secret(shared_folder, 0o644, "theirs")
    os.chown(theirs, OTHER, OTHER)
    assert read_as_nobody(root_s).startswith("s3cret")
    assert read_as_nobody(own).startswith("s3cret")
    assert read_as_nobody(theirs).startswith("s3cret")  # with a warning: see above
    os.chmod(theirs, 0o666)  # noqa: S103 - ... but anyone may write it
    assert read_as_nobody(theirs).startswith("refused: anyone may write it")


def test_a_kubernetes_secret_others_may_read_is_not_warned_of_a_plain_file_is(
    shared_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """0644 is a Secret volume's default, and in a pod the other users are its own
    containers': a warning at every start would be noise. A plain file is warned of."""
    caplog.set_level(logging.WARNING, logger="crontask")
    version = shared_folder / "..2026_12_04_18_00_00.1"
    version.mkdir(mode=0o755)
    (shared_folder / "..data").symlink_to(version.name)
    secret(version, 0o644, "token")
    (shared_folder / "token").symlink_to(Path("..data") / "token")
    plain = secret(shared_folder, 0o644, "plain")
    assert read_secret_file(shared_folder / "token").startswith(b"s3cret")
    assert read_secret_file(plain).startswith(b"s3cret")
    said = [r.fields["path"] for r in caplog.records if "others may read" in r.getMessage()]  # type: ignore[attr-defined]
    assert said == [str(plain)]
