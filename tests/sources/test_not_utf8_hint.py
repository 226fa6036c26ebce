"""A byte that is no UTF-8 says what to do, as a UTF-16 file's error does, and what the byte
is in the encoding an editor most often saved instead (Windows-1252, whose 0x80-0xff are
Latin-1's letters): "not UTF-8: byte 0xe9" alone left the reader to find both."""

from __future__ import annotations

from pathlib import Path

from reconciler.sources.files import DirectorySource


def only_error(tmp_path: Path, data: bytes) -> str:
    (tmp_path / "a.yaml").write_bytes(data)
    source = DirectorySource([tmp_path])
    source.refresh()
    (error,) = source.errors()
    return str(error)


def test_a_latin_letter_is_named(tmp_path: Path) -> None:
    said = only_error(tmp_path, b"apiVersion: crontask.dev/v1alpha1\n# caf\xe9\n")
    assert said == (
        f"{tmp_path / 'a.yaml'}:2:6: not UTF-8: byte 0xe9 ('\u00e9' in Windows-1252): "
        "save it as UTF-8"
    )


def test_a_byte_of_no_letter_is_not_guessed(tmp_path: Path) -> None:
    said = only_error(tmp_path, b"apiVersion: crontask.dev/v1alpha1\n# \x81\n")
    assert said == f"{tmp_path / 'a.yaml'}:2:3: not UTF-8: byte 0x81: save it as UTF-8"
