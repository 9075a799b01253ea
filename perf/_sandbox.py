"""What the benchmarks share: root check, the CLI, and a fresh sandbox of their own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ksi_multi.sandbox import runs  # noqa: E402
from ksi_multi.sandbox.cluster import Sandbox  # noqa: E402


def ksi(*args: str, env: dict | None = None) -> None:
    subprocess.run([sys.executable, "-m", "ksi_multi", *args], check=True, cwd=REPO, env=env,
                   stdout=subprocess.DEVNULL)


def run_name() -> str:
    """This benchmark run's own sandbox name (locked while it runs); sandboxes of ended runs are taken down."""
    if os.geteuid() != 0:
        raise SystemExit("run as root: the sandbox needs namespaces, mounts and cgroups")
    for name in runs.reap("b", lambda name: ksi("sandbox", "down", "--name", name)):
        print(f"took down sandbox {name!r} of a benchmark run that has ended")
    name = runs.RunName("b").name
    print(f"sandbox of this run: {name}")
    return name


def fresh_sandbox(name: str) -> Sandbox:
    """The benchmark's own sandbox (its name from run_name())."""
    return Sandbox(name)


def sh(box: Sandbox, cmd: str, host: str = "login", root: bool = False, timeout: float = 300) -> str:
    """Run a shell command on a sandbox host (as the sandbox user unless root); stop the benchmark on failure."""
    proc = box.exec(host, cmd, root=root, capture=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"[{host}] {cmd}: {proc.stderr or proc.stdout}")
    return proc.stdout


def iperf_gbps(report: str) -> float:
    return json.loads(report)["end"]["sum_received"]["bits_per_second"] / 1e9


def submit(box: Sandbox, nodes: int, options: str, until: str = "", on_poll=None,
           timeout: float = 900) -> tuple[str, dict, float]:
    """sbatch a cluster on node01..nodeNN; wait until it is Ready, or with `until` until it stopped after that
    phase (`on_poll` called at every look): (job id, status.json, seconds from submit)."""
    from ksi_multi.sandbox.cluster import SHARED

    hosts = ",".join(f"node{i:02d}" for i in range(1, nodes + 1))
    job = sh(box, f"sbatch --parsable -N {nodes} -w {hosts} $(ksi-multi batch-script --path) "
                  f"--image-dir {SHARED / 'images'} {options}" + (f" --until {until}" if until else "")).strip()
    started = time.monotonic()
    while True:
        text = sh(box, f"cat ~/.ksi-multi/jobs/{job}/status.json 2>/dev/null || true")
        status = json.loads(text) if text.strip() else {}
        if on_poll:
            on_poll()
        state = status.get("state")
        if state == "ready" and not until or state == "stopped" and until and status.get("phase") is None:
            return job, status, time.monotonic() - started
        if state == "failed" or time.monotonic() - started > timeout:
            raise SystemExit(f"job {job} ({nodes} nodes {options} {until}) did not get "
                             f"{'through ' + until if until else 'ready'}: {status.get('error') or status}")
        time.sleep(0.5)


def finish(box: Sandbox, job: str) -> None:
    """scancel a job (if it still runs) and wait until Slurm has let it go."""
    sh(box, f"scancel {job} 2>/dev/null || true")
    while re.search(r"JobState=(RUNNING|COMPLETING|PENDING)", sh(box, f"scontrol show job {job} -o", root=True)):
        time.sleep(0.5)
