"""A task file saved as UTF-16 or UTF-32 (Windows PowerShell 5's ``>`` and ``Out-File`` write
UTF-16 with a byte order mark; so does Notepad's "Unicode") is refused as not UTF-8, as
before, and the message says which encoding it is and what to do: "not UTF-8: byte 0xff" at
1:1 named a byte the user's editor does not show. Through ``crontask validate`` on real files."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import crontask_cli

NOT_UTF8_FF = "not UTF-8: byte 0xff ('\u00ff' in Windows-1252): save it as UTF-8"

TASK = """apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: NAME}
spec:
  schedule: "0 2 * * *"
  command: {args: ["true"]}
"""


def test_a_utf16_or_utf32_file_is_named_so(tmp_path: Path) -> None:
    codecs = {
        "a16le": "utf-16-le",
        "b16be": "utf-16-be",
        "c32le": "utf-32-le",
        "d32be": "utf-32-be",
    }
    for name, codec in codecs.items():
        text = "\ufeff" + TASK.replace("NAME", name)
        (tmp_path / f"{name}.yaml").write_bytes(text.encode(codec))
    (tmp_path / "e.yaml").write_bytes(TASK.replace("NAME", "e").encode() + b"\xff\n")
    done = crontask_cli("validate", str(tmp_path))
    assert done.returncode == 1, done.stderr
    save = "save it as UTF-8"
    assert done.stdout.splitlines() == [
        f"{tmp_path}/a16le.yaml:1:1: not UTF-8 but UTF-16 (little-endian; its byte order "
        f"mark says so): {save}",
        f"{tmp_path}/b16be.yaml:1:1: not UTF-8 but UTF-16 (big-endian; its byte order "
        f"mark says so): {save}",
        f"{tmp_path}/c32le.yaml:1:1: not UTF-8 but UTF-32 (little-endian; its byte order "
        f"mark says so): {save}",
        f"{tmp_path}/d32be.yaml:1:1: not UTF-8 but UTF-32 (big-endian; its byte order "
        f"mark says so): {save}",
        # Any other byte that is no UTF-8 is named as before, at its place.
        f"{tmp_path}/e.yaml:7:1: {NOT_UTF8_FF}",
    ]


def test_one_without_a_byte_order_mark_is_named_so(tmp_path: Path) -> None:
    """Without a mark, the ASCII characters of UTF-16 and UTF-32 are UTF-8 too, each with NULs:
    YAML said "unacceptable character #x0000: special characters are not allowed". Its first
    bytes tell the encoding, as YAML's own detection reads them."""
    codecs = {"a16le": "utf-16-le", "b16be": "utf-16-be", "c32le": "utf-32-le"}
    for name, codec in codecs.items():
        (tmp_path / f"{name}.yaml").write_bytes(TASK.replace("NAME", name).encode(codec))
    (tmp_path / "d32be.yaml").write_bytes("métadata: x\n".encode("utf-32-be"))
    (tmp_path / "e.yaml").write_bytes(b"ab\0: 1\n")  # a NUL, in no such pattern
    (tmp_path / "f.yaml").write_bytes("é\0: 1\n".encode())  # placed in characters
    done = crontask_cli("validate", str(tmp_path))
    assert done.returncode == 1, done.stderr
    unmarked = "without a byte order mark; its first bytes say so): save it as UTF-8"
    assert done.stdout.splitlines() == [
        f"{tmp_path}/a16le.yaml:1:1: not UTF-8 but UTF-16 (little-endian, {unmarked}",
        f"{tmp_path}/b16be.yaml:1:1: not UTF-8 but UTF-16 (big-endian, {unmarked}",
        f"{tmp_path}/c32le.yaml:1:1: not UTF-8 but UTF-32 (little-endian, {unmarked}",
        f"{tmp_path}/d32be.yaml:1:1: not UTF-8 but UTF-32 (big-endian, {unmarked}",
        f"{tmp_path}/e.yaml:1:3: not UTF-8: a NUL byte (0x00) at its start",
        f"{tmp_path}/f.yaml:1:2: not UTF-8: a NUL byte (0x00) at its start",
    ]


def test_the_column_of_a_byte_that_is_not_utf8_counts_characters(tmp_path: Path) -> None:
    """As an editor shows the column: an "é" before it is one character, not two bytes; a byte
    order mark at the start of the file is none."""
    line = '  command: {args: ["café", "\xff"]}\n'.encode().replace(b"\xc3\xbf", b"\xff")
    text = TASK.replace("NAME", "a").encode().replace(b'  command: {args: ["true"]}\n', line)
    (tmp_path / "a.yaml").write_bytes(text)
    (tmp_path / "b.yaml").write_bytes(b"\xef\xbb\xbfk\xe9: 1\n")
    done = crontask_cli("validate", str(tmp_path))
    assert done.stdout.splitlines() == [
        f"{tmp_path}/a.yaml:6:29: {NOT_UTF8_FF}",
        f"{tmp_path}/b.yaml:1:2: not UTF-8: byte 0xe9 ('\u00e9' in Windows-1252): save it as UTF-8",
    ]
