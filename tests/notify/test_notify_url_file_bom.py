"""A ``urlFile`` saved by a Windows editor (a UTF-8 byte order mark first, CRLF last) holds its
URL as any other: it was refused as not starting with http:// or https://, which it does, to
the eye. The mark is read as what it is, never part of a URL."""

from __future__ import annotations

from pathlib import Path

from reconciler.sinks.notify_config import load

URL = "https://hooks.example/services/T0/B0/xyz"


def test_a_url_file_with_a_byte_order_mark_holds_its_url(tmp_path: Path) -> None:
    (tmp_path / "url").write_bytes(b"\xef\xbb\xbf" + URL.encode() + b"\r\n")
    (tmp_path / "url").chmod(0o600)
    path = tmp_path / "n.yaml"
    path.write_text(
        "receivers:\n  - {name: hook, type: generic, urlFile: url}\n"
        "routes:\n  - {receiver: hook, events: [failed]}\n"
    )
    path.chmod(0o600)

    loaded = load(path)  # checked at start: no error

    assert loaded.url_of(loaded.config.receivers[0]) == URL  # and read so at each delivery
