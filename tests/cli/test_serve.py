"""crontask run refuses unsafe or impossible settings before anything starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.cli.test_state_dir import started_and_stopped


def run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "run", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "10.1.2.3:8080"])
def test_a_non_loopback_address_needs_auth(tmp_path: Path, address: str) -> None:
    result = run(str(tmp_path), "--listen", address, cwd=tmp_path)
    assert result.returncode != 0
    host = address.rpartition(":")[0].strip("[]")
    assert f"refusing to serve the API on {host} without authentication" in result.stderr
    assert "--insecure-no-auth" in result.stderr
    assert not (tmp_path / ".crontask").exists()  # refused before anything was created


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ((), "nothing to read"),
        (("tasks", "--namespace", "ops"), "--namespace/--all-namespaces need --kubernetes"),
        (("tasks", "--job-namespace", "ops"), "--job-namespace needs --kubernetes"),
        (("missing",), "no such file or directory: missing"),
    ],
)
def test_what_cannot_be_run_is_a_usage_error(
    tmp_path: Path, argv: tuple[str, ...], says: str
) -> None:
    (tmp_path / "tasks").mkdir()
    result = run(*argv, "--listen", "off", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_auth_config_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "auth.yaml"
    config.write_text("tokens: []\nsurprise: 1\n")
    result = run(str(tmp_path), "--auth-config", str(config), cwd=tmp_path)
    assert result.returncode != 0
    assert str(config) in result.stderr
    assert "surprise" in result.stderr


def test_a_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    result = run("--kubernetes", "--kubeconfig", str(missing), "--listen", "off", cwd=tmp_path)
    assert result.returncode != 0
    assert "cannot load the Kubernetes configuration" in result.stderr
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["1PASSWORD", "MY-VAR", "A=B", ""])
def test_a_pass_env_that_is_no_variable_name_is_refused(tmp_path: Path, name: str) -> None:
    result = run(str(tmp_path), "--pass-env", name, "--listen", "off", cwd=tmp_path)
    assert result.returncode == 2
    assert "--pass-env" in result.stderr
    assert "is not an environment variable name" in result.stderr
    assert not (tmp_path / ".crontask").exists()


def test_a_pass_env_given_a_value_never_shows_the_value(tmp_path: Path) -> None:
    """``--pass-env TOKEN=...`` (as ``docker -e`` takes it) names a variable with its value,
    often a secret: the error names the variable and says how to pass it, never the value
    (which went to the log of whoever runs crontask)."""
    result = run(str(tmp_path), "--pass-env", "API_TOKEN=hunter2", "--listen", "off", cwd=tmp_path)
    assert result.returncode == 2
    assert "hunter2" not in result.stderr
    assert "API_TOKEN" in result.stderr
    assert "--pass-env API_TOKEN" in result.stderr


@pytest.mark.parametrize("given", ["MY-TOKEN=hunter2", "1TOKEN=hunter2", "=hunter2"])
def test_a_pass_env_of_no_name_given_a_value_never_shows_the_value(
    tmp_path: Path, given: str
) -> None:
    """Nor when what comes before its ``=`` is no variable name either (``MY-TOKEN``)."""
    result = run(str(tmp_path), "--pass-env", given, "--listen", "off", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not an environment variable name" in result.stderr
    assert "hunter2" not in result.stderr
    assert f"'{given.partition('=')[0]}=...'" in result.stderr


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ((), "--ha needs a run store every replica shares"),
        (("--db", "sqlite:////tmp/x.db"), "--ha needs a run store every replica shares"),
        (
            ("--db", "postgresql+psycopg://u:p@127.0.0.1:1/db", "--renew-deadline", "20s"),
            "--renew-interval < --renew-deadline < --lease-duration",
        ),
        (
            ("--db", "postgresql+psycopg://u:p@127.0.0.1:1/db", "--lease-namespace", "ops"),
            "--lease-namespace needs --kubernetes",
        ),
    ],
)
def test_ha_refuses_what_cannot_work_with_status_2(
    tmp_path: Path, extra: tuple[str, ...], says: str
) -> None:
    result = run(str(tmp_path), "--ha", *extra, "--listen", "off", cwd=tmp_path)
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".crontask").exists()  # refused before anything was created


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--git-ref", "main"), "--git-ref needs --git"),
        (("--git-token-file", "token"), "--git-token-file needs --git"),
        (("--git-webhook-secret-file", "secret"), "--git-webhook-secret-file needs --git"),
        (("--renew-deadline", "5s"), "--renew-deadline needs --ha"),
        (("--lease-duration", "30s"), "--lease-duration needs --ha"),
    ],
)
def test_an_option_without_the_one_it_needs_is_refused_with_status_2(
    tmp_path: Path, extra: tuple[str, ...], says: str
) -> None:
    """Taken and ignored before: a --git-ref without --git read nothing from git, silently."""
    result = run(str(tmp_path), *extra, "--listen", "off", cwd=tmp_path)
    assert result.returncode == 2
    assert says in result.stderr
    assert not (tmp_path / ".crontask").exists()


URL_WITH_CREDENTIALS = "http://alice:s3cr3t-pw@127.0.0.1:1/r.git"


@pytest.fixture(scope="module")
def warned_at_start(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The log up to the start of one ``crontask run`` given both a --git URL with credentials
    and an auth file with no secret. Each is said at start, and each test reads its own line:
    a start per test cost two starts to read two lines."""
    cwd = tmp_path_factory.mktemp("warned")
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (cwd / "jwt.pub").write_bytes(pem)
    (cwd / "auth.yaml").write_text(
        "jwt: {algorithm: ES256, publicKeyFile: jwt.pub, issuer: i, audience: a}\n"
    )
    return started_and_stopped(
        cwd,
        *("--git", URL_WITH_CREDENTIALS, "--state-dir", "state"),
        *("--auth-config", "auth.yaml", "--listen", "127.0.0.1:0"),
    )


