"""``POST /api/v1/plan`` past a source's ``--max-tasks``: no change of that source is planned.
A pass refuses each file that would grow the source past its bound, a file that updates or
removes a task as well as adding one among them; a text cannot tell its files apart, so the
plan keeps every task of that source in force as it is, and names in ``kept`` those the text
changes or removes. Before, it planned those updates and removals, which ``run`` did not make
when the same file added past the bound. And the bound counts every definition, as the pass
does (``sources.taskbound.growth``): a text that repeats a key grows the source though it adds
no new key; before, such a text was planned though ``run`` refused it."""

from __future__ import annotations

import yaml

from reconciler.api.planning import TextPlan, plan_text
from reconciler.core.desired import Definition
from tests.helpers import definition, task_doc


def _in_force(*names: str) -> dict[str, Definition]:
    return {f"default/{n}": definition(n, path=f"tasks/{n}.yaml") for n in names}


def _text(*docs: dict[str, object]) -> bytes:
    return "---\n".join(yaml.safe_dump(d) for d in docs).encode()


def _steps(found: TextPlan) -> list[tuple[str, str]]:
    return [(str(step.operation), step.key) for step in found.plan.steps]


def test_an_update_beside_an_addition_past_the_bound_is_kept_not_planned() -> None:
    """b changed, c removed, d and e added, the folder at its bound of 3: the pass refuses
    b's file if it adds d or e, so b's change is not planned: b is kept, as is c."""
    text = _text(task_doc("a"), task_doc("b", schedule="0 3 * * *"), task_doc("d"), task_doc("e"))
    found = plan_text(text, _in_force("a", "b", "c"), jobs=True, allow_empty=False, max_tasks=3)
    assert (_steps(found), found.plan.unchanged) == ([], 3)
    assert found.kept == ("default/b", "default/c")
    assert len(found.problems) == 1
    assert "(default/d, default/e)" in found.problems[0]
    assert "a file that adds no task do apply" in found.problems[0]


def test_a_repeated_key_at_the_bound_is_refused_as_the_pass_refuses_it() -> None:
    """c updated and a repeated, no new key, 3 in force of 3: the pass refuses the file (4
    definitions); the plan must not plan c's update."""
    text = _text(task_doc("a"), task_doc("b"), task_doc("c", schedule="0 3 * * *"), task_doc("a"))
    found = plan_text(text, _in_force("a", "b", "c"), jobs=True, allow_empty=False, max_tasks=3)
    assert _steps(found) == []
    assert "default/c" in found.kept
    assert any("past its bound of 3" in p for p in found.problems)


def test_within_the_bound_the_changes_are_planned() -> None:
    text = _text(task_doc("a"), task_doc("b", schedule="0 3 * * *"))
    found = plan_text(text, _in_force("a", "b", "c"), jobs=True, allow_empty=False, max_tasks=3)
    assert _steps(found) == [("update", "default/b"), ("remove", "default/c")]
    assert (found.kept, found.problems) == ((), ())


def test_a_reader_learns_nothing_of_a_hidden_url_from_what_is_kept() -> None:
    """A caller who may not write tasks reads a URL without its path: whether its guess of
    the path is right must not show in ``kept`` (nor anywhere in the answer)."""
    hook = "https://h.example/hook/"
    secret = definition("a", path="tasks/a.yaml", command=None, http={"url": hook + "s3cret"})
    in_force = {"default/a": secret, **_in_force("b", "c")}
    answers = []
    for guess in ("s3cret", "wrong"):
        a = task_doc("a", command=None, http={"url": hook + guess})
        text = _text(a, task_doc("b"), task_doc("c"), task_doc("d"))
        found = plan_text(text, in_force, jobs=True, allow_empty=False, max_tasks=3, exact=False)
        answers.append((found.kept, _steps(found), found.problems, found.plan.unchanged))
    assert answers[0] == answers[1]
