"""Job tasks: N tasks due in the same second, the slot to each Job created, against the same
tasks as ``command`` runs.

    python bench/job_bench.py --worker job N
    python bench/job_bench.py --worker command N
    python bench/job_bench.py --worker client N

Both workers start the project's Kubernetes API emulator (``tests/k8s/emulator``, on
127.0.0.1, in the worker's process, TCP_NODELAY as the real API server; it does not run the
Jobs: what is measured is crontask's path to the API server, not a kubelet), write N task files
whose one slot T is the same second a few seconds ahead, and start the real ``crontask run``
(``python -m reconciler run DIR --kubeconfig ...``, SQLite state in a temporary folder) as a
subprocess, in both modes: the job action is wired in either way.

``job``: N ``job`` tasks. The worker watches the Jobs from before T and notes the arrival of
each ``ADDED`` event; latency = arrival - T: the scheduler's fire, the dispatcher (claim in the
store), the run's record naming its Job, the POST, the API server storing it, and the watch
event's way back (the last is the same for any client).

``command``: the same N tasks with ``command: {args: ["/bin/date", "+%s.%N"]}``; latency = the
instant ``date`` printed (read back from each run's output in the run store) - T: the
scheduler's fire, the dispatcher, the spawn, ``date``'s exec. The work starting in a process is
what a ``command`` run hands its work to; a created Job is what a ``job`` run hands it to.

``client``: no crontask: a process that waits for T and then creates the same N Jobs straight
through the official client from a pool of 8 threads (as many as the job action uses): the
floor that the API server (here the emulator) and the client set for N Jobs in one second.

``lost``: tasks without a Job (a run) within 15 s of T.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.k8s.emulator

from _common import ROOT, Json, emit, summary_ms

from tests.k8s.emulator import Emulator

SETTLE = 15.0
START_MARGIN = 12.0  # seconds from writing the tasks to their slot: crontask's start fits


def task_yaml(name: str, at: datetime, job: bool) -> str:
    schedule = f"{at.second} {at.minute} {at.hour} * * *"
    head = (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}, namespace: bench}}\n"
        f'spec:\n  schedule: "{schedule}"\n'
    )
    if not job:
        return head + '  command: {args: ["/bin/date", "+%s.%N"]}\n'
    return head + (
        "  job:\n    namespace: bench\n    spec:\n      backoffLimit: 0\n      template:\n"
        "        spec:\n          containers:\n"
        '            - {name: main, image: busybox, command: ["true"]}\n'
    )


class JobWatch(threading.Thread):
    """A raw watch of the Jobs in namespace ``bench``: each ADDED event's arrival time."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.added: dict[str, float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        connection.request(
            "GET", "/apis/batch/v1/namespaces/bench/jobs?watch=true&timeoutSeconds=100"
        )
        response = connection.getresponse()
        self.ready.set()
        buffer = b""
        while True:
            try:
                chunk = response.read1(65536)
            except (http.client.HTTPException, OSError):
                return  # the emulator stopped
            if not chunk:
                return
            now = time.time()
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    event = json.loads(line)
                    if event.get("type") == "ADDED":
                        self.added[event["object"]["metadata"]["name"]] = now


CLIENT = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
from kubernetes import client, config
batch = client.BatchV1Api(config.new_client_from_config(config_file=sys.argv[1]))
due, n = float(sys.argv[2]), int(sys.argv[3])
pod = {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
def create(i):
    body = {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"t{i:04d}", "namespace": "bench"},
            "spec": {"backoffLimit": 0, "template": {"spec": pod}}}
    return batch.create_namespaced_job("bench", body, _preload_content=False).data
pool = ThreadPoolExecutor(8)
time.sleep(max(0.0, due - time.time()))
list(pool.map(create, range(n)))
"""


def measure(mode: str, n: int) -> Json:
    from tests.k8s.emulator.server import Handler

    Handler.disable_nagle_algorithm = True  # as the real API server (see k8s_bench.py)
    emulator = Emulator()  # run_jobs=False: the Jobs are created, not run
    emulator.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-job-") as tmp:
            tasks = Path(tmp, "tasks")
            tasks.mkdir()
            due = float(math.ceil(time.time() + START_MARGIN + n / 200))
            at = datetime.fromtimestamp(due, UTC)
            for i in range(n):
                name = f"t{i:04d}"
                (tasks / f"{name}.yaml").write_text(task_yaml(name, at, mode != "command"))
            kubeconfig = emulator.write_kubeconfig(Path(tmp, "kubeconfig"), "bench")
            watch = JobWatch(emulator.port)
            watch.start()
            watch.ready.wait(10)
            state = Path(tmp, "state")
            command = [
                sys.executable,
                "-m",
                "reconciler",
                "run",
                str(tasks),
                "--kubeconfig",
                str(kubeconfig),
                "--state-dir",
                str(state),
                "--listen",
                "off",
                "--shutdown-grace",
                "2s",
            ]
            if mode == "client":
                command = [sys.executable, "-c", CLIENT, str(kubeconfig), str(due), str(n)]
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            try:
                while time.time() < due + SETTLE:
                    if mode != "command" and len(watch.added) >= n:
                        break
                    if mode == "command" and time.time() > due + 3 and _finished(state) >= n:
                        break
                    if process.poll() is not None and mode != "client":
                        return {
                            "mode": mode,
                            "n": n,
                            "error": f"crontask exited {process.returncode}",
                        }
                    time.sleep(0.05)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
            if mode != "command":
                latencies = [t - due for t in watch.added.values()]
            else:
                latencies = [t - due for t in _printed(state)]
            if time.time() < due:
                return {"mode": mode, "n": n, "error": "crontask did not start before the slot"}
            return {
                "mode": mode,
                "n": n,
                "lateness": summary_ms(latencies),
                "lost": n - len(latencies),
            }
    finally:
        emulator.stop()


def _finished(state: Path) -> int:
    if not (state / "runs.db").exists():
        return 0
    from reconciler.store import open_store, sqlite_url
    from reconciler.store.base import RunQuery

    store = open_store(sqlite_url(state))
    try:
        return sum(1 for r in store.query(RunQuery(limit=1000)).items if r.status.finished)
    finally:
        store.close()


def _printed(state: Path) -> list[float]:
    from reconciler.store import open_store, sqlite_url
    from reconciler.store.base import RunQuery

    store = open_store(sqlite_url(state))
    try:
        found = []
        for record in store.query(RunQuery(limit=1000)).items:
            try:
                found.append(float(record.output.strip()))
            except ValueError:
                continue
        return found
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    parser.add_argument("mode", choices=["job", "command", "client"])
    parser.add_argument("n", type=int)
    args = parser.parse_args(argv)
    emit(measure(args.mode, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