def test_a_git_url_with_credentials_is_warned_of_without_them(warned_at_start: list[str]) -> None:
    """The URL stays in crontask's own command line, which every local user can read."""
    said = "".join(warned_at_start)
    assert "the --git URL holds credentials" in said
    assert "--git-token-file" in said
    assert "s3cr3t-pw" not in said
    assert "alice" not in said
    # Where the git source's lines go ("git sync failed" is the next), not the API's logger.
    (line,) = [x for x in warned_at_start if "the --git URL holds credentials" in x]
    assert "logger=crontask.sources.git " in line


@pytest.mark.parametrize(
    ("url", "says"),
    [
        # The token is sent with this user name (gitcredentials): nothing to warn of.
        ("http://deploy@127.0.0.1:1/r.git", None),
        # The password is not sent, yet it is in the process list all the same.
        (URL_WITH_CREDENTIALS, "holds credentials, which every local user can read in the"),
    ],
)
def test_a_git_url_beside_a_token_file_is_warned_of_only_for_a_password(
    tmp_path: Path, url: str, says: str | None
) -> None:
    """A user name and --git-token-file is how an app password is given: it was told to give
    the token with --git-token-file, which it had done."""
    (tmp_path / "token").write_text("T0KEN-value\n")
    (tmp_path / "token").chmod(0o600)
    argv = ("--git", url, "--git-token-file", "token", "--state-dir", "state")
    warned = [x for x in started_and_stopped(tmp_path, *argv) if "--git URL" in x]
    if says is None:
        assert warned == []
        return
    (line,) = warned
    assert says in line
    assert "take its password out" in line
    assert "logger=crontask.sources.git " in line
    assert "s3cr3t-pw" not in line


def test_an_auth_file_with_no_secret_is_said_to_seal_sessions_per_process(
    warned_at_start: list[str],
) -> None:
    assert any("status page sessions last as long as this process" in x for x in warned_at_start)


@pytest.mark.parametrize("url", ["ssh://git@127.0.0.1:1/r.git", "git@127.0.0.1:r.git"])
def test_a_git_url_with_a_user_name_only_over_ssh_is_no_credential(
    tmp_path: Path, url: str
) -> None:
    lines = started_and_stopped(tmp_path, "--git", url, "--state-dir", "state")
    assert not any("holds credentials" in line for line in lines)


def test_a_port_in_use_is_said_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = run(str(tmp_path), "--listen", address, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on {address}: Address already in use" in result.stderr
    assert "(give another --listen HOST:PORT, or --listen off)" in result.stderr
    assert "Traceback" not in result.stderr
