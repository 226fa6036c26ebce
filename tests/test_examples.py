"""The example tasks and the README's tour, as a newcomer meets them: ``examples/tasks`` passes
``crontask validate`` without a warning, and the error the tour quotes for its broken schedule is
what ``crontask validate`` prints for that file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from reconciler.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def crontask(*argv: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    code = exited.value.code
    return code if isinstance(code, int) else 1


def test_the_examples_validate_without_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert crontask("validate", str(ROOT / "examples" / "tasks")) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: "), out + err
    assert "warning" not in out + err, out + err


def test_the_tours_broken_schedule_says_what_the_readme_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    written = re.search(
        r"cat > examples/tasks/hello\.yaml <<'YAML'\n(.*?)^YAML$", readme, re.M | re.S
    )
    broken = re.search(r'Change the schedule to `"([^"]+)"`', readme)
    quoted = re.search(r'msg="definition error" error="([^"]+)"', readme)
    assert written is not None, "the README's tour writes hello.yaml no longer as expected"
    assert broken is not None, "the README's tour breaks the schedule no longer as expected"
    assert quoted is not None, "the README's tour quotes the definition error no longer"
    shutil.copytree(ROOT / "examples" / "tasks", tmp_path / "examples" / "tasks")
    hello = tmp_path / "examples" / "tasks" / "hello.yaml"
    hello.write_text(re.sub(r'schedule: "[^"]+"', f'schedule: "{broken[1]}"', written[1]))
    monkeypatch.chdir(tmp_path)  # the tour's commands run in the repository
    assert crontask("validate", "examples/tasks") == 1
    assert capsys.readouterr().out == quoted[1] + "\n"
