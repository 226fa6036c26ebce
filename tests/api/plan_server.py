"""A real ``crontask run`` over a folder, asked through real HTTP: the server the tests of
``POST /api/v1/plan`` plan against (``test_plan_hidden_documents``, ``test_plan_server_options``,
``test_plan_source_bounds``)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.helpers import free_port

ROOT = str(Path(__file__).resolve().parents[2])


class PlanServer:
    """``crontask run FOLDER --listen 127.0.0.1:PORT`` and ``options``, its output in
    ``workdir/crontask.log``; ``env`` (else this process's) without ``$CRONTASK_TOKEN``."""

    def __init__(
        self,
        workdir: Path,
        folder: Path,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.log = workdir / "crontask.log"
        self.env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
        self.env["PYTHONPATH"] = ROOT
        self.env.pop("CRONTASK_TOKEN", None)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "reconciler", "run", str(folder)),
                    *("--state-dir", str(workdir / "state"), "--shutdown-grace", "1s"),
                    *("--listen", f"127.0.0.1:{self.port}", *options),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def tasks(self) -> list[Any]:
        """The tasks it answers (none while it is not listening yet)."""
        assert self.proc.poll() is None, self.log.read_text()
        try:
            status, answer = self.ask("GET", "/api/v1/tasks")
        except OSError:
            return []
        assert status == 200, answer
        return list(answer["items"])

    def plan(self, text: str | bytes, query: str = "", media: str = "application/yaml") -> Any:
        body = text.encode() if isinstance(text, str) else text
        status, answer = self.ask("POST", f"/api/v1/plan{query}", body, media)
        assert status == 200, answer
        return answer

    def ask(
        self, method: str, path: str, body: bytes | None = None, media: str = "application/yaml"
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": media})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
