"""What of crontask's environment reaches git: an allow-list, and nothing else.

git and its helpers (``git-remote-http``, ssh) exec, so unlike crontask they are dumpable: a
command task running as crontask's user reads ``/proc/<pid>/environ`` of each while a fetch
runs. crontask's own secrets (``CRONTASK_DB``, the ``--git-token-env`` variable, cloud keys)
must not be there. The end-to-end tests read those files as such a task would: during a real
fetch held open by the remote (HTTP), and from a real ssh child that records its own.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitrepo import PASSWORD_VAR, USERNAME_VAR, Credentials, git_env
from tests.faults.git_remote import StallingRemote
from tests.helpers import wait_for
from tests.sources.test_fault_git import live_processes_mentioning
from tests.sources.test_git import Clock, Remote, clock, doc, isolated_git, remote, state

__all__ = ["clock", "isolated_git", "remote", "state"]  # fixtures shared with test_git

# What git may inherit (spelled out here, not imported: the test says what the contract is).
ALLOWED = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "PWD"),
        *("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"),
        *("all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"),
        *("SSH_AUTH_SOCK", "KRB5CCNAME", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"),
        *("KRB5_CONFIG", "KRB5_CLIENT_KTNAME", "KRB5_KTNAME"),
        *("LD_LIBRARY_PATH", "LD_PRELOAD", "NSS_WRAPPER_PASSWD", "NSS_WRAPPER_GROUP"),
    }
)
TOKEN_VAR = "CRONTASK_TEST_GIT_TOKEN"  # noqa: S105 - a variable name
# crontask's secrets, and variables git has no use for.
DROPPED = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-never-in-git",
    "AWS_ACCESS_KEY_ID": "AKIA-never-in-git",
    "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp/key.json",
    "CRONTASK_DB": "postgresql://crontask:db-pass-never-in-git@db/crontask",
    TOKEN_VAR: "tok-env-never-in-git",
    "KUBERNETES_SERVICE_HOST": "10.0.0.1",
    "SSH_ASKPASS": "/usr/bin/ask",
    "LANGUAGE": "de",
    "LANG": "de_DE.UTF-8",
    "LC_MESSAGES": "de_DE.UTF-8",
    "XDG_CONFIG_HOME": "/elsewhere",
    "DISPLAY": ":0",
    USERNAME_VAR: "inherited-user",
    PASSWORD_VAR: "inherited-password-never-in-git",
    "GIT_DIR": "/elsewhere",
}
SECRET_VALUES = [
    DROPPED["AWS_SECRET_ACCESS_KEY"],
    "db-pass-never-in-git",
    DROPPED[TOKEN_VAR],
    DROPPED[PASSWORD_VAR],
]


def inherited(env: dict[str, str]) -> dict[str, str]:
    """``env`` less what git_env sets itself (git's own variables, ``LC_ALL=C``)."""
    return {k: v for k, v in env.items() if not k.startswith("GIT_") and k != "LC_ALL"}


def test_git_inherits_the_allowed_variables_and_nothing_else() -> None:
    base = {name: f"/value/of/{name}" for name in ALLOWED} | DROPPED
    env = git_env("ssh://git@example.com/r.git", base=base)
    assert inherited(env) == {name: base[name] for name in ALLOWED}
    assert env["LC_ALL"] == "C"
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull


# git's own CA settings (paths, no secret): Debian's git uses libcurl-gnutls, which reads none
# of SSL_CERT_FILE, SSL_CERT_DIR or CURL_CA_BUNDLE, so these are how it trusts a private CA.
GIT_CA = ("GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_PROXY_SSL_CAINFO")
# git's other variables change what it does behind crontask's back (or stop it checking).
GIT_DROPPED = {
    "GIT_DIR": "/elsewhere",
    "GIT_SSL_NO_VERIFY": "1",
    "GIT_SSL_CERT": "/client/cert.pem",
    "GIT_CONFIG_PARAMETERS": "'url.https://evil/.insteadof'='https://example.com/'",
    "GIT_EXEC_PATH": "/elsewhere/libexec",
    "GIT_SSH_COMMAND": "evil-ssh",
}


def test_git_s_own_ca_settings_are_inherited_and_none_of_its_other_variables() -> None:
    base = {"PATH": "/usr/bin"} | {name: f"/ca/{name}" for name in GIT_CA} | GIT_DROPPED
    env = git_env("https://example.com/r.git", base=base)
    assert {name: env.get(name) for name in GIT_CA} == {name: f"/ca/{name}" for name in GIT_CA}
    assert [name for name in GIT_DROPPED if env.get(name) == GIT_DROPPED[name]] == []


def test_only_crontask_s_own_credential_variables_are_added() -> None:
    base = {"PATH": "/usr/bin"} | DROPPED
    creds = Credentials("x-access-token", "tok-from-crontask")
    env = git_env("https://example.com/r.git", credentials=creds, base=base)
    assert inherited(env) == {
        "PATH": "/usr/bin",
        USERNAME_VAR: "x-access-token",
        PASSWORD_VAR: "tok-from-crontask",
    }


def test_a_missing_allowed_variable_stays_missing() -> None:
    env = git_env("https://example.com/r.git", base={"PATH": "/usr/bin"})
    assert inherited(env) == {"PATH": "/usr/bin"}


# -- end to end: the environments of the real git processes ------------------------------


def plant(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DROPPED.items():
        monkeypatch.setenv(name, value)


def environ_in(path: Path) -> dict[str, str]:
    """An environment as ``/proc/<pid>/environ`` holds it (any process of the same user can
    read that file of a dumpable process)."""
    pairs = (entry.partition(b"=") for entry in path.read_bytes().split(b"\0") if entry)
    return {k.decode(): v.decode("utf-8", "replace") for k, _, v in pairs}


def check_environ(env: dict[str, str]) -> None:
    """Only allowed names, git's own and crontask's credential variables; no planted secret."""
    allowed = ALLOWED | {"LC_ALL", USERNAME_VAR, PASSWORD_VAR}
    assert sorted(k for k in env if k not in allowed and not k.startswith("GIT_")) == []
    # The token is in PASSWORD_VAR, by design: the other values are searched for secrets.
    text = "\0".join(f"{k}={v}" for k, v in env.items() if k != PASSWORD_VAR)
    assert [secret for secret in SECRET_VALUES if secret in text] == []


@pytest.fixture
def stalling(remote: Remote) -> Iterator[StallingRemote]:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    served = StallingRemote(remote.bare)
    served.stalled.set()  # the fetch stays open (git-remote-http too) until closed
    yield served
    served.close()


def test_git_and_its_http_helper_hold_no_secret_of_crontask_s_during_a_fetch(
    stalling: StallingRemote, state: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(monkeypatch)
    # Reached only because no_proxy reaches git too: the proxy does not exist.
    monkeypatch.setenv("http_proxy", "http://proxy.invalid:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    options = GitOptions(stalling.url, timeout=60, token_env=TOKEN_VAR)
    source = GitSource(options, state, clock=clock)
    syncing = threading.Thread(target=source.sync)
    syncing.start()
    try:
        wait_for("the fetch to ask for objects", lambda: stalling.stalls or not syncing.is_alive())
        assert stalling.stalls == 1, source.status().last_error
        pids = live_processes_mentioning(stalling.url)
        environs = [environ_in(Path(f"/proc/{pid}/environ")) for pid in pids]
    finally:
        source.cancel()
        syncing.join()
    assert len(environs) >= 2  # git fetch, and git-remote-http
    for env in environs:
        check_environ(env)
        assert (env["http_proxy"], env["no_proxy"]) == ("http://proxy.invalid:9", "127.0.0.1")
        # The token, as git's credential helper hands it over (see the module's docstring).
        assert env[PASSWORD_VAR] == DROPPED[TOKEN_VAR]


def recording_ssh(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with an ``ssh`` that records its environment, as it was given at exec, then
    runs the remote's command here (``git-upload-pack '/path'``); and the record's path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "ssh.environ"
    ssh = bin_dir / "ssh"
    ssh.write_text(
        "#!/bin/sh\n"
        f"cat /proc/$$/environ > '{record}.tmp' && mv '{record}.tmp' '{record}'\n"
        'for last; do :; done; exec sh -c "$last"\n'
    )
    ssh.chmod(stat.S_IRWXU)
    return bin_dir, record


def test_ssh_gets_the_agent_and_no_secret_of_crontask_s(
    remote: Remote,
    state: Path,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote.write("a.yaml", doc("a"))
    sha = remote.commit()
    plant(monkeypatch)  # after the commit: the test's own git must not get GIT_DIR
    bin_dir, record = recording_ssh(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    source = GitSource(GitOptions(f"ssh://127.0.0.1{remote.bare}"), state, clock=clock)
    assert source.sync(), source.status().last_error
    assert source.status().applied_revision == sha  # the fetch went through this ssh
    env = environ_in(record)
    check_environ(env)
    assert env["SSH_AUTH_SOCK"] == str(tmp_path / "agent.sock")
    assert env["PATH"].endswith(os.environ["PATH"])  # git puts its exec-path first
