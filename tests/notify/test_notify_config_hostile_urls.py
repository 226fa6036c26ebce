"""A receiver's URL whose host no resolver looks up as written is refused where it is written,
not found out at each delivery: an environment variable left unexpanded (``${HOOK_URL}``,
said in words of its own: crontask expands none there), characters no host name holds, and a
name ending in a number that is no IPv4 address (``1.2.3``, which a resolver reads as
1.2.0.3). Host names, international ones, IP literals, and link-local or metadata addresses
(whoever writes the file decides where messages go) still load. No message repeats the URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, check_url, load

FILE = """\
receivers:
  - name: ops-hook
    type: generic
    url: "{url}"
routes:
  - receiver: ops-hook
    events: [failed]
"""
ENV = "environment variables are not expanded here"
NO_HOST = "the URL's host is not a host name or an IP address"
NUMBER = "the URL's host ends in a number but is not an IPv4 address"


def written(folder: Path, text: str) -> Path:
    path = folder / "notify.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://${HOOK_URL}/x", ENV),
        ("${HOOK_URL}", ENV),
        ("$HOOK_URL", ENV),
        ("https://hooks.example:${PORT}/x", ENV),
        ("https://hooks.example/services/${SLACK_PATH}", ENV),
        ("https://$HOOK_HOST/x", ENV),
        ("https://a{b}/x", ENV),
        ('https://h\\"%3C%3E/x', NO_HOST),
        ("https://%41bc/x", NO_HOST),
        ("https://-hooks.example/x", NO_HOST),
        ("https://hooks-.example/x", NO_HOST),
        ("https://hooks..example/x", NO_HOST),
        ("https://./x", NO_HOST),
        ("https://hooks.example../x", NO_HOST),
        ("https://a*b.example/x", NO_HOST),
        ("https://" + "a" * 64 + ".example/x", NO_HOST),
        ("https://" + ".".join(["a" * 60] * 5) + "/x", NO_HOST),  # 304 characters
        ("http://1.2.3/x", NUMBER),
        ("http://1234/x", NUMBER),
        ("http://0x7f.1/x", NUMBER),
        ("http://1.2.3.4.5/x", NUMBER),
    ],
)
def test_a_host_no_resolver_looks_up_as_written_is_refused_at_its_place(
    tmp_path: Path, url: str, says: str
) -> None:
    with pytest.raises(NotificationConfigError) as caught:
        load(written(tmp_path, FILE.format(url=url)))
    said = str(caught.value)
    assert said.startswith(f"{tmp_path / 'notify.yaml'}:4:10: receivers[0].url: {says}"), said
    assert len(said.splitlines()) == 1
    for part in ("HOOK", "PORT", "SLACK", "%3C", "abc", "hooks", "0x7f", "1.2.3", "aaaa"):
        assert part not in said  # nothing of the URL: a webhook's URL is often its secret


def test_an_unexpanded_variable_in_url_says_to_use_url_file(tmp_path: Path) -> None:
    with pytest.raises(NotificationConfigError) as caught:
        load(written(tmp_path, FILE.format(url="https://${HOOK_URL}/x")))
    assert str(caught.value) == (
        f"{tmp_path / 'notify.yaml'}:4:10: receivers[0].url: environment variables are not "
        "expanded here; put the URL in a file and name it with urlFile"
    )


def test_an_unexpanded_variable_in_a_url_file_is_refused_there_and_at_delivery(
    tmp_path: Path,
) -> None:
    """A urlFile is already a file: what it is told is that the file must hold the URL."""
    url_file = tmp_path / "hook-url"
    url_file.write_text("https://hooks.example/ok\n")
    url_file.chmod(0o600)
    path = written(tmp_path, FILE.replace('url: "{url}"', "urlFile: hook-url"))
    loaded = load(path)
    url_file.write_text("https://${HOOK_HOST}/T0KEN\n")  # rotated into something unusable

    with pytest.raises(ValueError, match=r"^environment variables are not expanded here: ") as e:
        loaded.url_of(loaded.config.receivers[0])
    assert "T0KEN" not in str(e.value)
    assert "HOOK_HOST" not in str(e.value)
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    assert str(caught.value) == (
        f"{path}:4:14: receivers[0].urlFile: environment variables are not expanded here: the "
        "file must hold the URL itself"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example/services/T0/B0/xyz",
        "https://hooks.example./x",  # a fully qualified name
        "HTTPS://HOOKS.Example/x",
        "https://bücher.example/x",  # an international name, sent IDNA-encoded
        "https://xn--bcher-kva.example/x",
        "http://localhost:8080/hook",
        "http://alert_relay:9000/hook",  # a Docker Compose service: '_' is looked up as written
        "http://127.0.0.1:9/x",
        "http://[::1]:9/x",
        "http://169.254.169.254/latest",  # link-local, a cloud's metadata: the file's writer's
        "http://[fe80::1]/x",
        "https://a-1.b2.example/price$/x",  # a '$' in the path is a character of the URL
        "https://" + ".".join(["a" * 63] * 3) + "." + "b" * 61 + "/x",  # 253 characters
    ],
)
def test_hosts_a_resolver_looks_up_still_load(tmp_path: Path, url: str) -> None:
    check_url(url)
    assert load(written(tmp_path, FILE.format(url=url))).config.receivers[0].url == url


def test_external_url_is_checked_the_same_way() -> None:
    """``crontask run --external-url`` goes through check_url: the same words, no urlFile."""
    with pytest.raises(ValueError, match=r"^environment variables are not expanded here$"):
        check_url("https://${CRONTASK_HOST}/")
