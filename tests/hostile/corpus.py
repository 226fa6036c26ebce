"""The hostile-input corpus: files a careless or hostile committer could put in a task folder or
a git repository, each with the one error crontask must report for it (see README.md here).

``build(folder, scratch)`` makes every case under ``folder`` (``scratch`` holds what links
point at, outside the folder) and returns the cases; ``only=NAME`` makes that case alone. A
case's ``target`` is what to give ``crontask validate``; ``expected`` is the line it must
print, ``path:line:col: message``, as a prefix. Nothing here is random: the same bytes, the
same lines, on every run.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import socket
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024
NAMES = "abcdefghi"
HEAD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: hostile}\n"
    'spec:\n  schedule: "* * * * *"\n'
)
TAIL = '  command: {args: ["true"]}\n'
# What a committer would love to read through crontask's messages.
SHADOW = (
    "root:$6$Xk2b9Qw1$4Jp0bq1t2y3u4i5o6p7a8s9d0f1g2h3j4k5l6z7x8c9v0b1n2m3:19000:0:99999:7:::\n"
    "daemon:*:19000:0:99999:7:::\n"
)

# The secret each URL_PASSWORDS case holds, in its user name or password: no message may quote it
# (nor its lowercase: a host name is shown lowercase).
PASSWORD = "Pa55wordSecret"  # noqa: S105 - a test value
_UNREADABLE = (
    "its host or port cannot be read (in a user name or password, write '/' '?' '#' '[' ']' as "
    "%2F %3F %23 %5B %5D; a port is at most 65535)"
)
URL_PASSWORDS = {
    "url-password-bracket.yaml": (f"https://svc:p[{PASSWORD}@api.example/x", _UNREADABLE),
    "url-password-brackets.yaml": (f"https://svc:[{PASSWORD}]@api.example/x", _UNREADABLE),
    "url-password-closing-bracket.yaml": (f"https://svc:{PASSWORD}]@api.example/", _UNREADABLE),
    "url-password-slash.yaml": (f"https://svc:{PASSWORD}/x@api.example/x", _UNREADABLE),
    "url-password-question-mark.yaml": (f"https://svc:{PASSWORD}?x@api.example/", _UNREADABLE),
    "url-password-hash.yaml": (f"https://svc:{PASSWORD}#x@api.example/x", _UNREADABLE),
    # A user name (a token) with a '/': what urlsplit takes for the host is the token's start.
    "url-user-name-slash.yaml": (
        f"https://[v1.{PASSWORD}]/x@api.example/x",
        "its host is no valid IP address or IDNA name (in a user name or password, write '/' "
        "'?' '#' '[' ']' as %2F %3F %23 %5B %5D)",
    ),
}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    target: Path  # what `crontask validate` is given
    expected: str  # the line validate prints, as a prefix: "path:line:col: message"
    in_folder: bool = True  # whether it can be dropped into a watched folder
    args: tuple[str, ...] = ()  # more arguments for validate
    lines: int = 1  # how many lines of errors validate prints for it


def sequence_bomb(name: str = "hostile") -> str:
    """Nine anchors of nine items, each made of the one before: 9^9 values once expanded."""
    lines = ["  x:", "    a: &a [x, x, x, x, x, x, x, x, x]"]
    for before, anchor in itertools.pairwise(NAMES):
        lines.append(f"    {anchor}: &{anchor} [" + ", ".join([f"*{before}"] * 9) + "]")
    head = HEAD.replace("name: hostile", f"name: {name}")
    return head + "\n".join(lines) + "\n  command:\n    args: *i\n"


def mapping_bomb() -> str:
    lines = ["a: &a {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x}"]
    for before, anchor in itertools.pairwise(NAMES):
        items = ", ".join(f"k{n}: *{before}" for n in range(9))
        lines.append(f"{anchor}: &{anchor} {{{items}}}")
    return "\n".join(lines) + "\n"


def merge_bomb() -> str:
    lines = ["a: &a {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8}"]
    for before, anchor in itertools.pairwise(NAMES):
        lines.append(f"{anchor}: &{anchor} {{<<: [" + ", ".join([f"*{before}"] * 9) + "]}")
    return "\n".join(lines) + "\n"


def dense(size: int) -> str:
    """A CronTask of at most ``size`` bytes whose args are one-character values."""
    head = HEAD + "  command:\n    args: ["
    return head + "1," * ((size - len(head) - 3) // 2) + "1]\n"


def build(folder: Path, scratch: Path, only: str | None = None) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "shadow").write_text(SHADOW)
    cases: list[Case] = []

    def text(name: str, content: str | bytes, where: str, message: str, lines: int = 1) -> None:
        if only not in (None, name):
            return
        path = folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        cases.append(Case(name, path, f"{path}:{where}: {message}", lines=lines))

    def special(name: str, make: Callable[[Path], object], where: str, message: str) -> None:
        if only not in (None, name):
            return
        path = folder / name
        make(path)
        cases.append(Case(name, path, f"{path}:{where}: {message}"))

    aliases = "YAML aliases expand this value to more than 10000 values"
    text("alias-bomb-sequences.yaml", sequence_bomb(), "11:8", aliases)
    text("alias-bomb-mappings.yaml", mapping_bomb(), "4:4", aliases)
    text("alias-bomb-merge-keys.yaml", merge_bomb(), "4:12", aliases)
    text("alias-recursive.yaml", "a: &x [*x]\n", "1:4", "recursive YAML alias")
    text(
        "alias-undefined-long-name.yaml",
        "a: *" + "n" * 100_000 + "\n",
        "1:4",
        "YAML syntax error: found undefined alias",
    )
    text(
        "deep-nesting.yaml",
        "spec: " + "[" * 150 + "]" * 150 + "\n",
        "1:56",
        "nested more than 100 levels deep (the limit)",
    )
    text(
        "deeper-than-libyaml.yaml",
        "spec: " + "[" * 5000 + "]" * 5000 + "\n",
        "1:1006",
        "YAML syntax error: exceeded maximum nesting depth",
    )
    text(
        "huge-scalar.yaml",
        HEAD + "  timeZone: Europe/" + "x" * 900_000 + "\n" + TAIL,
        "6:3",
        # The model bounds a zone name (64 characters) before it looks the name up.
        "spec.timeZone: at most 64 characters, not 900007",
    )
    text(
        "many-documents.yaml",
        "---\n" * 20_000,
        "10001:1",
        "more than 10000 YAML documents in one file (the limit)",
    )
    text(
        "many-values.yaml",
        dense(MIB),
        "7:19978",
        "more than 10000 values in one document (the limit for one document)",
    )
    text(
        "many-errors.yaml",
        HEAD + "  command:\n    args: [" + ", ".join(["1"] * 200) + "]\n",
        "7:12",
        "spec.command.args[0]: a string, not the number 1: quote it to mean the string",
        lines=21,
    )
    text("long-number.yaml", "a: " + "1" * 5000 + "\n", "1:4", "number longer than 100")
    text(
        "bad-timestamp.yaml",
        "a: 2001-13-01\n",
        "1:4",
        "invalid !!timestamp value: month must be in 1..12",
    )
    marker = scratch / "pwned"
    text(
        "python-tag.yaml",
        f'a: !!python/object/apply:os.system ["touch {marker}"]\n',
        "1:4",
        "unsupported YAML tag '!!python/object/apply:os.system'",
    )
    # Standard tags with no JSON value: a set's order changes from run to run (as command
    # arguments!), bytes would be decoded into a string.
    text(
        "set-tag-args.yaml",
        HEAD + "  command: {args: !!set {rm, -rf, /tmp/x}}\n",
        "6:19",
        "YAML tag '!!set' has no JSON value: write a string or a list",
    )
    text(
        "binary-tag.yaml",
        HEAD + '  command: {args: [!!binary ZWNobw==, "x"]}\n',
        "6:20",
        "YAML tag '!!binary' has no JSON value: write a string or a list",
    )
    # Quoted numbers and switches, and a switch for a count: the API server refuses them in a
    # CronTask resource; pydantic's lax mode read "off" as false and true as 1.
    text(
        "quoted-switch.yaml",
        HEAD + '  suspend: "off"\n  retry: {limit: true}\n  timeoutSeconds: "30"\n' + TAIL,
        "6:3",
        "spec.suspend: true or false, not the string 'off': write false",
        lines=3,
    )
    text(
        "duplicate-keys.yaml",
        HEAD.replace("{name: hostile}", "{name: hostile, name: other}") + TAIL,
        "3:27",
        "metadata.name: duplicate key",
    )
    text(
        "huge-key.yaml",
        HEAD + '  ? "' + "k" * 100_000 + '"\n  : 1\n' + TAIL,
        "6:5",
        "spec." + "k" * 40 + "...: unknown field",
    )
    text(
        "escaped-newline-key.yaml",
        HEAD + '  "evil\\nlevel=error msg=forged": 1\n' + TAIL,
        "6:3",
        "spec.evil\\nlevel=error msg=forged: unknown field",
    )
    text(
        "invalid-utf8.yaml",
        HEAD.encode().replace(b"kind: CronTask", b"kind: Cron\xffTask") + TAIL.encode(),
        "2:11",
        "not UTF-8: byte 0xff",
    )
    text("nul-byte.yaml", "a: 1\nb: x\x00y\n", "2:5", "unacceptable character #x0000")
    # YAML refuses the raw characters, but its double-quoted escapes make them: a NUL that no
    # program can be given, a CR LF that would end a header and start one of the committer's.
    text(
        "nul-escape.yaml",
        HEAD + '  command: {args: ["echo", "a\\0b"]}\n',
        "6:28",
        "spec.command.args[1]: contains a NUL character, which no program can be given",
    )
    # 64 arguments of 32 KiB from one anchor (a 33 KB file): each within its bound, together
    # past the 2 MiB the kernel gives a program (every run would fail to start), and past the
    # 1 MiB of text a document may hold once its aliases are expanded, which says so first.
    text(
        "args-past-exec-limit.yaml",
        HEAD + '  command: {args: ["echo", &a "' + "y" * 32768 + '"' + ", *a" * 63 + "]}\n",
        "6:19",
        "YAML aliases expand this value to more than 1 MiB of text (the limit for one document; "
        "a Kubernetes object is at most 1.5 MiB)",
    )
    text(
        "header-injection.yaml",
        HEAD
        + "  http:\n    url: https://hooks.example/x\n"
        + '    headers: [{name: X-A, value: "a\\r\\nAuthorization: Bearer forged"}]\n',
        "8:27",
        "spec.http.headers[0].value: holds a character no header may (CR, LF, another "
        "control character, or one that is not ASCII)",
    )
    # Accepted, every run failed: the client refuses a space at a value's end (RFC 9110 5.5),
    # with a message that named no header.
    text(
        "header-end-space.yaml",
        HEAD
        + "  http:\n    url: https://hooks.example/x\n"
        + '    headers: [{name: X-Team, value: "ops "}]\n',
        "8:30",
        "spec.http.headers[0].value: header 'X-Team': its value may not start or end with a "
        "space or tab",
    )
    # Accepted, these could never be sent: every run failed as "ActionError", with a traceback.
    text(
        "bad-ipv4-url.yaml",
        HEAD + "  http:\n    url: http://256.256.256.256/refresh\n",
        "7:5",
        "spec.http.url: not a URL a request can go to: 256.256.256.256 is not an IPv4 address",
    )
    text(
        "bad-idna-url.yaml",
        HEAD + "  http:\n    url: https://xn--/refresh\n",
        "7:5",
        "spec.http.url: not a URL a request can go to: xn-- is not a valid IDNA label "
        "(xn--, then Punycode)",
    )
    # A password with a character a URL reserves, unencoded: urlsplit's error quoted it (or
    # what it took for a port), and definition errors are logged, shown and sent.
    for name, (url, problem) in URL_PASSWORDS.items():
        text(
            name,
            HEAD + f"  http:\n    url: '{url}'\n",
            "7:5",
            f"spec.http.url: not a URL a request can go to: {problem}",
        )
    text(
        "framing-header.yaml",
        HEAD
        + "  http:\n    url: https://hooks.example/x\n    method: POST\n    body: hello world\n"
        + "    headers: [{name: Transfer-Encoding, value: chunked}]\n",
        "10:16",
        "spec.http.headers[0].name: Transfer-Encoding is set by crontask from the body; a task "
        "may not set it",
    )
    # A null where the JobSpec's schema has an object: the check raised AttributeError on it,
    # out of the source, and every reconcile pass failed (one file stopped all scheduling).
    text(
        "null-container.yaml",
        HEAD
        + "  job:\n    spec:\n      template:\n        spec:\n"
        + "          restartPolicy: Never\n          containers: [null]\n",
        "11:24",
        "spec.job.spec.template.spec.containers[0]: Invalid value: must be an object (got null)",
    )
    # Accepted, this one looked scheduled and never ran: its first slot is past year 9999.
    text(
        "every-forever.yaml",
        HEAD.replace('"* * * * *"', '"@every 999999999999h"') + TAIL,
        "5:21",
        "spec.schedule: @every: '999999999999h' is longer than a year; the interval must be 1s "
        "to 8760h",
    )
    # Accepted, every run failed to start: "" is no folder to run in.
    text(
        "empty-working-dir.yaml",
        HEAD + '  command: {args: ["true"], workingDir: "  "}\n',
        "6:29",
        "spec.command.workingDir: must not be empty (leave it out to run in crontask's folder)",
    )
    # An empty value is the default of a field that has one (timeZone: UTC); a required field's
    # is an error, which suggested "" (refused next) before.
    text(
        "null-required.yaml",
        HEAD.replace(' "* * * * *"', "") + "  timeZone:\n  retry:\n" + TAIL,
        "5:3",
        "spec.schedule: required field is empty (null): give it a value",
    )
    # A null kind, an empty namespace: each told what it takes, not in pydantic's words.
    text(
        "null-kind.yaml",
        HEAD.replace(" CronTask", "") + TAIL,
        "2:1",
        "kind: required field is empty (null): give it the value 'CronTask'",
    )
    text(
        "empty-namespace.yaml",
        HEAD.replace("hostile}", 'hostile, namespace: ""}') + TAIL,
        "3:27",
        "metadata.namespace: must not be empty: a DNS-1123 label (lower-case letters, digits and "
        "'-', starting and ending with a letter or digit), or leave it out for 'default'",
    )
    # Accepted, every run failed: "" is no file to read a header's value from.
    text(
        "empty-value-file.yaml",
        HEAD + '  http: {url: "https://a.example/", headers: [{name: A, valueFrom: {file: ""}}]}\n',
        "6:69",
        "spec.http.headers[0].valueFrom.file: must not be empty (name the file the header's value "
        "is read from)",
    )
    text("control-chars.yaml", "a: \x1b[31mred\n", "1:4", "unacceptable character #x001b")
    text("bom.yaml", "\ufeff" + HEAD + "  bogus: 1\n" + TAIL, "6:3", "spec.bogus: unknown field")
    rnd = random.Random(1)  # noqa: S311 - junk, not a secret
    junk = bytes(rnd.randrange(256) for _ in range(4096))
    text("binary-junk.yaml", junk, "1:3", f"not UTF-8: byte 0x{junk[2]:02x}")
    text(
        "too-big.yaml",
        b"#" * (2 * MIB),
        "1:1",
        "file is 2097152 bytes, over the limit of 1 MiB (--max-file-size): not read",
    )

    outside = f"a symbolic link that leads outside the folder {folder}: not read"
    special("dev-zero.yaml", lambda p: os.symlink("/dev/zero", p), "1:1", outside)
    special("shadow-link.yaml", lambda p: os.symlink(scratch / "shadow", p), "1:1", outside)
    special(
        "link-loop.yaml",
        lambda p: os.symlink(p.name, p),
        "1:1",
        "cannot read: Too many levels of symbolic links",
    )
    special("fifo.yaml", os.mkfifo, "1:1", "not a regular file (a FIFO): not read")
    # Links this process may not read (readlink: EACCES), where its Python (3.11, 3.12) raised
    # from os.path.realpath: a pass failed whole, and a git revision holding one stopped every
    # start. Where the link can be read (a root allowed to trace pid 1) it leads out, and the
    # file is refused as leading outside.
    proc_link = Path("/proc/1/cwd")
    if os.path.lexists(proc_link):
        followed = _readable_link(proc_link)
        link = folder / "proc-cwd-link"
        if only in (None, link.name):
            os.symlink(proc_link, link)
            not_entered = (
                "a symbolic link to a folder outside this path, or to nothing: not entered; the "
                "tasks of files once here are kept"
            )
            cases.append(Case(link.name, link, f"{link}: {not_entered}"))
        why = outside if followed else "cannot read: Permission denied"
        special("proc-cwd-link.yaml", lambda p: os.symlink(proc_link, p), "1:1", why)
        given = scratch / "proc-cwd-given"
        if only in (None, given.name) and not followed:
            os.symlink(proc_link, given)
            message = "a symbolic link on this path cannot be followed: not read"
            cases.append(Case(given.name, given, f"{given}: {message}", in_folder=False))
    if len(str(folder / "socket.yaml")) < 100:  # AF_UNIX paths are short
        special("socket.yaml", _socket_file, "1:1", "not a regular file (a socket): not read")

    # /proc files say they are empty and are not: a file that grows between stat and read.
    status = Path("/proc/self/status")
    if only in (None, "growing-file") and status.exists():
        message = "file grew past the limit of 1 KiB (--max-file-size) while it was read"
        cases.append(
            Case(
                "growing-file",
                status,
                f"{status}:1:1: {message}",
                in_folder=False,
                args=("--max-file-size", "1KiB"),
            )
        )
    return cases


def deep_folder(folder: Path, good: str, depth: int = 1100) -> Case:
    """Folders ``d/d/.../d`` nested ``depth`` deep under ``folder`` (a 2 200-character path,
    which git commits), a task at the bottom and ``good`` next to them: os.walk recursed past
    Python's limit on it, and every resync failed whole. Not in ``build``: a daemon watching the
    folder may miss the events of a tree made at once, and report it only at its next full
    resync; and it must be removed with ``gitrepo.remove_tree`` (shutil.rmtree recurses)."""
    bottom = nest(folder, depth)
    (folder / "good.yaml").write_text(good)
    (bottom / "lost.yaml").write_text(HEAD.replace("name: hostile", "name: lost") + TAIL)
    refused = folder.joinpath(*["d"] * 101)  # the first folder past walk.MAX_FOLDER_DEPTH
    message = "folder nested more than 100 levels deep (the limit): not read"
    return Case("deep-folder", refused, f"{refused}: {message}")


def nest(root: Path, depth: int) -> Path:
    """``root/d/d/.../d``, ``depth`` folders deep (short names: PATH_MAX is 4096); one at a
    time, as os.makedirs recurses."""
    root.mkdir(parents=True, exist_ok=True)
    folder = root
    for _ in range(depth):
        folder /= "d"
        folder.mkdir()
    return folder


def _readable_link(path: Path) -> bool:
    try:
        os.readlink(path)
    except OSError:
        return False
    return True


def _socket_file(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))  # the socket file stays after close


# Every case, by name, for parametrized tests (each test builds its case in its own tmp_path);
# a test checks that this list and build() agree.
CASES = [
    "alias-bomb-sequences.yaml",
    "alias-bomb-mappings.yaml",
    "alias-bomb-merge-keys.yaml",
    "alias-recursive.yaml",
    "alias-undefined-long-name.yaml",
    "deep-nesting.yaml",
    "deeper-than-libyaml.yaml",
    "huge-scalar.yaml",
    "many-documents.yaml",
    "many-values.yaml",
    "many-errors.yaml",
    "long-number.yaml",
    "bad-timestamp.yaml",
    "python-tag.yaml",
    "set-tag-args.yaml",
    "binary-tag.yaml",
    "quoted-switch.yaml",
    "duplicate-keys.yaml",
    "huge-key.yaml",
    "escaped-newline-key.yaml",
    "invalid-utf8.yaml",
    "nul-byte.yaml",
    "nul-escape.yaml",
    "args-past-exec-limit.yaml",
    "header-injection.yaml",
    "header-end-space.yaml",
    "bad-ipv4-url.yaml",
    "bad-idna-url.yaml",
    *URL_PASSWORDS,
    "framing-header.yaml",
    "null-container.yaml",
    "every-forever.yaml",
    "empty-working-dir.yaml",
    "null-required.yaml",
    "null-kind.yaml",
    "empty-namespace.yaml",
    "empty-value-file.yaml",
    "control-chars.yaml",
    "bom.yaml",
    "binary-junk.yaml",
    "too-big.yaml",
    "dev-zero.yaml",
    "shadow-link.yaml",
    "link-loop.yaml",
    "fifo.yaml",
    "proc-cwd-link",
    "proc-cwd-link.yaml",
    "proc-cwd-given",
    "socket.yaml",
    "growing-file",
]
