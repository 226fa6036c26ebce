"""A field of the notifications file spelled by its Python name (``url_file``,
``secret_file``, ``repeat_interval``) is read, as before, but with a warning at its key, as a
task file's is (``spec.time_zone: write timeZone: ...``): it was taken silently, while the
README names only ``urlFile``, ``secretFile`` and ``repeatInterval``, and a file that wrote
both spellings was refused with ``unknown field`` for the one that looked right to its
writer."""

from __future__ import annotations

from pathlib import Path

from reconciler.sinks.notify_config import parse

TEXT = (
    "receivers:\n"
    "  - name: a\n"
    "    type: generic-hmac\n"
    "    url_file: url\n"
    "    secret_file: secret\n"
    "routes:\n"
    "  - receiver: a\n"
    "    events: [failed]\n"
    "    repeat_interval: 4h\n"
)


def test_a_python_name_is_read_with_a_warning_at_its_key(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("http://127.0.0.1:9/\n")
    (tmp_path / "secret").write_text("s3cret\n")
    read = parse(TEXT, "n.yaml", tmp_path)
    assert read.config.routes[0].repeat_interval == 4 * 3600
    assert list(read.warnings) == [
        "n.yaml:4:5: warning: receivers[0].url_file: write urlFile: the spelling url_file is"
        " read for now, refused from a later release",
        "n.yaml:5:5: warning: receivers[0].secret_file: write secretFile: the spelling"
        " secret_file is read for now, refused from a later release",
        "n.yaml:9:5: warning: routes[0].repeat_interval: write repeatInterval: the spelling"
        " repeat_interval is read for now, refused from a later release",
    ]


def test_the_file_s_own_spelling_warns_of_nothing(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("http://127.0.0.1:9/\n")
    (tmp_path / "secret").write_text("s3cret\n")
    text = (
        TEXT.replace("url_file", "urlFile")
        .replace("secret_file", "secretFile")
        .replace("repeat_interval", "repeatInterval")
    )
    assert parse(text, "n.yaml", tmp_path).warnings == ()
