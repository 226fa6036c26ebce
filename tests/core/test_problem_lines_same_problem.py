"""Two errors about the same problem (two nameless documents in one file, broken the same way:
same file, key and message, lines apart) are each told: the second appearing is news, and one
of them going is a fix. ``Told`` compared what a line was about with every problem shown, so
the second one was never logged nor notified, nor its fix, while ``/api/v1/sources`` listed
both."""

from __future__ import annotations

from reconciler.core.desired import assemble, reassemble
from reconciler.core.problem_lines import ProblemLines, Told
from reconciler.sources.documents import parse_text

GOOD = """apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: ok}
spec: {schedule: "*/5 * * * *", command: {args: ["true"]}}
"""
NAMELESS = """apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {}
spec: {schedule: "*/5 * * * *", command: {args: ["true"]}}
"""


def _passes(*nameless: int) -> list[tuple[list[str], list[str]]]:
    """What ``Told.changes`` says of each version of t.yaml: the good document, then each
    count of ``nameless`` documents in turn (lines that appeared, lines fixed)."""
    lines, told = ProblemLines(), Told()
    state = assemble([], [])
    said = []
    for count in nameless:
        parsed = parse_text("---\n".join([GOOD] + [NAMELESS] * count), "t.yaml")
        assert len(parsed.errors) == count
        state = reassemble(state, set(), parsed.definitions, parsed.errors)
        appeared, fixed = told.changes(*lines.update(state))
        said.append(([line for line, _ in appeared], fixed))
    return said


def test_a_second_error_about_the_same_problem_is_news_and_its_going_a_fix() -> None:
    one, two, three, four = _passes(1, 2, 1, 0)
    first = one[0][0]
    assert first.startswith("t.yaml:8:")
    second = first.replace("t.yaml:8:", "t.yaml:13:")
    assert one == ([first], [])
    assert two == ([second], [])  # was ([], []): the same problem as the first's
    assert three == ([], [second])  # was ([], []): the other one still said it
    assert four == ([], [first])
