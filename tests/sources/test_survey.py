"""The survey `crontask validate` makes: the same report as a refresh and ``assemble``.

Worker processes are tested through the real command (``tests/hostile/test_validate.py``
compares ``-j1`` with several workers); here one process reads, so that the survey itself is
compared with the path ``crontask run`` and ``crontask plan`` take.
"""

from __future__ import annotations

import random
from pathlib import Path

from reconciler.core.desired import Definition, Location, Placed, assemble, check
from reconciler.core.model import CronTask
from reconciler.sources.files import DirectorySource
from reconciler.sources.survey import survey
from tests.sources.test_files import doc, write


def test_the_survey_reports_what_a_refresh_and_assemble_report(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", doc("a") + "---\n" + doc("b"))
    write(tmp_path / "sub" / "twin.yml", doc("b", "@daily"))
    write(tmp_path / "z" / "third.yaml", doc("b", "@hourly") + "---\n" + doc("c"))
    write(tmp_path / "broken.yaml", doc("d", "61 * * * *"))
    write(tmp_path / "not-yaml.yaml", "key: [unclosed\n")
    write(tmp_path / "other.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe")
    write(tmp_path / ".hidden" / "skipped.yaml", doc("e"))
    missing = tmp_path / "missing"

    refreshed = DirectorySource([tmp_path, missing])
    refreshed.refresh(None)
    desired = assemble(refreshed.definitions(), refreshed.errors())
    found = survey(DirectorySource([tmp_path, missing]), workers=1)

    assert found.problems == desired.problems
    assert len(found.problems) == 5  # three broken files, the missing path, b three times
    assert (found.files, found.tasks) == (len(refreshed.files), len(desired.tasks))
    assert found.ignored == sum(s.ignored for s in refreshed.files.values()) == 1


def test_check_settles_places_as_assemble_settles_definitions() -> None:
    tasks = [
        CronTask.model_validate(
            {
                "apiVersion": "crontask.dev/v1alpha1",
                "kind": "CronTask",
                "metadata": {"name": f"k{i}", "namespace": "ns"},
                "spec": {"schedule": "@daily", "command": {"args": ["true"]}},
            }
        )
        for i in range(75)
    ]
    rng = random.Random(7)  # noqa: S311 - a reproducible shuffle, not a secret
    located = []
    for i in range(300):  # keys given up to four times, in any order
        where = Location("file", f"f{rng.randrange(40):02d}.yaml", rng.randrange(1, 9), 1)
        located.append(Definition.of(tasks[i % 75], where))
    rng.shuffle(located)
    expected = assemble(located)
    assert check(Placed(d.key, d.location) for d in located) == (
        len(expected.tasks),
        expected.problems,
    )
    assert expected.problems  # there were conflicts to settle
