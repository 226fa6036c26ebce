"""YAML aliases cannot make a document's text larger than a Kubernetes object.

Counting values after alias expansion is not enough: one 32 KiB string anchored once and
repeated by 9 000 aliases is 10 000 values, a 69 KB file, and 288 MiB of text for whatever
copies or serializes the task (its spec hash, the API, the status page); ``crontask run`` went
to 953 MB on it, past the Deployment's 512Mi, and again on every restart. The characters of a
document's scalars (keys included) are counted every time they are reached, on the plain path
(``plain_text``, what ``crontask run``'s workers read) and on the long way (``measure``), and
past 1 MiB the document is an error at the value that holds too much.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sources.documents import PRESCAN_LENGTH, parse_text, plain_text
from reconciler.sources.limits import MIB, YamlLimits

BIG = "x" * (32 * 1024 - 10)  # one string: a 32 KiB command argument is valid
MESSAGE = (
    "YAML aliases expand this value to more than 1 MiB of text (the limit for one document; "
    "a Kubernetes object is at most 1.5 MiB)"
)


def job_task(aliases: int, *, name: str = "jobamp", merge: bool = False) -> str:
    """A Job whose container command is the anchored string and ``aliases`` repeats of it
    (the reviewer's file at 9 000). ``merge`` puts a merge key in metadata, which only
    PyYAML's constructor reads: then ``measure`` alone has to find the problem."""
    metadata = f"{{<<: {{name: {name}}}}}" if merge else f"{{name: {name}}}"
    return (
        f"apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {metadata}\n"
        'spec:\n  schedule: "0 0 1 1 *"\n  job:\n    spec:\n      template:\n        spec:\n'
        "          containers:\n          - name: c\n            image: busybox\n"
        f"            command: [&s {BIG}" + ", *s" * aliases + "]\n"
    )


def http_task(aliases: int) -> str:
    """The reviewer's other file: annotations and header values that all alias one anchor."""
    lines = [
        "apiVersion: crontask.dev/v1alpha1",
        "kind: CronTask",
        "metadata:",
        "  name: amp",
        "  annotations:",
        f"    a0: &s {BIG}",
        *(f"    a{i}: *s" for i in range(1, aliases)),
        "spec:",
        '  schedule: "0 0 1 1 *"',
        "  http:",
        "    url: http://127.0.0.1:9/",
        "    headers:",
        *(f"      - {{name: H{i}, value: *s}}" for i in range(aliases)),
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (job_task(40), "j.yaml:13:22: "),  # the command list, past 1 MiB with its 41 strings
        (job_task(9000), "j.yaml:13:22: "),  # the reviewer's file: over 64 KiB, prescanned
        (job_task(40, merge=True), "j.yaml:13:22: "),  # not plain: found by measure
        (http_task(40), "j.yaml:6:5: "),  # the annotations, 40 strings of 32 KiB
    ],
    ids=["job", "job-long-text", "job-not-plain", "http"],
)
def test_aliases_of_one_long_string_are_an_error_at_the_value_past_1_mib(
    text: str, where: str
) -> None:
    assert len(text) < 2 * PRESCAN_LENGTH  # a few dozen KB of text
    parsed = parse_text(text, "j.yaml")
    assert [str(error) for error in parsed.errors] == [where + MESSAGE]
    assert parsed.definitions == []


def test_the_plain_path_of_crontask_runs_workers_refuses_it_too() -> None:
    # plain_text is what the forked workers of `crontask run` read; None sends the file to
    # the long way, which places the error (above).
    assert plain_text(job_task(40)) is None
    assert plain_text(http_task(40)) is None
    # Just under 1 MiB of text with the same aliases is a task like any other.
    plain = plain_text(job_task(30))
    assert plain is not None
    assert len(plain.documents) == 1
    (definition,) = parse_text(job_task(30), "j.yaml").definitions
    assert definition.key == "default/jobamp"


def test_the_documents_of_a_file_share_one_budget_of_text() -> None:
    # Each document holds 640 KiB once expanded, under 1 MiB; together 20 of them are more
    # than the file's budget: 1 MiB and 16 times the length of its text.
    text = "---\n".join(job_task(19, name=f"t{n}") for n in range(20))
    total = YamlLimits().file_text(len(text))
    assert total < 20 * 640 * 1024
    parsed = parse_text(text, "j.yaml")
    read = len(parsed.definitions)
    assert 0 < read < 20
    assert read * 640 * 1024 <= total
    assert [d.key for d in parsed.definitions] == [f"default/t{n}" for n in range(read)]
    assert "of text (what is left of the limit for this file" in str(parsed.errors[0])
    assert "the documents of this file hold more than" in str(parsed.errors[-1])
    assert plain_text(text) is None


def test_documents_that_share_anchored_text_a_few_times_are_read() -> None:
    """The previous version read it: 40 tasks of 8 KiB of script each, used 4 times more
    (annotations, the command), 329 KB of text and 1.6 MiB expanded."""
    script = "echo " + "x" * 8000
    documents = [
        f"apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: t{n}\n"
        f"  annotations: {{a: &s {script}, b: *s, c: *s}}\n"
        'spec:\n  schedule: "0 0 1 1 *"\n  command: {args: [sh, -c, *s, *s]}\n'
        for n in range(40)
    ]
    text = "---\n".join(documents)
    parsed = parse_text(text, "shared.yaml")
    assert parsed.errors == []
    assert len(parsed.definitions) == 40


def test_large_text_without_aliases_is_read_as_ever() -> None:
    # 2 MiB of tasks, each 32 KiB of text: the file's budget grows with its text.
    tasks = [job_task(0, name=f"t{n}") for n in range(64)]
    parsed = parse_text("---\n".join(tasks), "big.yaml")
    assert parsed.errors == []
    assert len(parsed.definitions) == 64
    # One document of almost 1 MiB of text, written out: nothing to refuse either.
    one = job_task(0).replace(f"&s {BIG}", ", ".join([BIG] * 31))
    assert 0.9 * MIB < len(one) < MIB
    assert len(parse_text(one, "one.yaml").definitions) == 1


# The real command in a fresh interpreter, its Python allocations traced from before crontask
# is imported: the peak tells what reading took. (The rusage of a child counts the memory of
# the process it was forked from, a test worker's hundreds of MB, not its own.)
_VALIDATE_TRACED = """\
import sys, tracemalloc
tracemalloc.start()
from reconciler.cli.main import main
try:
    main(["validate", sys.argv[1]])
    code = 0
except SystemExit as stop:
    code = stop.code
print("peak", tracemalloc.get_traced_memory()[1], file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.slow
def test_crontask_validate_refuses_the_reviewers_file_with_its_place(tmp_path: Path) -> None:
    """The real command, on the file that took it to 618 MB: exit 1, the error at its place,
    and the memory it took to read stays small (the expansion would be 288 MiB)."""
    path = tmp_path / "j.yaml"
    path.write_text(job_task(9000))
    done = subprocess.run(
        [sys.executable, "-c", _VALIDATE_TRACED, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert f"{path}:13:22: {MESSAGE}" in done.stdout
    peak = int(done.stderr.rsplit("peak ", 1)[1])
    assert peak < 64 * MIB, peak  # the start's imports and the file, never the expansion
