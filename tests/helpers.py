"""Helpers for tests that run for real in the sandbox: a virtual HPC cluster with Slurm and rootless podman."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ksi_multi.sandbox.cluster import REPO, SHARED, Sandbox

NODES = 4
SBATCH = "$(ksi-multi batch-script --path)"  # the batch script of the sandbox user's (wheel-installed) ksi-multi
IMAGES = SHARED / "images"  # built once per machine, read by every sandbox host


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


def build_dist(out: Path) -> Dist:
    """`python -m build`: the sdist from the checkout, then the wheel from the sdist."""
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(REPO)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return Dist(wheel=next(out.glob("ksi_multi-*.whl")), sdist=next(out.glob("ksi_multi-*.tar.gz")))


@dataclass(frozen=True)
class Installed:
    venv: Path

    def ksi(self, *args: str, check: bool = True, timeout: float = 900,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """The installed CLI, run outside the checkout with nothing of the checkout on the path."""
        clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | (env or {})
        with tempfile.TemporaryDirectory(prefix="ksi-installed-") as cwd:
            proc = subprocess.run([str(self.venv / "bin" / "ksi-multi"), *args], capture_output=True, text=True,
                                  timeout=timeout, cwd=cwd, env=clean)
        if check and proc.returncode != 0:
            raise AssertionError(f"installed ksi-multi {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def python(self, code: str) -> str:
        return subprocess.run([str(self.venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                              check=True, cwd="/", env={"PATH": os.environ["PATH"]}).stdout.strip()


def install_wheel(wheel: Path, venv: Path) -> Installed:
    """A fresh virtual environment with the wheel and its dependencies (from the package index)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)],
                          capture_output=True, text=True, timeout=900, cwd="/")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return Installed(venv)


def ksi(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """The real CLI, as a user types it."""
    proc = subprocess.run([sys.executable, "-m", "ksi_multi", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ksi-multi {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class Cluster:
    def __init__(self, box: Sandbox) -> None:
        self.box = box
        self.plan = box.plan()

    def sh(self, cmd: str, host: str = "login", root: bool = False, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess:
        proc = self.box.exec(host, cmd, root=root, capture=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"[{host}] {cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def sbatch(self, args: str, nodes: int = NODES, env: str = "", slurm: str = "") -> str:
        out = self.sh(f"{env} sbatch --parsable -N {nodes} {slurm} {SBATCH} {args}").stdout.strip()
        return out.split(";")[0]

    def job_state(self, job_id: str) -> str:
        out = self.sh(f"scontrol show job {job_id} -o", root=True).stdout
        return re.search(r"JobState=(\S+)", out).group(1)

    def wait_job(self, job_id: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while (state := self.job_state(job_id)) in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {state} after {timeout} s:\n{self.job_log(job_id)}")
            time.sleep(0.5)
        return state

    def wait_socket(self, host: str, path: str, log: str, timeout: float = 20) -> None:
        """Until a helper started in the background on `host` has made its socket; its log if it never does."""
        deadline = time.monotonic() + timeout
        while self.sh(f"test -S {path}", host=host, check=False).returncode != 0:
            assert time.monotonic() < deadline, self.sh(f"cat {log}", host=host, check=False).stdout
            time.sleep(0.2)

    def job_file(self, job_id: str, name: str) -> str:
        return self.sh(f"cat ~/.ksi-multi/jobs/{job_id}/{name}", check=False).stdout

    def job_log(self, job_id: str) -> str:
        return self.sh(f"tail -n 40 ~/.ksi-multi/jobs/{job_id}/*.log", check=False).stdout

    def status(self, job_id: str) -> dict:
        text = self.job_file(job_id, "status.json")
        return json.loads(text) if text else {}

    def agent_processes(self) -> dict[str, str]:
        """Agent processes of the sandbox user still alive, per compute host."""
        found = {}
        for h in self.plan.compute:
            out = self.sh("pgrep -u ksiuser -a -f '[k]si[-_]multi agent' || true", host=h.name).stdout.strip()
            if out:
                found[h.name] = out
        return found

    def wait_status(self, job_id: str, state: str, timeout: float = 400) -> dict:
        deadline = time.monotonic() + timeout
        while (status := self.status(job_id)).get("state") != state:
            if status.get("state") == "failed" or self.job_state(job_id) not in ("PENDING", "RUNNING", "CONFIGURING"):
                raise AssertionError(f"job {job_id} did not reach {state}: {status}\n{self.job_log(job_id)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} not {state} after {timeout} s: {status}\n{self.job_log(job_id)}")
            time.sleep(1)
        return status

    def job_processes(self, host: str, job_id: str) -> set[str]:
        """The sandbox user's processes on a host that belong to one job (SLURM_JOB_ID in their environment)."""
        out = self.sh("for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null | "
                      f"grep -qx SLURM_JOB_ID={job_id} && echo ${{p#/proc/}}; done; true", host=host).stdout
        return set(out.split())

    def assert_nothing_left(self, job_id: str, hosts, within: float = 35) -> None:
        """Nothing of the job on any of the hosts, within `within` seconds (its agents may still tear down)."""
        deadline = time.monotonic() + within
        while any(self.leftovers(h, job_id) for h in hosts) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = {h: self.leftovers(h, job_id) for h in hosts}
        assert left == {h: [] for h in hosts}, f"left by job {job_id}: {left}\n{self.job_log(job_id)}"

    def ready_nodes(self, kubeconfig: str) -> list[list[str]]:
        """[name, STATUS] of every node, as kubectl sees them through the job's kubeconfig."""
        out = self.sh(f"kubectl --kubeconfig {kubeconfig} get nodes --no-headers", timeout=60).stdout
        return sorted(line.split()[:2] for line in out.splitlines())

    def leftovers(self, host: str, job_id: str) -> list[str]:
        """What a job of the sandbox user left on a host: processes, scratch, cgroups."""
        found = self.sh("pgrep -u ksiuser -a . | grep -v -e 'pgrep' -e 'bash -lc' -e 'hold-port' || true; "
                        f"ls -d /tmp/ksi-multi-1500/{job_id} /tmp/ksi-1500-{job_id} "
                        f"/sys/fs/cgroup/*/ksi-multi/ksiuser/job-{job_id} "
                        "2>/dev/null || true", host=host).stdout.split("\n")
        # The check's own grep, caught while it exits, shows without a command line: "1234 [grep]".
        return [line for line in found if line.strip() and not re.fullmatch(r"\d+ \[(grep|pgrep|bash|ls)\]", line.strip())]
