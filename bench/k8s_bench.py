"""Kubernetes source: CronTask custom resources, end to end through the project's API emulator.

    python bench/k8s_bench.py --worker cold TASKS
    python bench/k8s_bench.py --worker edit TASKS EDITS
    python bench/k8s_bench.py --worker status RUNS

Every worker starts the emulator (``tests/k8s/emulator``, on 127.0.0.1, in the worker's
process), registers the real CRD (``deploy/crd.yaml``), creates the CronTask objects with plain
HTTP POSTs (the same task shape as the file benchmark: a yearly slot in one of five zones, a
command with env, retry and timeout), and then starts the real ``crontask run --kubernetes``
(``python -m reconciler run``, SQLite state in a temporary folder, the API on 127.0.0.1 on a
free port, log lines on stderr) as a subprocess.

``cold``: the time from spawning ``crontask run`` to the ``time=`` of its ``crontask started``
line, whose ``tasks=`` must be TASKS: imports, connecting, the first LIST, the first pass and
the scheduler's start, after which every job has its next fire time. The split is read from the
``kubernetes source started`` (listed and watching) and ``reconciled`` lines.

``edit``: after ``crontask started`` and once every object shows its status (``Ready`` for the
current generation: at the status writer's 20 writes/s this takes TASKS / 20 s, and is reported),
EDITS times one object's ``spec.schedule`` is changed by a JSON merge PATCH (a different object
each time, 0.2 s apart); the latency is the ``time=`` of the ``task updated`` line for that task
minus the instant just before the PATCH was sent: the HTTP write, the watch event, the informer,
the pass and the log line. Then, as a second figure, the time until ``status.observedGeneration``
read back with GET shows the new generation (polled every 10 ms).

``status``: one task, ``* * * * * *`` (every second), command ``["true"]``. From ``crontask
started`` on, the object is read with GET every 10 ms; for each run, the instant its
``status.lastRun`` first shows the run's id with a ``completionTime`` minus the run's
``finished_at`` in the run store (read after the process stopped), i.e. the run's end to its
status being visible to an API client. Runs that ended before polling began are not counted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.k8s.emulator

from _common import (
    ROOT,
    ZONES,
    Json,
    emit,
    quiet_schedule,
    start_crontask,
    stop_crontask,
    summary_ms,
)

from tests.k8s.emulator import Emulator

NAMESPACE = "bench"
GROUP, VERSION, PLURAL = "crontask.dev", "v1alpha1", "crontasks"
COLLECTION = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
CRD_FILE = ROOT / "deploy" / "crd.yaml"
START_TIMEOUT = 180.0
EDIT_TIMEOUT = 10.0
POLL = 0.01  # seconds between status reads
NODELAY = True  # TCP_NODELAY on the emulator's connections (see emulator_with_crd)

_TIME = re.compile(r"^time=(\S+)")
_FIELD = re.compile(r'\b(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


# -- the API, over plain HTTP ----------------------------------------------------------------


class Api:
    """One keep-alive HTTP/1.1 connection to the emulator; JSON in and out."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(
        self,
        method: str,
        path: str,
        body: Json | None = None,
        content_type: str = "application/json",
    ) -> Json:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        self.connection.request(method, path, body=data, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        answer: Json = json.loads(payload)
        return answer

    def get(self, name: str) -> Json:
        return self.call("GET", f"{COLLECTION}/{name}")

    def patch_spec(self, name: str, spec: Json) -> Json:
        return self.call(
            "PATCH",
            f"{COLLECTION}/{name}",
            {"spec": spec},
            content_type="application/merge-patch+json",
        )

    def close(self) -> None:
        self.connection.close()


def task_object(name: str, spec: Json) -> Json:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def quiet_spec(name: str, schedule: str, zone: str) -> Json:
    """The file benchmark's task (``_common.task_document``) as a CronTask spec."""
    return {
        "schedule": schedule,
        "timeZone": zone,
        "timeoutSeconds": 600,
        "retry": {"limit": 1, "backoffSeconds": 5},
        "command": {"args": ["true", "--task", name], "env": {"STAGE": "bench"}},
    }


def populate(api: Api, tasks: int, seed: int = 7) -> dict[str, str]:
    """TASKS quiet CronTasks, created with POSTs; name -> schedule."""
    api.call("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    rnd = random.Random(seed)
    schedules: dict[str, str] = {}
    for i in range(tasks):
        name = f"task-{i:05d}"
        schedules[name] = quiet_schedule(rnd)
        spec = quiet_spec(name, schedules[name], ZONES[i % len(ZONES)])
        api.call("POST", COLLECTION, task_object(name, spec))
    return schedules


def status_current(obj: Json) -> bool:
    """The object's status is written for its current generation, and Ready."""
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return bool(
        status.get("observedGeneration") == generation
        and ready
        and ready[0].get("status") == "True"
    )


# -- the crontask process --------------------------------------------------------------------


def log_time(line: str) -> float | None:
    found = _TIME.match(line)
    return datetime.fromisoformat(found.group(1)).timestamp() if found else None


def fields(line: str) -> dict[str, str]:
    return {k: json.loads(v) if v.startswith('"') else v for k, v in _FIELD.findall(line)}


def is_line(line: str, message: str, task: str | None = None) -> bool:
    found = fields(line)
    return found.get("msg") == message and (task is None or found.get("task") == task)


class Crontask:
    """``crontask run --kubernetes`` as a subprocess; its stderr lines, with arrival times."""

    def __init__(self, kubeconfig: Path, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.args = [
            "--kubernetes",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            NAMESPACE,
            "--state-dir",
            str(state_dir),
            "--listen",
            "127.0.0.1:0",
            "--shutdown-grace",
            "5s",
            "--kill-grace",
            "1s",
        ]
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.everything: list[str] = []
        self.spawned = 0.0
        self.process: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None

    def __enter__(self) -> Crontask:
        self.spawned = time.time()
        self.process = start_crontask(self.args)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        for line in iter(self.process.stderr.readline, ""):
            self.everything.append(line)
            self.lines.put((time.time(), line))
        self.lines.put((time.time(), ""))

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None:
            return
        stop_crontask(self.process, 30)
        if self.reader is not None:
            self.reader.join(timeout=5)

    def drain(self) -> None:
        while not self.lines.empty():
            self.lines.get_nowait()

    def wait_for(self, message: str, task: str | None, timeout: float) -> tuple[float, str] | None:
        """The next line with ``msg=message`` (and ``task=task``): arrival time, line."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                seen, line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if not line:
                return None  # the process ended
            if message in line and is_line(line, message, task):
                return seen, line
        return None

    def tail(self) -> str:
        return " | ".join(line.strip() for line in self.everything[-5:])


def started_or_error(crontask: Crontask, tasks: int) -> tuple[float, str] | Json:
    ready = crontask.wait_for("crontask started", None, START_TIMEOUT)
    if ready is None:
        return {"tasks": tasks, "error": f"crontask run did not start: {crontask.tail()}"}
    return ready


def emulator_with_crd() -> Emulator:
    import yaml

    from tests.k8s.emulator.server import Handler

    # The emulator's handler (http.server) writes a response's headers and body separately
    # and leaves Nagle's algorithm on: on a keep-alive connection the body then waits for the
    # client's delayed ACK, about 40 ms per request. The real API server (Go) sets TCP_NODELAY;
    # so does this benchmark, unless --emulator-nagle asks for the emulator's default.
    Handler.disable_nagle_algorithm = NODELAY
    emulator = Emulator()
    emulator.start()
    emulator.create_crd(yaml.safe_load(CRD_FILE.read_text()))
    return emulator


# -- cold start ------------------------------------------------------------------------------


def _cold(tasks: int) -> Json:
    emulator = emulator_with_crd()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-k8s-cold-") as tmp:
            api = Api(emulator.port)
            populate(api, tasks)
            api.close()
            kubeconfig = emulator.write_kubeconfig(Path(tmp, "kubeconfig"), NAMESPACE)
            with Crontask(kubeconfig, Path(tmp, "state")) as crontask:
                ready = started_or_error(crontask, tasks)
                if isinstance(ready, dict):
                    return ready
                spawned = crontask.spawned
                started = log_time(ready[1]) or ready[0]
                lines = list(crontask.everything)
            listed = next(
                (log_time(x) for x in lines if is_line(x, "kubernetes source started")), None
            )
            passed = next((x for x in lines if is_line(x, "reconciled")), None)
            passed_at = log_time(passed) if passed else None
            return {
                "tasks": tasks,
                "scheduled": int(fields(ready[1]).get("tasks", -1)),
                "reconciled_tasks": int(fields(passed).get("tasks", -1)) if passed else -1,
                "added": sum(is_line(x, "task added") for x in lines),
                "startup_s": started - spawned,
                "listed_s": (listed - spawned) if listed else float("nan"),
                "pass_s": (passed_at - listed) if passed_at and listed else float("nan"),
                "start_s": (started - passed_at) if passed_at else float("nan"),
            }
    finally:
        emulator.stop()


# -- one edit, end to end --------------------------------------------------------------------


def _edit(tasks: int, edits: int) -> Json:
    emulator = emulator_with_crd()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-k8s-edit-") as tmp:
            api = Api(emulator.port)
            schedules = populate(api, tasks)
            names = sorted(schedules)
            kubeconfig = emulator.write_kubeconfig(Path(tmp, "kubeconfig"), NAMESPACE)
            latencies: list[float] = []
            visible: list[float] = []
            missed = status_missed = 0
            with Crontask(kubeconfig, Path(tmp, "state")) as crontask:
                ready = started_or_error(crontask, tasks)
                if isinstance(ready, dict):
                    return ready
                startup_s = (log_time(ready[1]) or ready[0]) - crontask.spawned
                # Let the first status of every object be written (rate-limited), so that the
                # edits meet a settled process.
                deadline = time.monotonic() + 60 + tasks / 10
                statuses_s = float("nan")
                while time.monotonic() < deadline:
                    items = api.call("GET", COLLECTION)["items"]
                    if len(items) == tasks and all(status_current(o) for o in items):
                        statuses_s = time.time() - crontask.spawned
                        break
                    time.sleep(0.25)
                time.sleep(0.5)
                rnd = random.Random(11)
                step = max(1, len(names) // max(edits, 1))
                for i in range(edits):
                    name = names[(i * step) % len(names)]
                    new = schedules[name]
                    while new == schedules[name]:
                        new = quiet_schedule(rnd)
                    schedules[name] = new
                    crontask.drain()
                    before = time.time()
                    written = api.patch_spec(name, {"schedule": new})
                    generation = written["metadata"]["generation"]
                    seen = crontask.wait_for("task updated", f"{NAMESPACE}/{name}", EDIT_TIMEOUT)
                    if seen is None:
                        missed += 1
                        continue
                    latencies.append((log_time(seen[1]) or seen[0]) - before)
                    until = time.monotonic() + EDIT_TIMEOUT
                    while time.monotonic() < until:
                        status = api.get(name).get("status") or {}
                        if status.get("observedGeneration") == generation:
                            visible.append(time.time() - before)
                            break
                        time.sleep(POLL)
                    else:
                        status_missed += 1
                    time.sleep(0.2)
            api.close()
            return {
                "tasks": tasks,
                "edits": edits,
                "startup_s": startup_s,
                "statuses_s": statuses_s,
                "latency": summary_ms(latencies),
                "status_latency": summary_ms(visible),
                "missed": missed,
                "status_missed": status_missed,
            }
    finally:
        emulator.stop()


# -- a run's end to its status ---------------------------------------------------------------


def _status(runs: int) -> Json:
    from reconciler.store import open_store, sqlite_url

    emulator = emulator_with_crd()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-k8s-status-") as tmp:
            api = Api(emulator.port)
            api.call("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
            name = "every-second"
            spec = {
                "schedule": "* * * * * *",
                "command": {"args": ["true"]},
                "successfulRunsHistoryLimit": runs + 50,
            }
            api.call("POST", COLLECTION, task_object(name, spec))
            kubeconfig = emulator.write_kubeconfig(Path(tmp, "kubeconfig"), NAMESPACE)
            state = Path(tmp, "state")
            seen: dict[str, float] = {}  # run id -> when its finished lastRun was first read
            reads = 0
            with Crontask(kubeconfig, state) as crontask:
                ready = started_or_error(crontask, 1)
                if isinstance(ready, dict):
                    return ready
                polling_since = time.time()
                deadline = time.monotonic() + runs + 30
                while len(seen) < runs + 1 and time.monotonic() < deadline:
                    last = (api.get(name).get("status") or {}).get("lastRun") or {}
                    reads += 1
                    now = time.time()
                    if last.get("completionTime") and last.get("id") not in seen:
                        seen[str(last["id"])] = now
                    time.sleep(POLL)
                crontask.stop()
                lines = list(crontask.everything)
            api.close()
            logged = {
                f.get("run", ""): log_time(x) or float("nan")
                for x in lines
                if is_line(x, "run finished")
                for f in [fields(x)]
            }
            store = open_store(sqlite_url(state))
            latencies: list[float] = []
            from_log: list[float] = []
            finished = 0
            try:
                for run_id, at in seen.items():
                    record = store.get(run_id)
                    if record is None or record.finished_at is None:
                        continue
                    end = record.finished_at.timestamp()
                    if end < polling_since:
                        continue  # it ended before the first read: not a measurement
                    latencies.append(at - end)
                    if run_id in logged:
                        from_log.append(at - logged[run_id])
                finished = sum(
                    1
                    for r in logged
                    if (rec := store.get(r)) is not None
                    and rec.finished_at is not None
                    and rec.finished_at.timestamp() >= polling_since
                )
            finally:
                store.close()
            return {
                "runs": len(latencies),
                "wanted": runs,
                "finished_while_polling": finished,
                "reads": reads,
                "poll_ms": POLL * 1e3,
                "latency": summary_ms(latencies),
                "latency_from_log": summary_ms(from_log),
            }
    finally:
        emulator.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    commands = parser.add_subparsers(dest="what", required=True)
    cold = commands.add_parser("cold")
    cold.add_argument("tasks", type=int)
    edit = commands.add_parser("edit")
    edit.add_argument("tasks", type=int)
    edit.add_argument("edits", type=int)
    status = commands.add_parser("status")
    status.add_argument("runs", type=int)
    parser.add_argument(
        "--emulator-nagle",
        action="store_true",
        help="keep the emulator's default (Nagle on: ~40 ms per keep-alive response)",
    )
    args = parser.parse_args(argv)
    global NODELAY
    NODELAY = not args.emulator_nagle
    if args.what == "cold":
        emit(_cold(args.tasks))
    elif args.what == "edit":
        emit(_edit(args.tasks, args.edits))
    else:
        emit(_status(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
